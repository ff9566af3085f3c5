//! Mesa's software Vulkan driver, lavapipe, on which CI runs the wgpu
//! backend's tests: the compute shaders a GPU would run, executed on the CPU.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::Error;

/// Debian's packages: the driver, and the Vulkan loader.
const PACKAGES: &[&str] = &["mesa-vulkan-drivers", "libvulkan1"];

/// lavapipe's driver manifest.
fn lavapipe_icd() -> PathBuf {
    PathBuf::from(format!(
        "/usr/share/vulkan/icd.d/lvp_icd.{}.json",
        std::env::consts::ARCH
    ))
}

/// Installs lavapipe when missing, and returns the environment that runs
/// wgpu on it: the driver pinned (`VK_ICD_FILENAMES`), since without a
/// Vulkan driver wgpu falls back to OpenGL and the tests would pass on the
/// wrong API; and a private `XDG_RUNTIME_DIR` (under `target/`) unless one
/// is set, without which lavapipe warns on every start.
pub(crate) fn lavapipe(root: &Path) -> Result<Vec<(&'static str, String)>, Error> {
    let icd = lavapipe_icd();
    let loader = Path::new("/usr/lib")
        .join(format!("{}-linux-gnu", std::env::consts::ARCH))
        .join("libvulkan.so.1");
    let missing: Vec<&str> = [(&icd, PACKAGES[0]), (&loader, PACKAGES[1])]
        .into_iter()
        .filter(|(file, _)| !file.exists())
        .map(|(_, package)| package)
        .collect();
    crate::apt::install("vulkan", PACKAGES, &missing)?;

    let mut env = vec![("VK_ICD_FILENAMES", icd.display().to_string())];
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let runtime = root.join("target").join("xdg-runtime");
        let failed = |err: std::io::Error| Error::Failed {
            message: format!("cannot make {}: {err}", runtime.display()),
            code: None,
        };
        fs::create_dir_all(&runtime).map_err(failed)?;
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).map_err(failed)?;
        env.push(("XDG_RUNTIME_DIR", runtime.display().to_string()));
    }
    Ok(env)
}
