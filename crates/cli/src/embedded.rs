//! The services the CLI hosts in-process when no server is given, over the
//! SQLite operations store in the user's data directory.

use std::path::PathBuf;

use anyhow::Context as _;
use orchestrator_core::OperationsService;

/// The state directory: `$TRDR_STATE_DIR`, else `{user data dir}/trdr`.
pub(crate) fn state_dir() -> anyhow::Result<PathBuf> {
    match std::env::var_os("TRDR_STATE_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(dirs::data_dir()
            .context("cannot find the user data directory; set TRDR_STATE_DIR")?
            .join("trdr")),
    }
}

/// The operations database: `operations.db` in the [`state_dir`].
pub(crate) fn operations_db() -> anyhow::Result<PathBuf> {
    Ok(state_dir()?.join("operations.db"))
}

/// The operations service over the embedded store.
pub(crate) fn operations() -> anyhow::Result<OperationsService> {
    let path = operations_db()?;
    OperationsService::open_sqlite(&path).context("cannot open the operations store")
}
