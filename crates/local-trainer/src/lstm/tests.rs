//! The fused LSTM against burn's `Lstm` with the same weights, and the accuracy of its activations.

use burn::module::Param;
use burn::nn::LstmConfig;
use burn::tensor::{Distribution, Gradients};

use super::*;
use crate::against_burn::{assert_close, devices, values};

fn stack(device: &Device, input: usize, hidden: &[usize]) -> Vec<Lstm> {
    let mut width = input;
    hidden
        .iter()
        .map(|&units| {
            let lstm = LstmConfig::new(width, units, true).init(device);
            width = units;
            lstm
        })
        .collect()
}

/// Every parameter of `layers`, named, with its gradient in `burn` and in `fused`.
fn compare_gradients(layers: &[Lstm], burn: &Gradients, fused: &GradientsParams) {
    fn one<const D: usize>(
        name: &str,
        param: &Param<Tensor<D>>,
        burn: &Gradients,
        fused: &GradientsParams,
    ) {
        let expected = values(param.val().grad(burn).expect("burn has a gradient"));
        let actual = values(fused.get::<D>(param.id).expect("fused has a gradient"));
        assert_close(name, &actual, &expected);
    }
    for (layer, lstm) in layers.iter().enumerate() {
        for (gate, controller) in ["input", "forget", "output", "cell"]
            .into_iter()
            .zip(gates(lstm))
        {
            for (side, transform) in [
                ("input", &controller.input_transform),
                ("hidden", &controller.hidden_transform),
            ] {
                let name = format!("layer {layer} {gate} gate, {side} transform");
                one(&format!("{name} weight"), &transform.weight, burn, fused);
                let bias = transform.bias.as_ref().unwrap();
                one(&format!("{name} bias"), bias, burn, fused);
            }
        }
    }
}

/// burn's `Lstm` and the fused stack, given the same weights and inputs,
/// agree on the last hidden state and on every parameter's gradient of a
/// loss on it.
fn matches_burn(batch: usize, hidden: &[usize]) {
    let [steps, input] = [7, 3];
    for (_, device) in devices(11) {
        let layers = stack(&device, input, hidden);
        let features = Tensor::<3>::random([batch, steps, input], Distribution::Default, &device)
            .mul_scalar(4.0)
            .sub_scalar(2.0);
        let top = *hidden.last().unwrap();
        let weights = Tensor::<2>::random([batch, top], Distribution::Default, &device);

        let mut sequence = features.clone();
        let mut last = None;
        for lstm in &layers {
            let (output, state) = lstm.forward(sequence, None);
            sequence = output;
            last = Some(state.hidden);
        }
        let last = last.unwrap();
        let burn_gradients = (last.clone() * weights.clone()).sum().backward();

        let mut fused = LstmStack::default();
        let fused_last = fused
            .forward(&layers, &values(features), [batch, steps, input], None)
            .to_vec();
        assert_close("last hidden state", &fused_last, &values(last));

        let mut fused_gradients = GradientsParams::new();
        let inner = weights.clone().inner().device();
        fused.backward(&layers, &values(weights), &inner, &mut fused_gradients);
        compare_gradients(&layers, &burn_gradients, &fused_gradients);
    }
}

#[test]
fn one_layer_matches_burns_lstm() {
    matches_burn(5, &[4]);
}

#[test]
fn stacked_layers_match_burns_lstm() {
    matches_burn(5, &[4, 6]);
}

#[test]
fn a_batch_split_in_two_shards_matches_burns_lstm() {
    // 33 samples: shards of 17 and 16.
    matches_burn(33, &[4, 6]);
}
