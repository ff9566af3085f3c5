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

use crate::kernels::{
    self, Dropout, Output, add_into, as_f32, column_sums, draw_mask, each_shard, matrix,
    matrix_mut, product, resize, sigmoid, tanh, transposed_product,
};

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
    /// `hidden_weight` transposed, `[4·hidden, hidden]`: the backward
    /// pass's per-step product reads it in the layout the matrix kernel
    /// takes without packing (repacking `hidden_weight` at every step was a
    /// tenth of an LSTM step).
    hidden_weight_transposed: Vec<f32>,
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
        resize(&mut self.hidden_weight_transposed, width * hidden);
        matrix_mut(&mut self.hidden_weight_transposed, width, hidden)
            .assign(&matrix(&self.hidden_weight, hidden, width).t());
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
        let split = kernels::shard_ranges(batch);
        shards.resize_with(split.len(), Shard::default);
        for (shard, samples) in shards.iter_mut().zip(split) {
            let sample = steps * width;
            let features = &features[samples.start * sample..samples.end * sample];
            // Masks are drawn here, shard by shard, so that the draws do not
            // depend on which shard's thread runs first.
            shard.prepare(
                weights,
                features,
                samples.start,
                [samples.len(), steps, width],
                dropout.as_mut(),
            );
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
                    add_into(sum, part);
                }
            }
        }
        for ((layer, weights), lstm) in total.layers.iter().zip(weights.iter()).zip(layers) {
            layer.register(weights, lstm, device, gradients);
        }
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
                product(
                    &matrix(&layer.d_gates, steps * batch, 4 * hidden),
                    &matrix(&layer_weights.input_weight, input, 4 * hidden).t(),
                    Output::Overwrite,
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

        // The input projection of every step at once (the biases are added
        // with the activations).
        product(
            &matrix(&self.input, steps * batch, input),
            &matrix(&weights.input_weight, input, width),
            Output::Overwrite,
            &mut matrix_mut(&mut self.gates, steps * batch, width),
        );

        let block = batch * hidden;
        let arch = pulp::Arch::new();
        for step in 0..steps {
            let gates = &mut self.gates[step * batch * width..][..batch * width];
            product(
                &matrix(&self.hiddens[step * block..][..block], batch, hidden),
                &matrix(&weights.hidden_weight, hidden, width),
                Output::Accumulate,
                &mut matrix_mut(gates, batch, width),
            );
            let (cells_before, cells_after) = self.cells.split_at_mut((step + 1) * block);
            arch.dispatch(Step {
                hidden,
                bias: &weights.bias,
                gates,
                cells_before: &cells_before[step * block..],
                cells_after: &mut cells_after[..block],
                cell_tanh: &mut self.cell_tanh[step * block..][..block],
                hiddens: &mut self.hiddens[(step + 1) * block..][..block],
            });
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
        let arch = pulp::Arch::new();
        for step in (0..steps).rev() {
            let gates = &self.gates[step * batch * width..][..batch * width];
            let d_gates = &mut self.d_gates[step * batch * width..][..batch * width];
            let cells_before = &self.cells[step * block..][..block];
            let cell_tanh = &self.cell_tanh[step * block..][..block];
            let d_above = &d_above[step * block..][..block];
            arch.dispatch(StepGradients {
                hidden,
                gates,
                cells_before,
                cell_tanh,
                d_above,
                d_gates: &mut *d_gates,
                d_hidden,
                d_cell,
            });
            // The gradient reaching the previous step's hidden state.
            if step > 0 {
                product(
                    &matrix(d_gates, batch, width),
                    &matrix(&weights.hidden_weight_transposed, width, hidden),
                    Output::Overwrite,
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
        column_sums(&mut self.d_bias, &self.d_gates, width);
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

/// One time step of one layer's forward pass, for one shard.
struct Step<'a> {
    hidden: usize,
    /// `[4·hidden]`: added to the gates before their activations.
    bias: &'a [f32],
    /// `[batch, 4·hidden]`: the gates' pre-activations without the bias,
    /// activated in place.
    gates: &'a mut [f32],
    /// `[batch, hidden]` each: the cell state before the step, and the cell
    /// state, its `tanh` and the hidden state after it.
    cells_before: &'a [f32],
    cells_after: &'a mut [f32],
    cell_tanh: &'a mut [f32],
    hiddens: &'a mut [f32],
}

/// The activations, cell and hidden states of one step. `pulp` runs it
/// compiled for the CPU's widest vector unit (AVX-512 or AVX2) rather than
/// the baseline SSE2, so everything it calls is inlined into it. The
/// vector width does not change the results: there is no fused
/// multiply-add here, and each value is computed on its own.
impl pulp::WithSimd for Step<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let hidden = self.hidden;
        let samples = self
            .gates
            .chunks_exact_mut(4 * hidden)
            .zip(self.cells_before.chunks_exact(hidden))
            .zip(self.cells_after.chunks_exact_mut(hidden))
            .zip(self.cell_tanh.chunks_exact_mut(hidden))
            .zip(self.hiddens.chunks_exact_mut(hidden));
        for ((((gates, cell_before), cell_after), cell_tanh), hidden_state) in samples {
            sample_step(
                self.bias,
                gates,
                cell_before,
                cell_after,
                cell_tanh,
                hidden_state,
            );
        }
    }
}

/// [`Step`] for one sample; a function of its own for the reason given at
/// [`sample_gate_gradients`].
#[inline(always)]
fn sample_step(
    bias: &[f32],
    gates: &mut [f32],
    cell_before: &[f32],
    cell_after: &mut [f32],
    cell_tanh: &mut [f32],
    hidden_state: &mut [f32],
) {
    let hidden = cell_before.len();
    let (sigmoid_part, cell_gate) = gates.split_at_mut(3 * hidden);
    let (sigmoid_bias, cell_bias) = bias.split_at(3 * hidden);
    for (value, bias) in sigmoid_part.iter_mut().zip(sigmoid_bias) {
        *value = sigmoid(*value + bias);
    }
    for (value, bias) in cell_gate.iter_mut().zip(cell_bias) {
        *value = tanh(*value + bias);
    }
    let (input_gate, rest) = sigmoid_part.split_at(hidden);
    let (forget_gate, output_gate) = rest.split_at(hidden);
    // Equal lengths, visible to the compiler: no bounds checks.
    let (output_gate, cell_gate) = (&output_gate[..hidden], &cell_gate[..hidden]);
    let (cell_after, cell_tanh) = (&mut cell_after[..hidden], &mut cell_tanh[..hidden]);
    let hidden_state = &mut hidden_state[..hidden];
    for j in 0..hidden {
        let cell = forget_gate[j] * cell_before[j] + input_gate[j] * cell_gate[j];
        let squashed = tanh(cell);
        cell_after[j] = cell;
        cell_tanh[j] = squashed;
        hidden_state[j] = output_gate[j] * squashed;
    }
}

/// One time step of one layer's backward pass, for one shard: what the
/// forward pass kept, and the gradients (`d_`) it fills or carries to the
/// step before.
struct StepGradients<'a> {
    hidden: usize,
    /// `[batch, 4·hidden]`: the activated gates.
    gates: &'a [f32],
    /// `[batch, hidden]` each.
    cells_before: &'a [f32],
    cell_tanh: &'a [f32],
    d_above: &'a [f32],
    /// `[batch, 4·hidden]`: filled with the gates' pre-activation gradients.
    d_gates: &'a mut [f32],
    /// `[batch, hidden]`: the hidden state's gradient from the next step
    /// (read), and the cell state's (read, then replaced by the gradient
    /// for the step before).
    d_hidden: &'a [f32],
    d_cell: &'a mut [f32],
}

/// The gate gradients of one step; vectorised as [`Step`] is.
impl pulp::WithSimd for StepGradients<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let hidden = self.hidden;
        let width = 4 * hidden;
        let samples = self
            .gates
            .chunks_exact(width)
            .zip(self.d_gates.chunks_exact_mut(width))
            .zip(self.cells_before.chunks_exact(hidden))
            .zip(self.cell_tanh.chunks_exact(hidden))
            .zip(self.d_above.chunks_exact(hidden))
            .zip(self.d_hidden.chunks_exact(hidden))
            .zip(self.d_cell.chunks_exact_mut(hidden));
        for ((((((gates, d_gates), cell_before), cell_tanh), d_above), d_hidden), d_cell) in samples
        {
            sample_gate_gradients(
                gates,
                d_gates,
                cell_before,
                cell_tanh,
                d_above,
                d_hidden,
                d_cell,
            );
        }
    }
}

/// [`StepGradients`] for one sample. A function of its own so that its
/// slices are separate references: the compiler then knows they do not
/// overlap, and vectorises the loop without run-time overlap checks (of
/// which twelve streams need more than it is willing to emit).
#[inline(always)]
fn sample_gate_gradients(
    gates: &[f32],
    d_gates: &mut [f32],
    cell_before: &[f32],
    cell_tanh: &[f32],
    d_above: &[f32],
    d_hidden: &[f32],
    d_cell: &mut [f32],
) {
    let hidden = cell_before.len();
    let (input_gate, rest) = gates.split_at(hidden);
    let (forget_gate, rest) = rest.split_at(hidden);
    let (output_gate, cell_gate) = rest.split_at(hidden);
    let (d_input_gate, rest) = d_gates.split_at_mut(hidden);
    let (d_forget_gate, rest) = rest.split_at_mut(hidden);
    let (d_output_gate, d_cell_gate) = rest.split_at_mut(hidden);
    // Equal lengths, visible to the compiler: no bounds checks.
    let (cell_gate, d_cell_gate) = (&cell_gate[..hidden], &mut d_cell_gate[..hidden]);
    let (cell_tanh, d_above) = (&cell_tanh[..hidden], &d_above[..hidden]);
    let (d_hidden, d_cell) = (&d_hidden[..hidden], &mut d_cell[..hidden]);
    for j in 0..hidden {
        let (i, f, o, g) = (input_gate[j], forget_gate[j], output_gate[j], cell_gate[j]);
        let squashed = cell_tanh[j];
        let dh = d_above[j] + d_hidden[j];
        let dc = d_cell[j] + dh * o * (1.0 - squashed * squashed);
        d_input_gate[j] = dc * g * i * (1.0 - i);
        d_forget_gate[j] = dc * cell_before[j] * f * (1.0 - f);
        d_output_gate[j] = dh * squashed * o * (1.0 - o);
        d_cell_gate[j] = dc * i * (1.0 - g * g);
        d_cell[j] = dc * f;
    }
}

#[cfg(test)]
mod tests;
