//! What the tests of the hand-differentiated layers (`lstm`, `cnn`) use to
//! hold them to burn's own layers.

use burn::tensor::{Device, Tensor};

use crate::Backend;

/// Both CPU backends (the hand-differentiated layers run on either) and
/// their autodiff devices, seeded with `seed`.
pub(crate) fn devices(seed: u64) -> Vec<(Backend, Device)> {
    Backend::CPU
        .into_iter()
        .map(|backend| {
            let device = crate::backend::open(backend).unwrap().device;
            device.seed(seed);
            (backend, device.autodiff())
        })
        .collect()
}

pub(crate) fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

/// Asserts that `actual` (the hand-written pass) and `expected` (burn's)
/// agree within 1e-5, relative above 1, naming `what` and the first index
/// that does not.
pub(crate) fn assert_close(what: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
            "{what}[{index}]: fused {a}, burn {e}"
        );
    }
}
