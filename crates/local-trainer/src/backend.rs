//! Which burn backend runs a model, chosen at run time.
//!
//! Since burn 0.22 tensors and modules carry no backend type parameter: the
//! [`Device`] a module is created on decides which backend executes it, and
//! autodiff is a property of the device (`device.autodiff()`). So the run-time
//! choice is simply which device the trainer creates; no generic code has to be
//! instantiated per backend.
//!
//! The CPU backends are always built. The GPU ones are cargo features
//! (`wgpu`, `cuda`), off by default because they double the build; a GPU is
//! opened once per process, on first use, and kept.

use burn::tensor::Device;

pub use strategy::{Backend, UnknownBackend};

/// Why a backend cannot run in this process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendUnavailable {
    #[error(
        "the {backend} backend is not compiled into this trdr: build it with `--features \
         {backend}` (e.g. `cargo build --release -p cli --features {backend}`)"
    )]
    NotCompiled { backend: Backend },
    #[error("the {backend} backend found no usable device: {reason}")]
    NoDevice { backend: Backend, reason: String },
}

/// A device of a backend, ready for tensors, and what it is.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub(crate) device: Device,
    /// `cpu`, or the adapter's name, graphics API and driver.
    pub(crate) name: String,
}

/// A device of `backend`, without autodiff.
pub(crate) fn open(backend: Backend) -> Result<Opened, BackendUnavailable> {
    let cpu = |device| {
        Ok(Opened {
            device,
            name: "cpu".to_owned(),
        })
    };
    match backend {
        Backend::Flex => cpu(Device::flex()),
        // Deprecated upstream, still supported here on purpose (see the variant).
        #[allow(deprecated)]
        Backend::NdArray => cpu(Device::ndarray()),
        Backend::Wgpu => open_wgpu(),
        Backend::Cuda => open_cuda(),
    }
}

/// Opens `backend` (once per process) and says what device it runs on:
/// how a training host checks, before it serves, the GPU it offers.
pub fn probe(backend: Backend) -> Result<String, BackendUnavailable> {
    open(backend).map(|opened| opened.name)
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use std::sync::OnceLock;

    use burn::tensor::Device;

    use super::{Backend, BackendUnavailable, Opened};

    /// The default adapter (a discrete GPU first; `CUBECL_WGPU_DEFAULT_DEVICE`
    /// overrides it) on the graphics API wgpu settles on. burn initialises a
    /// wgpu runtime only once, so the result is kept, failure included.
    pub(super) fn open() -> Result<Opened, BackendUnavailable> {
        static OPENED: OnceLock<Result<Opened, BackendUnavailable>> = OnceLock::new();
        OPENED
            .get_or_init(|| {
                let (device, setup) = Device::wgpu_options().init_with_setup().map_err(|err| {
                    BackendUnavailable::NoDevice {
                        backend: Backend::Wgpu,
                        reason: format!(
                            "{err} (probed the default adapter of every graphics API \
                                 wgpu knows; on Linux a Vulkan driver such as \
                                 mesa-vulkan-drivers is needed)"
                        ),
                    }
                })?;
                let adapter = setup.adapter.get_info();
                let name = format!(
                    "{} on {:?} ({} {})",
                    adapter.name, setup.backend, adapter.driver, adapter.driver_info
                );
                tracing::info!(adapter = %name, "wgpu device opened");
                Ok(Opened { device, name })
            })
            .clone()
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::OnceLock;

    use burn::tensor::Device;

    use super::{Backend, BackendUnavailable, Opened};

    /// The first CUDA device (`CUDA_VISIBLE_DEVICES` chooses which that is).
    /// cubecl opens it lazily and panics when there is none, so the first
    /// use is made here, where a panic becomes an error.
    pub(super) fn open() -> Result<Opened, BackendUnavailable> {
        static OPENED: OnceLock<Result<Opened, BackendUnavailable>> = OnceLock::new();
        OPENED
            .get_or_init(|| {
                let device = Device::cuda(0);
                let identity = catch_unwind(AssertUnwindSafe(|| device.identity()));
                match identity {
                    Ok(identity) => {
                        let name =
                            identity.map_or_else(|| "CUDA device 0".to_owned(), |id| id.name);
                        tracing::info!(device = %name, "CUDA device opened");
                        Ok(Opened { device, name })
                    }
                    Err(_) => Err(BackendUnavailable::NoDevice {
                        backend: Backend::Cuda,
                        reason: "no CUDA device 0 could be opened (is the NVIDIA driver loaded, \
                                 and CUDA_VISIBLE_DEVICES right?)"
                            .to_owned(),
                    }),
                }
            })
            .clone()
    }
}

#[cfg(feature = "wgpu")]
use self::wgpu::open as open_wgpu;

#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Result<Opened, BackendUnavailable> {
    Err(BackendUnavailable::NotCompiled {
        backend: Backend::Wgpu,
    })
}

#[cfg(feature = "cuda")]
use self::cuda::open as open_cuda;

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Opened, BackendUnavailable> {
    Err(BackendUnavailable::NotCompiled {
        backend: Backend::Cuda,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backends_always_open_and_a_gpu_one_not_built_in_names_its_feature() {
        for backend in [Backend::Flex, Backend::NdArray] {
            assert_eq!(probe(backend).unwrap(), "cpu");
        }
        #[cfg(not(feature = "wgpu"))]
        assert_eq!(
            probe(Backend::Wgpu).unwrap_err().to_string(),
            "the wgpu backend is not compiled into this trdr: build it with `--features wgpu` \
             (e.g. `cargo build --release -p cli --features wgpu`)"
        );
        #[cfg(not(feature = "cuda"))]
        assert!(matches!(
            probe(Backend::Cuda),
            Err(BackendUnavailable::NotCompiled {
                backend: Backend::Cuda
            })
        ));
    }
}
