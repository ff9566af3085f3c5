//! The CPU arithmetic shared by the layers whose passes are written out by
//! hand (the `lstm` and `cnn` modules): matrix products, activations and
//! their derivatives, dropout masks, and the split of a batch into shards
//! that run on two cores.
//!
//! Everything works on plain `f32` buffers reused from batch to batch.
//! Element-wise loops run through `pulp`'s dispatch, which compiles them
//! (inlined into it) for the CPU's widest vector unit, AVX-512 or AVX2,
//! rather than the baseline SSE2; they use no fused multiply-add, so the
//! vector width never changes a result.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::TensorData;
use ndarray::{ArrayView2, ArrayViewMut2};
use strategy::Activation;

/// Batches of at least twice this many samples are split into two shards
/// that run in parallel, each on its own core.
///
/// The split depends on the batch size alone, never on the machine's cores:
/// the shards' gradients are summed in a fixed order, so a seed gives the
/// same model whatever the number of cores.
const MIN_SHARD_SAMPLES: usize = 16;

/// The samples of each shard of a batch of `batch`: one shard, or two
/// halves (the first one larger for an odd batch).
pub(crate) fn shard_ranges(batch: usize) -> impl ExactSizeIterator<Item = Range<usize>> {
    let count = if batch >= 2 * MIN_SHARD_SAMPLES { 2 } else { 1 };
    (0..count).map(move |index| {
        let start = index * (batch / count) + index.min(batch % count);
        let len = batch / count + usize::from(index < batch % count);
        start..start + len
    })
}

/// Runs `work` on every shard, in parallel when there are two: the calling
/// thread takes the first, a thread of rayon's pool the second.
///
/// Waking a sleeping thread cost more than a tenth of a shard's work, so
/// threads spin instead, as OpenMP's pools (PyTorch's) do, each for at most
/// [`KEEP_AWAKE`]: the caller for the second shard to finish (rather than
/// sleeping until the pool wakes it), and afterwards a pool thread for the
/// next call (the backward pass after burn's head and loss, the next batch
/// after the optimizer). A plain `rayon::join` from outside the pool would
/// hand both shards to the pool and put the caller to sleep.
pub(crate) fn each_shard<T: Send>(shards: &mut [T], work: impl Fn(&mut T) + Sync) {
    match shards {
        [first, second] => {
            let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
            let second_done = AtomicBool::new(false);
            let (work, second_done) = (&work, &second_done);
            rayon::in_place_scope(|scope| {
                scope.spawn(move |_| {
                    work(second);
                    second_done.store(true, Ordering::Release);
                });
                work(first);
                spin_while(|| !second_done.load(Ordering::Acquire));
            });
            rayon::spawn(move || spin_while(|| CALLS.load(Ordering::Relaxed) == call));
        }
        shards => shards.iter_mut().for_each(work),
    }
}

/// Spins while `condition` holds, for at most [`KEEP_AWAKE`].
fn spin_while(condition: impl Fn() -> bool) {
    let since = Instant::now();
    while condition() && since.elapsed() < KEEP_AWAKE {
        std::hint::spin_loop();
    }
}

/// How long [`each_shard`]'s threads spin: more than the serial part of a
/// training step, far less than a pause between trainings.
const KEEP_AWAKE: Duration = Duration::from_millis(1);

/// Calls of [`each_shard`] so far: a change ends the spinning.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// A tensor's values; the networks' parameters are always `f32`.
pub(crate) fn as_f32(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("network parameters are f32 tensors")
}

/// Sets `buffer` to `len` values, reusing its allocation; the values are
/// whatever was there (every caller overwrites them).
pub(crate) fn resize(buffer: &mut Vec<f32>, len: usize) {
    buffer.resize(len, 0.0);
}

pub(crate) fn matrix(values: &[f32], rows: usize, columns: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, columns), &values[..rows * columns])
        .expect("buffers are sized for their matrices")
}

pub(crate) fn matrix_mut(
    values: &mut [f32],
    rows: usize,
    columns: usize,
) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, columns), &mut values[..rows * columns])
        .expect("buffers are sized for their matrices")
}

/// Whether a [`product`] replaces the output's values or adds to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Overwrite,
    Accumulate,
}

/// `out = left · right` (or `out += …`), on the calling thread.
///
/// `gemm` rather than ndarray's `matrixmultiply`: for the small, skinny
/// products of a training step it reads an operand laid out as its kernel
/// wants in place, where matrixmultiply copied ("packed") both operands on
/// every call (a tenth of an LSTM step).
#[allow(unsafe_code)]
pub(crate) fn product(
    left: &ArrayView2<'_, f32>,
    right: &ArrayView2<'_, f32>,
    output: Output,
    out: &mut ArrayViewMut2<'_, f32>,
) {
    let (m, k) = left.dim();
    let (right_rows, n) = right.dim();
    assert_eq!(k, right_rows, "inner dimensions of a product");
    assert_eq!(out.dim(), (m, n), "the shape of a product's output");
    let [out_rows, out_columns] = [out.strides()[0], out.strides()[1]];
    let [left_rows, left_columns] = [left.strides()[0], left.strides()[1]];
    let [right_rows, right_columns] = [right.strides()[0], right.strides()[1]];
    // SAFETY: each pointer, with its view's strides, addresses exactly the
    // view's elements, which ndarray guarantees to be in bounds for the
    // dimensions passed; `out` is borrowed mutably, so it overlaps neither
    // input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            out_columns,
            out_rows,
            output == Output::Accumulate,
            left.as_ptr(),
            left_columns,
            left_rows,
            right.as_ptr(),
            right_columns,
            right_rows,
            1.0,
            1.0,
            false,
            false,
            false,
            // The shards already keep every core busy.
            gemm::Parallelism::None,
        );
    }
}

/// `out = leftᵀ · right` for `left` `[rows, a]` and `right` `[rows, b]`:
/// a weight gradient summed over every row of a shard.
pub(crate) fn transposed_product(
    out: &mut [f32],
    left: &[f32],
    right: &[f32],
    [rows, a, b]: [usize; 3],
) {
    product(
        &matrix(left, rows, a).t(),
        &matrix(right, rows, b),
        Output::Overwrite,
        &mut matrix_mut(out, a, b),
    );
}

/// Adds `part` to `sum`, value by value: a shard's gradient to the batch's.
pub(crate) fn add_into(sum: &mut [f32], part: &[f32]) {
    for (sum, value) in sum.iter_mut().zip(part) {
        *sum += value;
    }
}

/// Adds every row of `rows` (`[_, width]`) into `sums` (`[width]`), after
/// zeroing it: a bias gradient.
pub(crate) fn column_sums(sums: &mut Vec<f32>, rows: &[f32], width: usize) {
    resize(sums, width);
    sums.fill(0.0);
    for row in rows.chunks_exact(width) {
        add_into(sums, row);
    }
}

/// Inverted dropout during training: the probability of dropping a value and
/// the generator its masks are drawn from.
pub(crate) struct Dropout<'a> {
    pub(crate) probability: f64,
    pub(crate) rng: &'a mut fastrand::Rng,
}

/// Fills `mask` with `len` inverted-dropout factors (0 or `1 / keep`).
pub(crate) fn draw_mask(mask: &mut Vec<f32>, len: usize, dropout: &mut Dropout<'_>) {
    let keep = 1.0 - dropout.probability;
    let scale = (1.0 / keep) as f32;
    mask.clear();
    mask.extend((0..len).map(|_| if dropout.rng.f64() < keep { scale } else { 0.0 }));
}

/// The slope of the networks' leaky ReLU below zero (burn's layers use it too).
pub(crate) const LEAKY_RELU_SLOPE: f32 = 0.01;

/// Applies `function` to every value of `pre` into `out`.
pub(crate) fn activate(function: Activation, pre: &[f32], out: &mut [f32]) {
    pulp::Arch::new().dispatch(Activate { function, pre, out });
}

struct Activate<'a> {
    function: Activation,
    pre: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for Activate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self { function, pre, out } = self;
        let out = &mut out[..pre.len()];
        match function {
            Activation::Relu => map(pre, out, |x| x.max(0.0)),
            Activation::LeakyRelu => {
                map(pre, out, |x| if x < 0.0 { x * LEAKY_RELU_SLOPE } else { x })
            }
            Activation::Tanh => map(pre, out, tanh),
            Activation::Sigmoid => map(pre, out, sigmoid),
            // erf has no vectorising form here; GELU is the rare choice.
            Activation::Gelu => map(pre, out, |x| {
                0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
            }),
        }
    }
}

/// Multiplies every value of `gradient` (with respect to `function`'s
/// output) by `function`'s derivative, given its input `pre` and output
/// `post`: the gradient with respect to its input.
pub(crate) fn activation_backward(
    function: Activation,
    pre: &[f32],
    post: &[f32],
    gradient: &mut [f32],
) {
    pulp::Arch::new().dispatch(ActivationBackward {
        function,
        pre,
        post,
        gradient,
    });
}

struct ActivationBackward<'a> {
    function: Activation,
    pre: &'a [f32],
    post: &'a [f32],
    gradient: &'a mut [f32],
}

impl pulp::WithSimd for ActivationBackward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self {
            function,
            pre,
            post,
            gradient,
        } = self;
        let len = gradient.len();
        let (pre, post) = (&pre[..len], &post[..len]);
        match function {
            // As burn: the slope below zero, 1 from zero up (0 at zero for relu).
            Activation::Relu => scale(pre, gradient, |x| if x > 0.0 { 1.0 } else { 0.0 }),
            Activation::LeakyRelu => {
                scale(
                    pre,
                    gradient,
                    |x| {
                        if x < 0.0 { LEAKY_RELU_SLOPE } else { 1.0 }
                    },
                )
            }
            Activation::Tanh => scale(post, gradient, |y| 1.0 - y * y),
            Activation::Sigmoid => scale(post, gradient, |y| y * (1.0 - y)),
            Activation::Gelu => scale(pre, gradient, |x| {
                let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
                let density = (-0.5 * x * x).exp() * FRAC_1_SQRT_2PI;
                cdf + x * density
            }),
        }
    }
}

/// `1 / sqrt(2π)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn map(input: &[f32], out: &mut [f32], function: impl Fn(f32) -> f32) {
    for (out, &x) in out.iter_mut().zip(input) {
        *out = function(x);
    }
}

#[inline(always)]
fn scale(input: &[f32], gradient: &mut [f32], derivative: impl Fn(f32) -> f32) {
    for (gradient, &x) in gradient.iter_mut().zip(input) {
        *gradient *= derivative(x);
    }
}

#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    // 1 - 2 / (e^2x + 1): exact at both ends, where e^2x is 0 or saturates.
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// `e^x` to about 2 ulp, in plain arithmetic so that loops over it
/// vectorise (`f32::exp` is a libm call per value, which was the largest
/// cost of the activations). Cody–Waite reduction `x = n·ln 2 + r` with
/// `|r| ≤ ln 2 / 2`, a degree-6 polynomial for `e^r`, and `2^n` built from
/// its exponent bits.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Beyond these e^x is 0 or infinite in f32; clamping keeps `n` in range.
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and removing 1.5·2^23 (vectorises without
    // SSE4.1's `roundps`).
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // ln 2 in two parts, so that `n · LN2_HIGH` is exact.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let polynomial = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    // 2^n: adding 2^23 puts the integer n + 127 in the low mantissa bits,
    // and the shift moves it into the exponent (a float-to-int `as` would
    // saturate, which does not vectorise).
    const TWO_POW_23_PLUS_BIAS: f32 = 8_388_608.0 + 127.0;
    polynomial * f32::from_bits((n + TWO_POW_23_PLUS_BIAS).to_bits() << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_are_accurate() {
        let mut worst = [0f32; 3];
        for step in -40_000..=40_000 {
            let x = step as f32 / 1000.0;
            let errors = [
                (exp(x) - x.exp()).abs() / x.exp(),
                (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs(),
                (tanh(x) - x.tanh()).abs(),
            ];
            for (worst, error) in worst.iter_mut().zip(errors) {
                *worst = worst.max(error);
            }
        }
        let [exp_relative, sigmoid_absolute, tanh_absolute] = worst;
        assert!(exp_relative < 4e-7, "exp: relative error {exp_relative}");
        assert!(sigmoid_absolute < 2e-7, "sigmoid: error {sigmoid_absolute}");
        assert!(tanh_absolute < 4e-7, "tanh: error {tanh_absolute}");
        assert_eq!(exp(-200.0), exp(-87.0));
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
    }

    #[test]
    fn a_batch_splits_in_two_shards_from_twice_the_minimum() {
        let split = |batch| {
            shard_ranges(batch)
                .map(|samples| (samples.start, samples.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(split(31), [(0, 31)]);
        assert_eq!(split(32), [(0, 16), (16, 32)]);
        assert_eq!(split(33), [(0, 17), (17, 33)]);
        assert_eq!(split(64), [(0, 32), (32, 64)]);
    }
}
