//! The CNN body's forward and backward passes written out by hand on the
//! CPU, as the `lstm` module does for the LSTM.
//!
//! At a trading model's shapes (8 bars, 17 features, 16 channels, batch 128)
//! a convolution is a few thousand multiply-adds per sample, and burn's
//! general convolution (a 3-D kernel, its transposed form for the backward
//! pass, threads woken per operation, autodiff bookkeeping) cost several
//! times the arithmetic. Here each layer is:
//! - forward: the window unrolled into one row per output position holding
//!   the `kernel` neighbouring bars of every input channel ("im2col"), one
//!   matrix product with the weights laid out as `[kernel·in, out]`, the
//!   bias, the activation and the dropout mask;
//! - backward: the mask and the activation's derivative, then two products:
//!   the weight gradient (unrolled rows ᵀ × output gradient) and, below the
//!   first layer, the unrolled input's gradient, folded back onto the bars
//!   it came from.
//!
//! The weights stay in burn's `Conv1d` modules (initialisation, optimizer
//! state and artifacts are unchanged) and the gradients go back to burn as
//! [`GradientsParams`] of those parameters. The output is flattened
//! channel-major (`[channels, bars]` per sample), as burn's reshape of
//! `[batch, channels, bars]` was, so the head's weights mean what they
//! meant. A batch runs as shards on two cores, as in `lstm`.
//!
//! Buffers are sample-major and position-major (`[sample, bar, channel]`,
//! the way samples are stored), so a layer's rows are the batch's
//! positions. Results match burn's `Conv1d` to float rounding; a test
//! compares both for every activation.

use burn::nn::conv::Conv1d;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use strategy::Activation;

use crate::kernels::{
    self, Dropout, Output, activate, activation_backward, add_into, as_f32, column_sums, draw_mask,
    each_shard, matrix, matrix_mut, product, resize, transposed_product,
};

/// A convolution's bias; the networks' convolutions always have one.
fn bias(conv: &Conv1d) -> &burn::module::Param<Tensor<1>> {
    conv.bias
        .as_ref()
        .expect("the CNN's convolutions have biases")
}

/// One layer's weights, as one matrix.
#[derive(Debug, Default)]
struct Weights {
    input: usize,
    output: usize,
    kernel: usize,
    /// `[kernel·input, output]`: row `tap·input + channel` holds the weights
    /// of `channel` at kernel position `tap` (burn's `[output, input,
    /// kernel]`, rearranged).
    weight: Vec<f32>,
    /// `[output]`.
    bias: Vec<f32>,
}

impl Weights {
    /// Reads `conv`'s current parameters.
    fn load(&mut self, conv: &Conv1d) {
        let [output, input, kernel] = conv.weight.dims();
        assert!(
            kernel % 2 == 1 && conv.stride == 1 && conv.dilation == 1 && conv.groups == 1,
            "the CNN's convolutions keep the window's length"
        );
        self.input = input;
        self.output = output;
        self.kernel = kernel;
        resize(&mut self.weight, kernel * input * output);
        let values = conv.weight.val().into_data();
        // burn's layout: [output][input][kernel].
        for (index, &value) in as_f32(&values).iter().enumerate() {
            let (tap, channel, out) = (
                index % kernel,
                index / kernel % input,
                index / (kernel * input),
            );
            self.weight[(tap * input + channel) * output + out] = value;
        }
        let values = bias(conv).val().into_data();
        self.bias.clear();
        self.bias.extend_from_slice(as_f32(&values));
    }

    /// The unrolled row's width.
    fn taps(&self) -> usize {
        self.kernel * self.input
    }
}

/// One layer's buffers for one shard: what the forward pass keeps for the
/// backward pass, and the layer's gradients once that has run.
#[derive(Debug, Default)]
struct Layer {
    /// `[positions, kernel·input]`: the unrolled input.
    columns: Vec<f32>,
    /// `[positions, output]`: before the activation, and after it.
    pre: Vec<f32>,
    post: Vec<f32>,
    /// `[positions, output]`: the inverted-dropout mask (empty when dropout
    /// is off), and `post` times it.
    mask: Vec<f32>,
    dropped: Vec<f32>,
    /// Gradients: of `pre`, then of the weights (`[kernel·input, output]`)
    /// and the bias.
    d_pre: Vec<f32>,
    d_weight: Vec<f32>,
    d_bias: Vec<f32>,
}

impl Layer {
    /// What the next layer reads: the output after dropout.
    fn output(&self) -> &[f32] {
        if self.mask.is_empty() {
            &self.post
        } else {
            &self.dropped
        }
    }
}

/// Consecutive samples of a batch, run through the whole stack.
#[derive(Debug, Default)]
struct Shard {
    /// The shard's first sample within the batch, and its sample count.
    first: usize,
    batch: usize,
    layers: Vec<Layer>,
    /// Backward scratch: the gradient of a layer's output (`[positions,
    /// output]`), and of its unrolled input.
    d_output: Vec<f32>,
    d_columns: Vec<f32>,
}

/// The convolutions of a CNN: their weights and, per shard of the batch,
/// their buffers, reused from batch to batch.
#[derive(Debug, Default)]
pub(crate) struct ConvStack {
    weights: Vec<Weights>,
    shards: Vec<Shard>,
    /// Bars per sample.
    window: usize,
    /// `[batch, channels·window]`: the flattened output, all shards.
    flat: Vec<f32>,
}

impl ConvStack {
    /// Runs `convs`, each followed by `activation` (and, with `dropout`,
    /// inverted dropout), over `features` (`[batch, window, width]`), and
    /// returns the last layer's output flattened channel-major
    /// (`[batch, channels·window]`).
    pub(crate) fn forward(
        &mut self,
        convs: &[Conv1d],
        activation: Activation,
        features: &[f32],
        [batch, window, width]: [usize; 3],
        mut dropout: Option<Dropout<'_>>,
    ) -> &[f32] {
        assert!(
            !convs.is_empty(),
            "a fused CNN has at least one convolution"
        );
        let Self {
            weights,
            shards,
            window: bars,
            flat,
        } = self;
        *bars = window;
        weights.resize_with(convs.len(), Weights::default);
        for (weights, conv) in weights.iter_mut().zip(convs) {
            weights.load(conv);
        }
        let split = kernels::shard_ranges(batch);
        shards.resize_with(split.len(), Shard::default);
        for (shard, samples) in shards.iter_mut().zip(split) {
            shard.first = samples.start;
            shard.batch = samples.len();
            shard.layers.resize_with(weights.len(), Layer::default);
            // Drawn here, shard by shard: the draws do not depend on which
            // shard's thread runs first.
            for (layer, weights) in shard.layers.iter_mut().zip(weights.iter()) {
                match dropout.as_mut() {
                    Some(dropout) if dropout.probability > 0.0 => {
                        draw_mask(
                            &mut layer.mask,
                            samples.len() * window * weights.output,
                            dropout,
                        );
                    }
                    _ => layer.mask.clear(),
                }
            }
        }
        let sample = window * width;
        each_shard(shards, |shard| {
            let features = &features[shard.first * sample..][..shard.batch * sample];
            shard.forward(weights, activation, features, window);
        });

        let channels = weights.last().expect("at least one layer").output;
        resize(flat, batch * channels * window);
        for shard in shards.iter() {
            let top = shard.layers.last().expect("at least one layer").output();
            let rows = top.chunks_exact(window * channels);
            let flat_rows =
                flat[shard.first * channels * window..].chunks_exact_mut(channels * window);
            for (sample, flat_sample) in rows.zip(flat_rows) {
                // [bar, channel] -> [channel, bar].
                for (bar, values) in sample.chunks_exact(channels).enumerate() {
                    for (channel, &value) in values.iter().enumerate() {
                        flat_sample[channel * window + bar] = value;
                    }
                }
            }
        }
        flat
    }

    /// Backpropagates `d_flat` (`[batch, channels·window]`, the loss's
    /// gradient with respect to what [`forward`](Self::forward) returned)
    /// through the stack, and registers the gradients of every parameter of
    /// `convs` in `gradients`.
    ///
    /// `convs` must be the modules of the last `forward`, unchanged.
    pub(crate) fn backward(
        &mut self,
        convs: &[Conv1d],
        activation: Activation,
        d_flat: &[f32],
        device: &Device,
        gradients: &mut GradientsParams,
    ) {
        let Self {
            weights,
            shards,
            window,
            ..
        } = self;
        let window = *window;
        let channels = weights.last().expect("forward ran").output;
        each_shard(shards, |shard| {
            let d_flat =
                &d_flat[shard.first * channels * window..][..shard.batch * channels * window];
            shard.backward(weights, activation, d_flat, window);
        });
        // The batch's gradients: the shards' summed, always in shard order.
        let (total, rest) = shards.split_first_mut().expect("forward ran");
        for shard in rest.iter() {
            for (sum, layer) in total.layers.iter_mut().zip(&shard.layers) {
                for (sum, part) in [
                    (&mut sum.d_weight, &layer.d_weight),
                    (&mut sum.d_bias, &layer.d_bias),
                ] {
                    add_into(sum, part);
                }
            }
        }
        for ((layer, weights), conv) in total.layers.iter().zip(weights.iter()).zip(convs) {
            layer.register(weights, conv, device, gradients);
        }
    }
}

impl Shard {
    fn forward(
        &mut self,
        weights: &[Weights],
        activation: Activation,
        features: &[f32],
        window: usize,
    ) {
        let positions = self.batch * window;
        for (index, weights) in weights.iter().enumerate() {
            let (below, this) = self.layers.split_at_mut(index);
            let input = match below.last() {
                Some(below) => below.output(),
                None => features,
            };
            this[0].forward(weights, activation, input, positions, window);
        }
    }

    /// Fills every layer's gradients from `d_flat`, this shard's rows of the
    /// gradient of the flattened output.
    fn backward(
        &mut self,
        weights: &[Weights],
        activation: Activation,
        d_flat: &[f32],
        window: usize,
    ) {
        let positions = self.batch * window;
        let channels = weights.last().expect("at least one layer").output;
        // [channel, bar] -> [bar, channel], per sample.
        resize(&mut self.d_output, positions * channels);
        for (flat_sample, sample) in d_flat
            .chunks_exact(channels * window)
            .zip(self.d_output.chunks_exact_mut(window * channels))
        {
            for (bar, values) in sample.chunks_exact_mut(channels).enumerate() {
                for (channel, value) in values.iter_mut().enumerate() {
                    *value = flat_sample[channel * window + bar];
                }
            }
        }
        for index in (0..self.layers.len()).rev() {
            let layer = &mut self.layers[index];
            let layer_weights = &weights[index];
            layer.backward(layer_weights, activation, &self.d_output, positions);
            if index > 0 {
                // The gradient of the layer below's output: through the
                // unrolled input, folded back onto the bars.
                let taps = layer_weights.taps();
                resize(&mut self.d_columns, positions * taps);
                product(
                    &matrix(&layer.d_pre, positions, layer_weights.output),
                    &matrix(&layer_weights.weight, taps, layer_weights.output).t(),
                    Output::Overwrite,
                    &mut matrix_mut(&mut self.d_columns, positions, taps),
                );
                fold(&self.d_columns, &mut self.d_output, layer_weights, window);
            }
        }
    }
}

impl Layer {
    /// Fills `columns`, `pre`, `post` and `dropped` from `input`
    /// (`[positions, input]`).
    fn forward(
        &mut self,
        weights: &Weights,
        activation: Activation,
        input: &[f32],
        positions: usize,
        window: usize,
    ) {
        let (taps, output) = (weights.taps(), weights.output);
        resize(&mut self.columns, positions * taps);
        unroll(input, &mut self.columns, weights, window);
        resize(&mut self.pre, positions * output);
        for row in self.pre.chunks_exact_mut(output) {
            row.copy_from_slice(&weights.bias);
        }
        product(
            &matrix(&self.columns, positions, taps),
            &matrix(&weights.weight, taps, output),
            Output::Accumulate,
            &mut matrix_mut(&mut self.pre, positions, output),
        );
        resize(&mut self.post, positions * output);
        activate(activation, &self.pre, &mut self.post);
        if !self.mask.is_empty() {
            resize(&mut self.dropped, positions * output);
            for ((dropped, value), keep) in self.dropped.iter_mut().zip(&self.post).zip(&self.mask)
            {
                *dropped = value * keep;
            }
        }
    }

    /// Fills `d_pre` and the weight and bias gradients from `d_output`, the
    /// gradient of this layer's output (after dropout).
    fn backward(
        &mut self,
        weights: &Weights,
        activation: Activation,
        d_output: &[f32],
        positions: usize,
    ) {
        let (taps, output) = (weights.taps(), weights.output);
        resize(&mut self.d_pre, positions * output);
        self.d_pre.copy_from_slice(d_output);
        if !self.mask.is_empty() {
            for (gradient, keep) in self.d_pre.iter_mut().zip(&self.mask) {
                *gradient *= keep;
            }
        }
        activation_backward(activation, &self.pre, &self.post, &mut self.d_pre);
        resize(&mut self.d_weight, taps * output);
        transposed_product(
            &mut self.d_weight,
            &self.columns,
            &self.d_pre,
            [positions, taps, output],
        );
        column_sums(&mut self.d_bias, &self.d_pre, output);
    }

    /// Registers the gradients as gradients of `conv`'s parameters.
    fn register(
        &self,
        weights: &Weights,
        conv: &Conv1d,
        device: &Device,
        gradients: &mut GradientsParams,
    ) {
        let Weights {
            input,
            output,
            kernel,
            ..
        } = *weights;
        // Back to burn's [output][input][kernel].
        let mut weight = vec![0.0; output * input * kernel];
        for (row, values) in self.d_weight.chunks_exact(output).enumerate() {
            let (tap, channel) = (row / input, row % input);
            for (out, &value) in values.iter().enumerate() {
                weight[(out * input + channel) * kernel + tap] = value;
            }
        }
        gradients.register(
            conv.weight.id,
            Tensor::<3>::from_data(TensorData::new(weight, [output, input, kernel]), device),
        );
        gradients.register(
            bias(conv).id,
            Tensor::<1>::from_data(TensorData::new(self.d_bias.clone(), [output]), device),
        );
    }
}

/// Unrolls `input` (`[sample, bar, channel]`) into `columns`: for every bar,
/// the `kernel` bars centred on it, each with all its channels, zeros
/// beyond the window's ends (the `same` padding).
fn unroll(input: &[f32], columns: &mut [f32], weights: &Weights, window: usize) {
    let (channels, kernel) = (weights.input, weights.kernel);
    let reach = kernel / 2;
    let sample_len = window * channels;
    for (sample, rows) in input
        .chunks_exact(sample_len)
        .zip(columns.chunks_exact_mut(window * kernel * channels))
    {
        for (bar, row) in rows.chunks_exact_mut(kernel * channels).enumerate() {
            for (tap, slot) in row.chunks_exact_mut(channels).enumerate() {
                match (bar + tap)
                    .checked_sub(reach)
                    .filter(|&source| source < window)
                {
                    Some(source) => slot.copy_from_slice(&sample[source * channels..][..channels]),
                    None => slot.fill(0.0),
                }
            }
        }
    }
}

/// The reverse of [`unroll`]: adds each unrolled value's gradient
/// (`d_columns`) to the bar and channel it was copied from, in `d_input`
/// (`[sample, bar, channel]`, overwritten).
fn fold(d_columns: &[f32], d_input: &mut Vec<f32>, weights: &Weights, window: usize) {
    let (channels, kernel) = (weights.input, weights.kernel);
    let reach = kernel / 2;
    let samples = d_columns.len() / (window * kernel * channels);
    resize(d_input, samples * window * channels);
    d_input.fill(0.0);
    for (rows, sample) in d_columns
        .chunks_exact(window * kernel * channels)
        .zip(d_input.chunks_exact_mut(window * channels))
    {
        for (bar, row) in rows.chunks_exact(kernel * channels).enumerate() {
            for (tap, slot) in row.chunks_exact(channels).enumerate() {
                if let Some(source) = (bar + tap)
                    .checked_sub(reach)
                    .filter(|&source| source < window)
                {
                    for (sum, value) in sample[source * channels..][..channels].iter_mut().zip(slot)
                    {
                        *sum += value;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
