//! The auth token `trdr serve` uses when none is given: made at its first
//! start in the state directory, readable by its user only, and read from
//! there by that user's trdr clients, so other users of the machine are
//! refused without anyone passing a token around.

use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The file's name in the state directory.
pub(crate) const TOKEN_FILE: &str = "auth-token";

/// Random bytes in a token (shown as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// Where the server keeps its token and clients look for it:
/// `{state dir}/auth-token`.
pub(crate) fn path() -> anyhow::Result<PathBuf> {
    Ok(crate::embedded::state_dir()?.join(TOKEN_FILE))
}

/// The server's side: the token in `path`, made first when there is none.
///
/// A new token is written to a temporary file (mode 0600 from the start),
/// synced, and renamed into place, so a client never reads half of one.
/// A file that other users could read or write is refused rather than
/// used: its token would not keep them out.
pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<String> {
    match read_private(path) {
        Ok(token) => return Ok(token),
        Err(error) if is_not_found(&error) => {}
        Err(error) => return Err(error),
    }
    create(path)?;
    // What is there now: ours, or that of a server that started at the
    // same moment and renamed its file after ours.
    read_private(path)
}

/// The client's side: the token in `path`, when this user can read one.
/// Anything else (no file, another user's file) is no token: the server
/// then answers `UNAUTHENTICATED`, which says what to do.
pub(crate) fn read_for_client(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path)
        .and_then(|mut file| file.read_to_string(&mut text))
        .inspect_err(|error| {
            tracing::debug!(path = %path.display(), %error, "no auth token file read");
        })
        .ok()?;
    valid(&text).map(str::to_owned)
}

/// One line of printable ASCII: what travels in an `authorization` header.
fn valid(text: &str) -> Option<&str> {
    let token = text.trim();
    (!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())).then_some(token)
}

fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|error| error.kind() == ErrorKind::NotFound)
}

/// Reads the token, checking the permissions of the file it opened (not of
/// whatever the path named a moment before).
fn read_private(path: &Path) -> anyhow::Result<String> {
    // The io::Error stays inside, for `is_not_found`.
    let mut file = File::open(path)
        .with_context(|| format!("cannot open the auth token file {}", path.display()))?;
    let metadata = file
        .metadata()
        .with_context(|| format!("cannot read the auth token file {}", path.display()))?;
    if !metadata.is_file() {
        bail!("the auth token file {} is not a file", path.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "the auth token file {} can be read or written by other users \
                 (mode {mode:04o}), so its token would not keep them out; \
                 make it private (chmod 600 {0}) or delete it to have a new \
                 one made, or give --auth-token, or --no-auth",
                path.display()
            );
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("cannot read the auth token file {}", path.display()))?;
    match valid(&text) {
        Some(token) => Ok(token.to_owned()),
        None => bail!(
            "the auth token file {} holds no token (one line of printable \
             ASCII); delete it to have a new one made",
            path.display()
        ),
    }
}

/// Writes a new random token to `path`: a private temporary file beside
/// it, synced, then renamed over it.
fn create(path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let token = random_token()?;
    let temp = dir.join(format!(".{TOKEN_FILE}.{}.tmp", std::process::id()));
    // Left by a process of the same id that died between create and rename.
    let _ = std::fs::remove_file(&temp);
    let written = (|| {
        let mut file = private_options().open(&temp)?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename itself survives a crash once the directory is synced.
        #[cfg(unix)]
        File::open(dir)?.sync_all()?;
        Ok::<_, std::io::Error>(())
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(anyhow::Error::new(error).context(format!(
            "cannot write the auth token file {}",
            path.display()
        )));
    }
    tracing::info!(path = %path.display(), "made a new auth token");
    Ok(())
}

/// A new file that only its owner can read and write, whatever the umask.
fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// The directories it creates are private (0700); an existing one is left
/// as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Hex of [`TOKEN_BYTES`] bytes from the operating system's generator.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .context("cannot get random bytes for an auth token")?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_private_and_then_reused() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("new/state").join(TOKEN_FILE);
        assert_eq!(read_for_client(&path), None);

        let token = load_or_create(&path).unwrap();
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        assert_eq!(load_or_create(&path).unwrap(), token);
        assert_eq!(read_for_client(&path).as_deref(), Some(token.as_str()));
        // Nothing else was left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [TOKEN_FILE]);

        let other = tempfile::tempdir().unwrap();
        let second = load_or_create(&other.path().join(TOKEN_FILE)).unwrap();
        assert_ne!(second, token, "tokens are random");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_and_the_directories_made_for_it_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("made").join(TOKEN_FILE);
        load_or_create(&path).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused_not_used() {
        use std::os::unix::fs::PermissionsExt as _;
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join(TOKEN_FILE);
        std::fs::write(&path, "shared-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = format!("{:#}", load_or_create(&path).unwrap_err());
        assert!(error.contains("mode 0644"), "{error}");
        assert!(error.contains("chmod 600"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "shared-token\n");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), "shared-token");
    }

    #[test]
    fn something_else_in_its_place_is_named_not_replaced() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join(TOKEN_FILE);
        std::fs::create_dir(&path).unwrap();
        let error = format!("{:#}", load_or_create(&path).unwrap_err());
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(path.is_dir());
        assert_eq!(read_for_client(&path), None);
    }

    #[test]
    fn a_file_without_a_token_is_an_error_for_the_server_and_none_for_clients() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join(TOKEN_FILE);
        private_options().open(&path).unwrap();
        let error = format!("{:#}", load_or_create(&path).unwrap_err());
        assert!(error.contains("holds no token"), "{error}");
        assert_eq!(read_for_client(&path), None);
    }
}
