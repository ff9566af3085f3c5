//! The one rule for a strategy a client names: a file inside the server's
//! strategies directory, checked before anything is read.
//!
//! A client of `trdr serve` may be another user of the machine. If the
//! server opened any path it was sent, its answers (a parse error quoting
//! the file, or a training's record) would hand that user the server
//! owner's files. So a name is a relative path without `..` whose file,
//! links followed, lies inside the directory; anything else is refused
//! unread.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// Longer names are refused before they reach the file system or a message.
pub(crate) const MAX_NAME_BYTES: usize = 1024;

/// Why a strategy name is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NameError {
    #[error("strategy_name is empty")]
    Empty,
    #[error("strategy_name is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    /// Absolute, `..`, or a link that leads out: the rule, not the file.
    #[error(
        "strategy_name {name:?} is refused: {why}; a strategy name is a file \
         inside the server's strategies directory (a relative path without \
         `..` that no link leads out of); to train a file the server does not \
         hold, send its YAML in strategy_text (trdr train --server does)"
    )]
    Outside { name: String, why: &'static str },
    #[error(
        "strategy_name {name:?}: the server's strategies directory {} cannot be \
         opened (start the server with --strategies-dir DIR)", dir.display()
    )]
    NoDirectory {
        name: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("strategy_name {name:?}: no such file in the server's strategies directory {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("strategy_name {name:?}: not a file in the server's strategies directory {}", dir.display())]
    NotAFile { name: String, dir: PathBuf },
}

/// The file `name` names inside `dir`, canonical (links resolved), or why
/// it is refused. Only metadata is read: a name that leads out of `dir` is
/// refused before its file is opened. The path returned has no links left,
/// so opening it right away reads what was checked; only someone who can
/// write to `dir` could change that in between.
pub(crate) fn resolve(dir: &Path, name: &str) -> Result<PathBuf, NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    let outside = |why| NameError::Outside {
        name: name.to_owned(),
        why,
    };
    let relative = Path::new(name);
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(outside("it goes up with `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(outside("it is absolute")),
        }
    }
    let root = dir
        .canonicalize()
        .map_err(|source| NameError::NoDirectory {
            name: name.to_owned(),
            dir: dir.to_owned(),
            source,
        })?;
    let path = match root.join(relative).canonicalize() {
        Ok(path) => path,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Err(NameError::NotFound {
                name: name.to_owned(),
                dir: root,
            });
        }
        // A component that is a file, a loop of links, no permission:
        // nothing there this server can train.
        Err(_) => {
            return Err(NameError::NotAFile {
                name: name.to_owned(),
                dir: root,
            });
        }
    };
    if !path.starts_with(&root) {
        return Err(outside("a link leads out of the strategies directory"));
    }
    if !path.is_file() {
        return Err(NameError::NotAFile {
            name: name.to_owned(),
            dir: root,
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strategies directory with `a.yaml`, `fx/b.yaml` and a folder
    /// `empty`, beside a `secret.yaml` outside it.
    fn layout() -> (tempfile::TempDir, PathBuf) {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("strategies");
        std::fs::create_dir_all(dir.join("fx")).unwrap();
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        std::fs::write(dir.join("a.yaml"), "name: a\n").unwrap();
        std::fs::write(dir.join("fx/b.yaml"), "name: b\n").unwrap();
        std::fs::write(top.path().join("secret.yaml"), "password: hunter2\n").unwrap();
        (top, dir)
    }

    #[test]
    fn names_inside_the_directory_resolve_to_canonical_files() {
        let (_top, dir) = layout();
        let root = dir.canonicalize().unwrap();
        assert_eq!(resolve(&dir, "a.yaml").unwrap(), root.join("a.yaml"));
        assert_eq!(
            resolve(&dir, "./fx/b.yaml").unwrap(),
            root.join("fx/b.yaml")
        );
        assert_eq!(resolve(&dir, "fx//b.yaml").unwrap(), root.join("fx/b.yaml"));
    }

    #[test]
    fn absolute_names_and_parent_steps_are_refused_by_the_rule() {
        let (top, dir) = layout();
        let secret = top.path().join("secret.yaml");
        for name in [
            "/etc/passwd",
            secret.to_str().unwrap(),
            "../secret.yaml",
            "fx/../../secret.yaml",
            // Even one that would come back inside.
            "fx/../a.yaml",
        ] {
            let error = resolve(&dir, name).unwrap_err();
            assert!(
                matches!(error, NameError::Outside { .. }),
                "{name}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message
                    .contains("a strategy name is a file inside the server's strategies directory"),
                "{message}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_directory_is_refused_and_one_within_it_followed() {
        let (top, dir) = layout();
        std::os::unix::fs::symlink(top.path().join("secret.yaml"), dir.join("s.yaml")).unwrap();
        std::os::unix::fs::symlink(top.path(), dir.join("up")).unwrap();
        std::os::unix::fs::symlink("fx/b.yaml", dir.join("b.yaml")).unwrap();
        for name in ["s.yaml", "up/secret.yaml"] {
            let error = resolve(&dir, name).unwrap_err();
            assert!(
                matches!(&error, NameError::Outside { why, .. } if why.contains("link")),
                "{name}: {error:?}"
            );
        }
        // What counts is where the file is, whatever way leads there.
        let root = dir.canonicalize().unwrap();
        assert_eq!(resolve(&dir, "b.yaml").unwrap(), root.join("fx/b.yaml"));
        assert_eq!(
            resolve(&dir, "up/strategies/a.yaml").unwrap(),
            root.join("a.yaml")
        );
    }

    #[test]
    fn missing_files_folders_and_directories_are_named() {
        let (top, dir) = layout();
        assert!(matches!(
            resolve(&dir, "nope.yaml"),
            Err(NameError::NotFound { .. })
        ));
        assert!(matches!(
            resolve(&dir, "empty"),
            Err(NameError::NotAFile { .. })
        ));
        assert!(matches!(
            resolve(&dir, "a.yaml/x"),
            Err(NameError::NotAFile { .. })
        ));
        let missing = top.path().join("none");
        let error = resolve(&missing, "a.yaml").unwrap_err();
        assert!(matches!(error, NameError::NoDirectory { .. }), "{error:?}");
        assert!(error.to_string().contains("--strategies-dir"), "{error}");
        assert!(matches!(resolve(&dir, " "), Err(NameError::Empty)));
        let long = "a/".repeat(MAX_NAME_BYTES);
        assert!(matches!(resolve(&dir, &long), Err(NameError::TooLong)));
    }
}
