//! The services the CLI hosts in-process when no server is given, over the
//! SQLite operations store in the user's data directory.

use std::path::PathBuf;

use anyhow::Context as _;
use orchestrator_core::OperationsService;

/// The operations database: `$TRDR_STATE_DIR/operations.db`, else
/// `{user data dir}/trdr/operations.db`.
pub(crate) fn operations_db() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("TRDR_STATE_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => dirs::data_dir()
            .context("cannot find the user data directory; set TRDR_STATE_DIR")?
            .join("trdr"),
    };
    Ok(dir.join("operations.db"))
}

/// The operations service over the embedded store.
pub(crate) fn operations() -> anyhow::Result<OperationsService> {
    let path = operations_db()?;
    OperationsService::open_sqlite(&path).context("cannot open the operations store")
}
