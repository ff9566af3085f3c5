//! The networks (MLP, CNN, LSTM), the architecture they are built from, and
//! [`Model`], a network ready to predict.
//!
//! All three share one shape: a body turns a `[batch, window, width]` window
//! of features into one vector per sample, an optional learned symbol
//! embedding is concatenated to it, and a linear head gives three logits
//! (BUY, HOLD, SELL).
//!
//! Randomness (initial weights, dropout masks) comes from the training's own
//! seeded generator rather than burn's: burn seeds one generator per backend
//! for the whole process, so two trainings running at once would draw from
//! each other's stream and neither would be reproducible.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, Linear, LinearConfig, Lstm, LstmConfig, PaddingConfig1d,
};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use serde::{Deserialize, Serialize};
use strategy::{Activation, FeatureLayout, Label, ModelConfig, ModelKind, Samples};

use crate::backend::Opened;
use crate::batch::{self, SampleShape};
use crate::cnn::ConvStack;
use crate::kernels::{Dropout, LEAKY_RELU_SLOPE, as_f32};
use crate::lstm::LstmStack;
use crate::{Backend, TrainError};

/// Everything needed to rebuild a network before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub kind: ModelKind,
    /// Bars per sample.
    pub window: usize,
    /// Features per bar.
    pub width: usize,
    /// Units per dense layer (MLP), channels per convolution (CNN), hidden
    /// size per stacked layer (LSTM).
    pub hidden_layers: Vec<usize>,
    /// Applied after each dense layer or convolution (not inside the LSTM).
    pub activation: Activation,
    pub dropout: f64,
    /// 0 = no symbol embedding.
    pub symbol_embedding_dim: usize,
    /// How many symbols the embedding knows (the data's symbols).
    pub num_symbols: usize,
}

/// Convolution kernel size; padding keeps the window length.
const KERNEL_SIZE: usize = 3;

impl Architecture {
    pub(crate) fn new(
        model: &ModelConfig,
        layout: &FeatureLayout,
        num_symbols: usize,
    ) -> Result<Self, TrainError> {
        let architecture = Self {
            kind: model.kind,
            window: layout.window,
            width: layout.width(),
            hidden_layers: model.hidden_layers.clone(),
            activation: model.activation,
            dropout: model.dropout,
            symbol_embedding_dim: model.symbol_embedding_dim,
            num_symbols,
        };
        architecture.validate().map_err(TrainError::InvalidConfig)?;
        Ok(architecture)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.window == 0 || self.width == 0 {
            return Err(format!(
                "samples of window {} x width {} hold no features",
                self.window, self.width
            ));
        }
        if self.hidden_layers.contains(&0) {
            return Err(format!(
                "hidden_layers {:?} contains a layer of size 0",
                self.hidden_layers
            ));
        }
        if self.kind == ModelKind::Lstm && self.hidden_layers.is_empty() {
            return Err("an LSTM needs at least one hidden layer".to_owned());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        if self.symbol_embedding_dim > 0 && self.num_symbols == 0 {
            return Err("a symbol embedding needs at least one symbol".to_owned());
        }
        Ok(())
    }

    pub(crate) fn sample_shape(&self) -> SampleShape {
        SampleShape {
            window: self.window,
            width: self.width,
        }
    }
}

/// Whether a forward pass trains (dropout on, masks from the sampler) or not.
pub(crate) enum Pass<'a> {
    Train(&'a mut fastrand::Rng),
    Eval,
}

impl Pass<'_> {
    /// A fused body's dropout: in training, `probability` and the sampler.
    fn dropout(&mut self, probability: f64) -> Option<Dropout<'_>> {
        match self {
            Pass::Train(rng) => Some(Dropout { probability, rng }),
            Pass::Eval => None,
        }
    }
}

/// The body of a network: what turns a window into one vector per sample.
#[derive(Module, Debug)]
enum Body {
    /// Dense layers over the flattened window.
    Mlp(Vec<Linear>),
    /// 1-D convolutions over the window (features as channels), flattened.
    /// burn's `Conv1d` holds the parameters; on the CPU the arithmetic is
    /// [`ConvStack`]'s (see the `cnn` module), on a GPU burn's own.
    Cnn(Vec<Conv1d>),
    /// Stacked LSTMs; the last layer's final hidden state represents the
    /// window. burn's `Lstm` holds the parameters; on the CPU the arithmetic
    /// is [`LstmStack`]'s (see the `lstm` module), on a GPU burn's own.
    Lstm(Vec<Lstm>),
}

/// Buffers a network reuses from one forward pass to the next.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// The hand-differentiated bodies' buffers; `None` on a GPU, where they
    /// (CPU arithmetic) would copy every batch off the device and back, and
    /// burn's layers run instead.
    lstm: Option<LstmStack>,
    cnn: Option<ConvStack>,
}

impl Scratch {
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            lstm: backend.is_cpu().then(LstmStack::default),
            cnn: backend.is_cpu().then(ConvStack::default),
        }
    }
}

/// A forward pass: the logits, and what its backward pass needs.
pub(crate) struct Forward {
    pub(crate) logits: Tensor<2>,
    /// In training, the output of a hand-differentiated body (LSTM or CNN
    /// on the CPU) as a tracked leaf: its gradient is where the body's own
    /// backward pass starts.
    body_output: Option<Tensor<2>>,
}

/// A classifier of windows into BUY/HOLD/SELL.
#[derive(Module, Debug)]
pub(crate) struct Network {
    body: Body,
    embedding: Option<Embedding>,
    head: Linear,
    #[module(skip)]
    activation: Activation,
    dropout: f64,
}

impl Network {
    /// A network with burn's lazily initialised weights, for loading weights into.
    pub(crate) fn new(architecture: &Architecture, device: &Device) -> Self {
        let a = architecture;
        let (body, body_out) = match a.kind {
            ModelKind::Mlp => {
                let mut input = a.window * a.width;
                let layers = a
                    .hidden_layers
                    .iter()
                    .map(|&units| {
                        let layer = LinearConfig::new(input, units).init(device);
                        input = units;
                        layer
                    })
                    .collect();
                (Body::Mlp(layers), input)
            }
            ModelKind::Cnn => {
                let mut channels = a.width;
                let convs = a
                    .hidden_layers
                    .iter()
                    .map(|&out| {
                        let conv = Conv1dConfig::new(channels, out, KERNEL_SIZE)
                            .with_padding(PaddingConfig1d::Same)
                            .init(device);
                        channels = out;
                        conv
                    })
                    .collect();
                (Body::Cnn(convs), channels * a.window)
            }
            ModelKind::Lstm => {
                let mut input = a.width;
                let layers = a
                    .hidden_layers
                    .iter()
                    .map(|&hidden| {
                        let layer = LstmConfig::new(input, hidden, true).init(device);
                        input = hidden;
                        layer
                    })
                    .collect();
                (Body::Lstm(layers), input)
            }
        };
        let embedding = (a.symbol_embedding_dim > 0)
            .then(|| EmbeddingConfig::new(a.num_symbols, a.symbol_embedding_dim).init(device));
        let head = LinearConfig::new(body_out + a.symbol_embedding_dim, Label::COUNT).init(device);
        Self {
            body,
            embedding,
            head,
            activation: a.activation,
            dropout: a.dropout,
        }
    }

    /// A network with weights drawn from `seed`, for training.
    pub(crate) fn seeded(architecture: &Architecture, device: &Device, seed: u64) -> Self {
        Self::new(architecture, device).map(&mut SeededInit {
            rng: fastrand::Rng::with_seed(seed),
            fan_in: 1,
            next_id: 0,
        })
    }

    /// Logits `[batch, 3]` for features `[batch, window, width]` and symbol ids `[batch]`.
    pub(crate) fn forward(
        &self,
        features: Tensor<3>,
        symbols: Tensor<1, Int>,
        pass: &mut Pass<'_>,
        scratch: &mut Scratch,
    ) -> Forward {
        let [batch, window, width] = features.dims();
        let mut body_output = None;
        let representation = match &self.body {
            Body::Mlp(layers) => {
                let mut x = features.reshape([batch, window * width]);
                for layer in layers {
                    x = self.drop(activate(layer.forward(x), self.activation), pass);
                }
                x
            }
            Body::Cnn(convs) => match scratch.cnn.as_mut() {
                Some(fused) if !convs.is_empty() => {
                    let (flat, leaf) = self.cnn_fused(fused, convs, features, pass);
                    body_output = leaf;
                    flat
                }
                _ => self.cnn_on_device(convs, features, pass),
            },
            Body::Lstm(layers) => match scratch.lstm.as_mut() {
                Some(fused) => {
                    let (last, leaf) = self.lstm_fused(fused, layers, features, pass);
                    body_output = leaf;
                    last
                }
                None => self.lstm_on_device(layers, features, pass),
            },
        };
        let representation = match &self.embedding {
            Some(embedding) => {
                let embedded = embedding.forward(symbols.reshape([batch, 1]));
                let [_, _, dim] = embedded.dims();
                Tensor::cat(vec![representation, embedded.reshape([batch, dim])], 1)
            }
            None => representation,
        };
        Forward {
            logits: self.head.forward(representation),
            body_output,
        }
    }

    /// The gradients of `loss`, computed from the `forward` pass of a
    /// training step, for every parameter of the network.
    pub(crate) fn backward(
        &self,
        loss: Tensor<1>,
        forward: Forward,
        scratch: &mut Scratch,
    ) -> GradientsParams {
        let mut gradients = loss.backward();
        let body_gradient = forward
            .body_output
            .and_then(|leaf| leaf.grad_remove(&mut gradients));
        let mut params = GradientsParams::from_grads(gradients, self);
        if let Some(gradient) = body_gradient {
            let device = gradient.device();
            let values = gradient.into_data();
            let gradient = as_f32(&values);
            match (&self.body, scratch) {
                (
                    Body::Lstm(layers),
                    Scratch {
                        lstm: Some(fused), ..
                    },
                ) => {
                    fused.backward(layers, gradient, &device, &mut params);
                }
                (
                    Body::Cnn(convs),
                    Scratch {
                        cnn: Some(fused), ..
                    },
                ) => {
                    fused.backward(convs, self.activation, gradient, &device, &mut params);
                }
                _ => unreachable!("only a fused body's forward pass leaves a body output"),
            }
        }
        params
    }

    /// The convolutions through the fused stack, on the CPU: the flattened
    /// output, `[batch, channels·window]`, and in training that output as
    /// the tracked leaf where the fused backward pass starts.
    fn cnn_fused(
        &self,
        fused: &mut ConvStack,
        convs: &[Conv1d],
        features: Tensor<3>,
        pass: &mut Pass<'_>,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        let [batch, window, width] = features.dims();
        let device = features.device();
        let values = features.into_data();
        let flat = fused.forward(
            convs,
            self.activation,
            as_f32(&values),
            [batch, window, width],
            pass.dropout(self.dropout),
        );
        body_output(flat, batch, &device, pass)
    }

    /// The convolutions as burn's own layers, on the device (a GPU), or
    /// without any convolution: the flattened output.
    fn cnn_on_device(
        &self,
        convs: &[Conv1d],
        features: Tensor<3>,
        pass: &mut Pass<'_>,
    ) -> Tensor<2> {
        // Conv1d wants [batch, channels, length]: features are the channels.
        let mut x = features.swap_dims(1, 2);
        for conv in convs {
            x = self.drop(activate(conv.forward(x), self.activation), pass);
        }
        let [batch, channels, length] = x.dims();
        x.reshape([batch, channels * length])
    }

    /// The LSTM stack through the fused layer, on the CPU: the top layer's
    /// last hidden state, `[batch, hidden]`, and in training that state as
    /// the tracked leaf where the fused backward pass starts.
    fn lstm_fused(
        &self,
        fused: &mut LstmStack,
        layers: &[Lstm],
        features: Tensor<3>,
        pass: &mut Pass<'_>,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        let [batch, window, width] = features.dims();
        let device = features.device();
        let values = features.into_data();
        let last = fused.forward(
            layers,
            as_f32(&values),
            [batch, window, width],
            pass.dropout(self.dropout),
        );
        let (last, leaf) = body_output(last, batch, &device, pass);
        (self.drop(last, pass), leaf)
    }

    /// The LSTM stack as burn's own layers, on the device (a GPU): the
    /// top layer's last hidden state, `[batch, hidden]`.
    fn lstm_on_device(
        &self,
        layers: &[Lstm],
        features: Tensor<3>,
        pass: &mut Pass<'_>,
    ) -> Tensor<2> {
        let (top, below) = layers
            .split_last()
            .expect("an LSTM stack has at least one layer");
        let mut x = features;
        for layer in below {
            let (output, _) = layer.forward(x, None);
            x = self.drop(output, pass);
        }
        let (_, state) = top.forward(x, None);
        self.drop(state.hidden, pass)
    }

    /// Inverted dropout with a mask drawn from the training's generator.
    fn drop<const D: usize>(&self, x: Tensor<D>, pass: &mut Pass<'_>) -> Tensor<D> {
        let rng = match pass {
            Pass::Train(rng) if self.dropout > 0.0 => rng,
            _ => return x,
        };
        let shape = x.shape();
        let keep = 1.0 - self.dropout;
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> = (0..shape.num_elements())
            .map(|_| if rng.f64() < keep { scale } else { 0.0 })
            .collect();
        let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &x.device());
        x * mask
    }
}

/// A hand-differentiated body's output (`batch` rows) as a tensor on
/// `device`, and in training also as the tracked leaf where the body's own
/// backward pass starts.
fn body_output(
    values: &[f32],
    batch: usize,
    device: &Device,
    pass: &Pass<'_>,
) -> (Tensor<2>, Option<Tensor<2>>) {
    let output = Tensor::<2>::from_data(
        TensorData::new(values.to_vec(), [batch, values.len() / batch]),
        device,
    );
    match pass {
        Pass::Train(_) => {
            let leaf = output.require_grad();
            (leaf.clone(), Some(leaf))
        }
        Pass::Eval => (output, None),
    }
}

/// burn's activation `function`, as the layers burn runs apply it.
pub(crate) fn activate<const D: usize>(x: Tensor<D>, function: Activation) -> Tensor<D> {
    match function {
        Activation::Relu => activation::relu(x),
        Activation::Tanh => activation::tanh(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::LeakyRelu => activation::leaky_relu(x, f64::from(LEAKY_RELU_SLOPE)),
        Activation::Gelu => activation::gelu(x),
    }
}

/// Replaces every weight with `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` drawn from
/// a seeded generator (the usual default for dense, convolution and LSTM
/// layers). A bias takes the fan-in of the weight visited just before it,
/// which is its own layer's: modules list the weight first.
///
/// Parameters are numbered in visiting order instead of burn's process-wide
/// ids, so a seed gives the same weights file byte for byte, in any process
/// (ids are saved with the weights, and key the optimizer's state).
struct SeededInit {
    rng: fastrand::Rng,
    fan_in: usize,
    next_id: u64,
}

impl ModuleMapper for SeededInit {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, old, mapper) = param.consume();
        self.next_id += 1;
        let id = ParamId::from(self.next_id);
        let new = {
            let shape = old.shape();
            self.fan_in = match *shape {
                // Linear weights are [in, out]; embeddings [symbols, dim].
                [fan_in, _] => fan_in,
                // Convolution weights are [out, in, kernel].
                [_, channels_in, kernel] => channels_in * kernel,
                _ => self.fan_in,
            }
            .max(1);
            let bound = (1.0 / (self.fan_in as f64).sqrt()) as f32;
            let values: Vec<f32> = (0..shape.num_elements())
                .map(|_| (self.rng.f32() * 2.0 - 1.0) * bound)
                .collect();
            let require_grad = old.is_require_grad();
            Tensor::from_data(TensorData::new(values, shape), &old.device())
                .set_require_grad(require_grad)
        };
        Param::from_mapped_value(id, new, mapper)
    }
}

/// A trained network ready to predict, on the backend it was built for.
#[derive(Debug)]
pub struct Model {
    network: Network,
    architecture: Architecture,
    backend: Backend,
    device: Device,
    /// What `device` is: `cpu`, or the GPU adapter.
    device_name: String,
}

/// Samples per forward pass when predicting.
const PREDICT_BATCH: usize = 512;

impl Model {
    pub(crate) fn new(
        network: Network,
        architecture: Architecture,
        backend: Backend,
        opened: Opened,
    ) -> Self {
        Self {
            network,
            architecture,
            backend,
            device: opened.device,
            device_name: opened.name,
        }
    }

    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What runs it: `cpu`, or the GPU adapter and its graphics API.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    pub(crate) fn network(&self) -> &Network {
        &self.network
    }

    /// The predicted class of each sample of `samples` (labels are ignored).
    ///
    /// `symbol_ids` must hold one id per sample when the model has a symbol
    /// embedding; otherwise it may be empty.
    pub fn predict(&self, samples: &Samples) -> Result<Vec<Label>, TrainError> {
        self.predict_checked(samples, &mut || Ok(()))
    }

    /// [`predict`](Self::predict), calling `check` before every batch.
    pub(crate) fn predict_checked(
        &self,
        samples: &Samples,
        check: &mut dyn FnMut() -> Result<(), TrainError>,
    ) -> Result<Vec<Label>, TrainError> {
        let shape = self.architecture.sample_shape();
        let count = shape.count("samples", &samples.features)?;
        let uses_symbols = self.architecture.symbol_embedding_dim > 0;
        if (uses_symbols || !samples.symbol_ids.is_empty()) && samples.symbol_ids.len() != count {
            return Err(TrainError::InvalidData(format!(
                "samples: {count} samples of features but {} symbol ids",
                samples.symbol_ids.len()
            )));
        }
        if uses_symbols {
            batch::check_symbol_ids(
                "samples",
                &samples.symbol_ids,
                self.architecture.num_symbols,
            )?;
        }
        let mut predictions = Vec::with_capacity(count);
        let mut indices = Vec::with_capacity(PREDICT_BATCH.min(count));
        let mut scratch = Scratch::new(self.backend);
        for start in (0..count).step_by(PREDICT_BATCH) {
            check()?;
            indices.clear();
            indices.extend(start..(start + PREDICT_BATCH).min(count));
            let inputs = batch::gather(
                &samples.features,
                &samples.symbol_ids,
                &indices,
                shape,
                &self.device,
            );
            let forward = self.network.forward(
                inputs.features,
                inputs.symbols,
                &mut Pass::Eval,
                &mut scratch,
            );
            push_classes(forward.logits, &mut predictions);
        }
        Ok(predictions)
    }
}

/// Appends the most likely class of each row of `logits` to `out`.
fn push_classes(logits: Tensor<2>, out: &mut Vec<Label>) {
    let [batch, _] = logits.dims();
    let data = logits.argmax(1).reshape([batch]).into_data();
    out.extend(data.iter::<i64>().map(|index| {
        usize::try_from(index)
            .ok()
            .and_then(Label::from_index)
            .unwrap_or(Label::Hold)
    }));
}
