//! The LSTM stack's forward and backward passes, fused and written out by
//! hand, so that a sequence costs a few matrix products instead of hundreds
//! of small autodiff operations.
//!
//! burn's `Lstm` computes eight small matrix products, four activations and a
//! `slice_assign` per time step, and autodiff records and replays every one of
//! them: at the shapes of a trading model (batch 64, 16 steps, hidden 64) the
//! per-operation overhead, not the arithmetic, was most of a training step.
//! Here, per layer:
//! - the four gates' weights are fused into one `[input, 4·hidden]` and one
//!   `[hidden, 4·hidden]` matrix (gate order input, forget, output, cell);
//! - the input projection of all time steps is one matrix product;
//! - a time step is one `[batch, hidden] × [hidden, 4·hidden]` product plus
//!   one pass over the gates that computes the activations, cell and hidden
//!   state together;
//! - the backward pass (backpropagation through time) keeps the activations
//!   of the forward pass, runs one `[batch, 4·hidden] × [4·hidden, hidden]`
//!   product per step, and forms the weight gradients of all steps in two
//!   large products at the end.
//!
//! The weights stay in burn's `Lstm` modules, so the parameters, their seeded
//! initialisation, the optimizer state and the saved artifacts are exactly
//! what they were; only the arithmetic moved here. The gradients go back to
//! burn as [`GradientsParams`] of those same parameters. Buffers are reused
//! from batch to batch: after the first batch of a shape, a training step
//! allocates nothing here beyond burn's weight read-back and gradient tensors.
//!
//! A batch of 32 samples or more is split into two shards that run in
//! parallel (the recurrence is sequential in time, so the batch is the only
//! parallelism at these sizes); their weight gradients are summed in a fixed
//! order, so results do not depend on the number of cores.
//!
//! Buffers are time-major (`[step, batch, ·]`), so every time step is one
//! contiguous block. Results match burn's `Lstm` to float rounding (the
//! summation order of the products differs); a test compares both.

use burn::module::Param;
use burn::nn::Lstm;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// One layer's weights, fused. Gate blocks in the order input, forget,
/// output, cell (the first three share the sigmoid).
#[derive(Debug, Default)]
struct Weights {
    input: usize,
    hidden: usize,
    /// `[input, 4·hidden]`.
    input_weight: Vec<f32>,
    /// `[hidden, 4·hidden]`.
    hidden_weight: Vec<f32>,
    /// `[4·hidden]`: burn's two biases of each gate, summed.
    bias: Vec<f32>,
}

/// burn's parameters of one gate, in fused order.
fn gates(lstm: &Lstm) -> [&burn::nn::GateController; 4] {
    let forget = lstm
        .forget_gate
        .as_ref()
        .expect("the model's LSTMs are built with a forget gate");
    [&lstm.input_gate, forget, &lstm.output_gate, &lstm.cell_gate]
}

/// A parameter's values; LSTM parameters are always `f32`.
fn values<const D: usize>(param: &Param<Tensor<D>>) -> TensorData {
    param.val().into_data()
}

pub(crate) fn as_f32(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("LSTM parameters are f32 tensors")
}

impl Weights {
    /// Reads `lstm`'s current parameters into fused form.
    fn load(&mut self, lstm: &Lstm) {
        let [input, hidden] = lstm.input_gate.input_transform.weight.dims();
        let width = 4 * hidden;
        self.input = input;
        self.hidden = hidden;
        resize(&mut self.input_weight, input * width);
        resize(&mut self.hidden_weight, hidden * width);
        resize(&mut self.bias, width);
        for (gate, controller) in gates(lstm).into_iter().enumerate() {
            let columns = gate * hidden..(gate + 1) * hidden;
            for (transform, fused) in [
                (&controller.input_transform, &mut self.input_weight),
                (&controller.hidden_transform, &mut self.hidden_weight),
            ] {
                let weight = values(&transform.weight);
                for (row, source) in as_f32(&weight).chunks_exact(hidden).enumerate() {
                    fused[row * width..][columns.clone()].copy_from_slice(source);
                }
            }
            let bias = &mut self.bias[columns];
            bias.fill(0.0);
            for transform in [&controller.input_transform, &controller.hidden_transform] {
                let values = values(transform.bias.as_ref().expect("LSTM gates have biases"));
                for (sum, value) in bias.iter_mut().zip(as_f32(&values)) {
                    *sum += value;
                }
            }
        }
    }
}

/// What one layer's forward pass keeps for its backward pass, and its
/// gradients once that has run, for one shard of the batch. All time-major.
#[derive(Debug, Default)]
struct Layer {
    /// `[steps, batch, input]`: this layer's input (after dropout).
    input: Vec<f32>,
    /// `[steps, batch, 4·hidden]`: the activated gates i, f, o, g.
    gates: Vec<f32>,
    /// `[steps + 1, batch, hidden]`: cell states, the first all zero.
    cells: Vec<f32>,
    /// `[steps, batch, hidden]`: `tanh` of each cell state.
    cell_tanh: Vec<f32>,
    /// `[steps + 1, batch, hidden]`: hidden states, the first all zero.
    hiddens: Vec<f32>,
    /// Gradients: `[steps, batch, 4·hidden]` of the gate pre-activations,
    /// then of the fused weights and the bias.
    d_gates: Vec<f32>,
    d_input_weight: Vec<f32>,
    d_hidden_weight: Vec<f32>,
    d_bias: Vec<f32>,
}

/// Batches of at least twice this many samples are split into two shards
/// that run in parallel, each on its own core.
///
/// The split depends on the batch size alone, never on the machine's cores:
/// the shards' gradients are summed in a fixed order, so a seed gives the
/// same model whatever the number of cores.
const MIN_SHARD_SAMPLES: usize = 16;

/// The LSTM stack of a network: its fused weights and, per shard of the
/// batch, its buffers, reused from batch to batch.
#[derive(Debug, Default)]
pub(crate) struct LstmStack {
    weights: Vec<Weights>,
    shards: Vec<Shard>,
    /// `[batch, hidden]`: the top layer's last hidden state, all shards.
    last: Vec<f32>,
}

/// Consecutive samples of a batch, run through the whole stack.
#[derive(Debug, Default)]
struct Shard {
    /// The shard's first sample within the batch, and its sample count.
    first: usize,
    batch: usize,
    steps: usize,
    layers: Vec<Layer>,
    /// Per layer below the top: the inverted-dropout mask applied to its
    /// output (`[steps, batch, hidden]`), empty when dropout is off.
    masks: Vec<Vec<f32>>,
    /// Backward scratch: the gradient reaching a layer's hidden states from
    /// the next step, its cell state, and from the layer above.
    d_hidden: Vec<f32>,
    d_cell: Vec<f32>,
    d_above: Vec<f32>,
}

/// Inverted dropout during training: the probability of dropping a value and
/// the generator its masks are drawn from.
pub(crate) struct Dropout<'a> {
    pub(crate) probability: f64,
    pub(crate) rng: &'a mut fastrand::Rng,
}

impl LstmStack {
    /// Runs `layers` over `features` (`[batch, steps, width]`, batch-major as
    /// the samples are stored) and returns the top layer's last hidden state
    /// (`[batch, hidden]`). With `dropout`, each layer's output but the top's
    /// is dropped out before it feeds the next layer; the top's is left to
    /// the caller.
    pub(crate) fn forward(
        &mut self,
        layers: &[Lstm],
        features: &[f32],
        [batch, steps, width]: [usize; 3],
        mut dropout: Option<Dropout<'_>>,
    ) -> &[f32] {
        assert!(!layers.is_empty(), "an LSTM stack has at least one layer");
        let Self {
            weights,
            shards,
            last,
        } = self;
        weights.resize_with(layers.len(), Weights::default);
        for (weights, lstm) in weights.iter_mut().zip(layers) {
            weights.load(lstm);
        }
        let shard_count = if batch >= 2 * MIN_SHARD_SAMPLES { 2 } else { 1 };
        shards.resize_with(shard_count, Shard::default);
        let mut first = 0;
        for (index, shard) in shards.iter_mut().enumerate() {
            let samples = batch / shard_count + usize::from(index < batch % shard_count);
            let features = &features[first * steps * width..][..samples * steps * width];
            // Masks are drawn here, shard by shard, so that the draws do not
            // depend on which shard's thread runs first.
            shard.prepare(
                weights,
                features,
                first,
                [samples, steps, width],
                dropout.as_mut(),
            );
            first += samples;
        }
        each_shard(shards, |shard| shard.forward(weights));

        let hidden = weights.last().expect("at least one layer").hidden;
        last.clear();
        for shard in shards.iter() {
            let top = shard.layers.last().expect("at least one layer");
            last.extend_from_slice(&top.hiddens[shard.steps * shard.batch * hidden..]);
        }
        last
    }

    /// Backpropagates `d_last` (`[batch, hidden]`, the loss's gradient with
    /// respect to the top layer's last hidden state, as returned by
    /// [`forward`](Self::forward)) through the whole stack, and registers the
    /// gradients of every parameter of `layers` in `gradients`.
    ///
    /// `layers` must be the modules of the last `forward`, unchanged.
    pub(crate) fn backward(
        &mut self,
        layers: &[Lstm],
        d_last: &[f32],
        device: &Device,
        gradients: &mut GradientsParams,
    ) {
        let Self {
            weights, shards, ..
        } = self;
        let hidden = weights.last().expect("forward ran").hidden;
        each_shard(shards, |shard| {
            let d_last = &d_last[shard.first * hidden..][..shard.batch * hidden];
            shard.backward(weights, d_last);
        });
        // The batch's gradients: the shards' summed, always in shard order.
        let (total, rest) = shards.split_first_mut().expect("forward ran");
        for shard in rest.iter() {
            for (sum, layer) in total.layers.iter_mut().zip(&shard.layers) {
                for (sum, part) in [
                    (&mut sum.d_input_weight, &layer.d_input_weight),
                    (&mut sum.d_hidden_weight, &layer.d_hidden_weight),
                    (&mut sum.d_bias, &layer.d_bias),
                ] {
                    for (sum, value) in sum.iter_mut().zip(part) {
                        *sum += value;
                    }
                }
            }
        }
        for ((layer, weights), lstm) in total.layers.iter().zip(weights.iter()).zip(layers) {
            layer.register(weights, lstm, device, gradients);
        }
    }
}

/// Runs `work` on every shard, in parallel when there are several.
fn each_shard(shards: &mut [Shard], work: impl Fn(&mut Shard) + Sync) {
    match shards {
        [first, second] => {
            rayon::join(|| work(first), || work(second));
        }
        shards => shards.iter_mut().for_each(work),
    }
}

impl Shard {
    /// Takes this shard's samples (transposed to time-major) and draws its
    /// dropout masks.
    fn prepare(
        &mut self,
        weights: &[Weights],
        features: &[f32],
        first: usize,
        [batch, steps, width]: [usize; 3],
        dropout: Option<&mut Dropout<'_>>,
    ) {
        self.first = first;
        self.batch = batch;
        self.steps = steps;
        self.layers.resize_with(weights.len(), Layer::default);
        self.masks.resize_with(weights.len() - 1, Vec::new);
        let input = &mut self.layers[0].input;
        resize(input, steps * batch * width);
        for (sample, values) in features.chunks_exact(steps * width).enumerate() {
            for (step, bar) in values.chunks_exact(width).enumerate() {
                input[(step * batch + sample) * width..][..width].copy_from_slice(bar);
            }
        }
        match dropout {
            Some(dropout) if dropout.probability > 0.0 => {
                for (mask, below) in self.masks.iter_mut().zip(weights) {
                    draw_mask(mask, steps * batch * below.hidden, dropout);
                }
            }
            _ => self.masks.iter_mut().for_each(Vec::clear),
        }
    }

    fn forward(&mut self, weights: &[Weights]) {
        let (steps, batch) = (self.steps, self.batch);
        for (index, weights) in weights.iter().enumerate() {
            self.layers[index].forward(weights, steps, batch);
            if index + 1 < self.layers.len() {
                // The next layer's input: this one's hidden states, dropped out.
                let (below, above) = self.layers.split_at_mut(index + 1);
                let output = &below[index].hiddens[batch * weights.hidden..];
                let next = &mut above[0].input;
                resize(next, output.len());
                let mask = &self.masks[index];
                if mask.is_empty() {
                    next.copy_from_slice(output);
                } else {
                    for ((next, value), keep) in next.iter_mut().zip(output).zip(mask) {
                        *next = value * keep;
                    }
                }
            }
        }
    }

    /// Fills every layer's gradients from `d_last`, this shard's rows of the
    /// gradient of the top layer's last hidden state.
    fn backward(&mut self, weights: &[Weights], d_last: &[f32]) {
        let (steps, batch) = (self.steps, self.batch);
        // The gradient arriving from above: for the top layer only its last
        // hidden state has one.
        let top = weights.last().expect("at least one layer").hidden;
        resize(&mut self.d_above, steps * batch * top);
        self.d_above.fill(0.0);
        self.d_above[(steps - 1) * batch * top..].copy_from_slice(d_last);

        for index in (0..self.layers.len()).rev() {
            let layer = &mut self.layers[index];
            let layer_weights = &weights[index];
            layer.backward(
                layer_weights,
                steps,
                batch,
                &self.d_above,
                &mut self.d_hidden,
                &mut self.d_cell,
            );
            layer.weights_gradients(layer_weights, steps, batch);
            if index > 0 {
                // The gradient of the layer below's output: through this
                // layer's input, then through the dropout mask.
                let Weights { input, hidden, .. } = *layer_weights;
                resize(&mut self.d_above, steps * batch * input);
                general_mat_mul(
                    1.0,
                    &matrix(&layer.d_gates, steps * batch, 4 * hidden),
                    &matrix(&layer_weights.input_weight, input, 4 * hidden).t(),
                    0.0,
                    &mut matrix_mut(&mut self.d_above, steps * batch, input),
                );
                let mask = &self.masks[index - 1];
                if !mask.is_empty() {
                    for (gradient, keep) in self.d_above.iter_mut().zip(mask) {
                        *gradient *= keep;
                    }
                }
            }
        }
    }
}

impl Layer {
    /// Fills `gates`, `cells`, `cell_tanh` and `hiddens` from `input`.
    fn forward(&mut self, weights: &Weights, steps: usize, batch: usize) {
        let Weights { input, hidden, .. } = *weights;
        let width = 4 * hidden;
        resize(&mut self.gates, steps * batch * width);
        resize(&mut self.cells, (steps + 1) * batch * hidden);
        resize(&mut self.cell_tanh, steps * batch * hidden);
        resize(&mut self.hiddens, (steps + 1) * batch * hidden);
        self.cells[..batch * hidden].fill(0.0);
        self.hiddens[..batch * hidden].fill(0.0);

        // The input projection of every step at once, biases included.
        for row in self.gates.chunks_exact_mut(width) {
            row.copy_from_slice(&weights.bias);
        }
        general_mat_mul(
            1.0,
            &matrix(&self.input, steps * batch, input),
            &matrix(&weights.input_weight, input, width),
            1.0,
            &mut matrix_mut(&mut self.gates, steps * batch, width),
        );

        let block = batch * hidden;
        for step in 0..steps {
            let gates = &mut self.gates[step * batch * width..][..batch * width];
            general_mat_mul(
                1.0,
                &matrix(&self.hiddens[step * block..][..block], batch, hidden),
                &matrix(&weights.hidden_weight, hidden, width),
                1.0,
                &mut matrix_mut(gates, batch, width),
            );
            let (cells_before, cells_after) = self.cells.split_at_mut((step + 1) * block);
            let cells_before = &cells_before[step * block..];
            let cells_after = &mut cells_after[..block];
            let cell_tanh = &mut self.cell_tanh[step * block..][..block];
            let hiddens = &mut self.hiddens[(step + 1) * block..][..block];
            for sample in 0..batch {
                let offset = sample * hidden;
                let gates = &mut gates[sample * width..][..width];
                let (sigmoid_part, cell_gate) = gates.split_at_mut(3 * hidden);
                for value in sigmoid_part.iter_mut() {
                    *value = sigmoid(*value);
                }
                for value in cell_gate.iter_mut() {
                    *value = tanh(*value);
                }
                let (input_gate, rest) = sigmoid_part.split_at(hidden);
                let (forget_gate, output_gate) = rest.split_at(hidden);
                for j in 0..hidden {
                    let cell =
                        forget_gate[j] * cells_before[offset + j] + input_gate[j] * cell_gate[j];
                    let squashed = tanh(cell);
                    cells_after[offset + j] = cell;
                    cell_tanh[offset + j] = squashed;
                    hiddens[offset + j] = output_gate[j] * squashed;
                }
            }
        }
    }

    /// Backpropagation through time: fills `d_gates` from the gradient of
    /// every hidden state arriving from above (`d_above`, `[steps, batch,
    /// hidden]`).
    fn backward(
        &mut self,
        weights: &Weights,
        steps: usize,
        batch: usize,
        d_above: &[f32],
        d_hidden: &mut Vec<f32>,
        d_cell: &mut Vec<f32>,
    ) {
        let hidden = weights.hidden;
        let width = 4 * hidden;
        let block = batch * hidden;
        resize(&mut self.d_gates, steps * batch * width);
        resize(d_hidden, block);
        resize(d_cell, block);
        d_hidden.fill(0.0);
        d_cell.fill(0.0);
        for step in (0..steps).rev() {
            let gates = &self.gates[step * batch * width..][..batch * width];
            let d_gates = &mut self.d_gates[step * batch * width..][..batch * width];
            let cells_before = &self.cells[step * block..][..block];
            let cell_tanh = &self.cell_tanh[step * block..][..block];
            let d_above = &d_above[step * block..][..block];
            for sample in 0..batch {
                let gates = &gates[sample * width..][..width];
                let d_gates = &mut d_gates[sample * width..][..width];
                let (input_gate, rest) = gates.split_at(hidden);
                let (forget_gate, rest) = rest.split_at(hidden);
                let (output_gate, cell_gate) = rest.split_at(hidden);
                let (d_input_gate, rest) = d_gates.split_at_mut(hidden);
                let (d_forget_gate, rest) = rest.split_at_mut(hidden);
                let (d_output_gate, d_cell_gate) = rest.split_at_mut(hidden);
                let offset = sample * hidden;
                for j in 0..hidden {
                    let (i, f, o, g) =
                        (input_gate[j], forget_gate[j], output_gate[j], cell_gate[j]);
                    let squashed = cell_tanh[offset + j];
                    let dh = d_above[offset + j] + d_hidden[offset + j];
                    let dc = d_cell[offset + j] + dh * o * (1.0 - squashed * squashed);
                    d_input_gate[j] = dc * g * i * (1.0 - i);
                    d_forget_gate[j] = dc * cells_before[offset + j] * f * (1.0 - f);
                    d_output_gate[j] = dh * squashed * o * (1.0 - o);
                    d_cell_gate[j] = dc * i * (1.0 - g * g);
                    d_cell[offset + j] = dc * f;
                }
            }
            // The gradient reaching the previous step's hidden state.
            if step > 0 {
                general_mat_mul(
                    1.0,
                    &matrix(d_gates, batch, width),
                    &matrix(&weights.hidden_weight, hidden, width).t(),
                    0.0,
                    &mut matrix_mut(d_hidden, batch, hidden),
                );
            }
        }
    }

    /// The fused weight and bias gradients of all steps, from `d_gates`.
    fn weights_gradients(&mut self, weights: &Weights, steps: usize, batch: usize) {
        let Weights { input, hidden, .. } = *weights;
        let width = 4 * hidden;
        let rows = steps * batch;
        resize(&mut self.d_input_weight, input * width);
        resize(&mut self.d_hidden_weight, hidden * width);
        resize(&mut self.d_bias, width);
        transposed_product(
            &mut self.d_input_weight,
            &self.input,
            &self.d_gates,
            [rows, input, width],
        );
        // Step t's gates saw hidden state t - 1: the first `steps` of them.
        transposed_product(
            &mut self.d_hidden_weight,
            &self.hiddens,
            &self.d_gates,
            [rows, hidden, width],
        );
        self.d_bias.fill(0.0);
        for row in self.d_gates.chunks_exact(width) {
            for (sum, value) in self.d_bias.iter_mut().zip(row) {
                *sum += value;
            }
        }
    }

    /// Registers the fused gradients as gradients of `lstm`'s parameters.
    fn register(
        &self,
        weights: &Weights,
        lstm: &Lstm,
        device: &Device,
        gradients: &mut GradientsParams,
    ) {
        let Weights { input, hidden, .. } = *weights;
        let width = 4 * hidden;
        for (gate, controller) in gates(lstm).into_iter().enumerate() {
            let columns = gate * hidden..(gate + 1) * hidden;
            for (transform, fused, rows) in [
                (&controller.input_transform, &self.d_input_weight, input),
                (&controller.hidden_transform, &self.d_hidden_weight, hidden),
            ] {
                let mut weight = Vec::with_capacity(rows * hidden);
                for row in fused.chunks_exact(width) {
                    weight.extend_from_slice(&row[columns.clone()]);
                }
                gradients.register(
                    transform.weight.id,
                    Tensor::<2>::from_data(TensorData::new(weight, [rows, hidden]), device),
                );
                // Both biases of a gate enter as one sum, so both get its gradient.
                let bias = transform.bias.as_ref().expect("LSTM gates have biases");
                let values = self.d_bias[columns.clone()].to_vec();
                gradients.register(
                    bias.id,
                    Tensor::<1>::from_data(TensorData::new(values, [hidden]), device),
                );
            }
        }
    }
}

/// matrixmultiply splits a product over threads once its `m·k + k·n`
/// reaches this; see [`transposed_product`].
const THREADED_PRODUCT_SIZE: usize = 1 << 15;

/// `out = leftᵀ · right` for `left` `[rows, a]` and `right` `[rows, b]`,
/// summed over chunks of rows small enough to stay on the calling thread:
/// the shards already keep every core busy, and letting matrixmultiply add
/// threads of its own made an LSTM step 14 % slower.
fn transposed_product(out: &mut [f32], left: &[f32], right: &[f32], [rows, a, b]: [usize; 3]) {
    let chunk = ((THREADED_PRODUCT_SIZE - 1) / (a + b)).max(1);
    let mut out = matrix_mut(out, a, b);
    let mut beta = 0.0;
    for start in (0..rows).step_by(chunk) {
        let len = chunk.min(rows - start);
        general_mat_mul(
            1.0,
            &matrix(&left[start * a..], len, a).t(),
            &matrix(&right[start * b..], len, b),
            beta,
            &mut out,
        );
        beta = 1.0;
    }
}

/// Fills `mask` with `len` inverted-dropout factors (0 or `1 / keep`).
fn draw_mask(mask: &mut Vec<f32>, len: usize, dropout: &mut Dropout<'_>) {
    let keep = 1.0 - dropout.probability;
    let scale = (1.0 / keep) as f32;
    mask.clear();
    mask.extend((0..len).map(|_| if dropout.rng.f64() < keep { scale } else { 0.0 }));
}

/// Sets `buffer` to `len` values, reusing its allocation; the values are
/// whatever was there (every caller overwrites them).
fn resize(buffer: &mut Vec<f32>, len: usize) {
    buffer.resize(len, 0.0);
}

fn matrix(values: &[f32], rows: usize, columns: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, columns), &values[..rows * columns])
        .expect("buffers are sized for their matrices")
}

fn matrix_mut(values: &mut [f32], rows: usize, columns: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, columns), &mut values[..rows * columns])
        .expect("buffers are sized for their matrices")
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

fn tanh(x: f32) -> f32 {
    // 1 - 2 / (e^2x + 1): exact at both ends, where e^2x is 0 or saturates.
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// `e^x` to about 2 ulp, in plain arithmetic so that loops over it
/// vectorise (`f32::exp` is a libm call per value, which was the largest
/// cost of the activations). Cody–Waite reduction `x = n·ln 2 + r` with
/// `|r| ≤ ln 2 / 2`, a degree-6 polynomial for `e^r`, and `2^n` built from
/// its exponent bits.
fn exp(x: f32) -> f32 {
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
mod tests;
