//! The fused CNN against burn's `Conv1d` with the same weights.

use burn::nn::PaddingConfig1d;
use burn::nn::conv::Conv1dConfig;
use burn::tensor::{Distribution, Gradients};

use super::*;
use crate::Backend;
use crate::against_burn::{assert_close, devices, values};
use crate::model::activate;

/// burn's convolutions and the fused stack, given the same weights and
/// inputs, agree on the flattened output and on every parameter's gradient
/// of a loss on it.
fn matches_burn(batch: usize, channels: &[usize], function: Activation) {
    let [window, width, kernel] = [7, 3, 3];
    for (backend, device) in devices(5) {
        let mut input = width;
        let convs: Vec<Conv1d> = channels
            .iter()
            .map(|&out| {
                let conv = Conv1dConfig::new(input, out, kernel)
                    .with_padding(PaddingConfig1d::Same)
                    .init(&device);
                input = out;
                conv
            })
            .collect();
        let features = Tensor::<3>::random([batch, window, width], Distribution::Default, &device)
            .mul_scalar(4.0)
            .sub_scalar(2.0);
        let top = *channels.last().unwrap();
        let weights = Tensor::<2>::random([batch, top * window], Distribution::Default, &device);

        let mut x = features.clone().swap_dims(1, 2);
        for conv in &convs {
            x = activate(conv.forward(x), function);
        }
        let flat = x.reshape([batch, top * window]);
        let burn_gradients: Gradients = (flat.clone() * weights.clone()).sum().backward();

        let mut fused = ConvStack::default();
        let fused_flat = fused
            .forward(
                &convs,
                function,
                &values(features),
                [batch, window, width],
                None,
            )
            .to_vec();
        assert_close("output", &fused_flat, &values(flat));

        let mut fused_gradients = GradientsParams::new();
        let inner = weights.clone().inner().device();
        fused.backward(
            &convs,
            function,
            &values(weights),
            &inner,
            &mut fused_gradients,
        );
        if backend == Backend::NdArray && function == Activation::Gelu {
            // burn-ndarray differentiates GELU as its tanh approximation
            // (burn's default `gelu_backward`) although its forward pass is
            // the exact GELU; flex and the fused stack use the exact
            // derivative.
            continue;
        }
        for (layer, conv) in convs.iter().enumerate() {
            let expected = values(conv.weight.val().grad(&burn_gradients).unwrap());
            let actual = values(fused_gradients.get::<3>(conv.weight.id).unwrap());
            assert_close(&format!("layer {layer} weight"), &actual, &expected);
            let bias = conv.bias.as_ref().unwrap();
            let expected = values(bias.val().grad(&burn_gradients).unwrap());
            let actual = values(fused_gradients.get::<1>(bias.id).unwrap());
            assert_close(&format!("layer {layer} bias"), &actual, &expected);
        }
    }
}

#[test]
fn one_convolution_matches_burns_conv1d() {
    matches_burn(5, &[4], Activation::Relu);
}

#[test]
fn stacked_convolutions_match_burns_conv1d_for_every_activation() {
    for function in [
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Gelu,
    ] {
        matches_burn(5, &[4, 6], function);
    }
}

#[test]
fn a_batch_split_in_two_shards_matches_burns_conv1d() {
    // 33 samples: shards of 17 and 16.
    matches_burn(33, &[4, 6], Activation::Tanh);
}
