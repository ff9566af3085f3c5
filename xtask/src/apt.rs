//! Debian packages a check needs, installed with apt-get when missing, so a
//! fresh machine runs CI with nothing installed by hand. Packages come from
//! the distribution only, never downloaded from elsewhere.

use std::process::Command;

use crate::Error;

/// Installs `packages` (after `apt-get update`) when `missing`, the ones of
/// them the caller found absent, is not empty. Needs root.
pub(crate) fn install(purpose: &str, packages: &[&str], missing: &[&str]) -> Result<(), Error> {
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "{purpose}: installing {} with apt-get (missing: {})",
        packages.join(" "),
        missing.join(" ")
    );
    apt_get(&["update"])?;
    let mut install = vec!["install", "-y"];
    install.extend(packages);
    apt_get(&install)
}

fn apt_get(args: &[&str]) -> Result<(), Error> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|err| Error::Failed {
            message: format!("cannot run apt-get: {err}"),
            code: None,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            message: format!("`apt-get {}` exited with {status}", args.join(" ")),
            code: status.code(),
        })
    }
}
