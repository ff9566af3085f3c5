//! Which burn backend runs a model, chosen at run time.
//!
//! Since burn 0.22 tensors and modules carry no backend type parameter: the
//! [`Device`] a module is created on decides which backend executes it, and
//! autodiff is a property of the device (`device.autodiff()`). So the run-time
//! choice is simply which device the trainer creates; no generic code has to be
//! instantiated per backend.

use burn::tensor::Device;

pub use strategy::{Backend, UnknownBackend};

/// A device of `backend`, without autodiff.
pub(crate) fn device(backend: Backend) -> Device {
    match backend {
        Backend::Flex => Device::flex(),
        // Deprecated upstream, still supported here on purpose (see the variant).
        #[allow(deprecated)]
        Backend::NdArray => Device::ndarray(),
    }
}
