//! The `model` section: kind, layers, activation, optimizer, early
//! stopping and checkpoints.

use super::Result;
use super::reader::{Fields, Reader};
use super::values::{boolean, choice, count, integer, non_empty_list, number};
use super::yaml::Node;
use crate::config::{Activation, CheckpointPolicy, ModelConfig, ModelKind, Optimizer};

const MODEL_KINDS: &[(&str, ModelKind)] = &[
    ("mlp", ModelKind::Mlp),
    ("cnn", ModelKind::Cnn),
    ("lstm", ModelKind::Lstm),
];

const ACTIVATIONS: &[(&str, Activation)] = &[
    ("relu", Activation::Relu),
    ("tanh", Activation::Tanh),
    ("sigmoid", Activation::Sigmoid),
    ("leaky_relu", Activation::LeakyRelu),
    ("leakyrelu", Activation::LeakyRelu),
    ("gelu", Activation::Gelu),
];

const OPTIMIZERS: &[(&str, Optimizer)] = &[("adam", Optimizer::Adam), ("sgd", Optimizer::Sgd)];

/// Patience when `early_stopping` is on but gives none.
const DEFAULT_PATIENCE: usize = 10;

pub(super) fn read_model(reader: &mut Reader<'_>, node: &Node) -> Result<ModelConfig> {
    let mut model = Fields::of(reader, node, "model")?;
    let kind_node = model.require(reader, "type")?;
    let kind = choice(
        reader,
        kind_node,
        &model.path_of("type"),
        "model type",
        MODEL_KINDS,
    )?;
    let symbol_embedding_dim = match model.get("symbol_embedding_dim") {
        Some(node) => count(reader, node, &model.path_of("symbol_embedding_dim"), 0)?,
        None => 0,
    };

    let architecture_path = model.path_of("architecture");
    let mut architecture = Fields::of(
        reader,
        model.require(reader, "architecture")?,
        &architecture_path,
    )?;
    let layers_path = architecture.path_of("hidden_layers");
    let layers_node = architecture.require(reader, "hidden_layers")?;
    let hidden_layers = non_empty_list(reader, layers_node, &layers_path, "layer sizes")?
        .iter()
        .enumerate()
        .map(|(index, item)| count(reader, item, &format!("{layers_path}[{index}]"), 1))
        .collect::<Result<Vec<usize>>>()?;
    let activation = match architecture.get("activation") {
        Some(node) => choice(
            reader,
            node,
            &architecture.path_of("activation"),
            "activation",
            ACTIVATIONS,
        )?,
        None => Activation::Relu,
    };
    if let Some(node) = architecture.get("output_activation") {
        // The models always end in softmax over the three labels.
        choice(
            reader,
            node,
            &architecture.path_of("output_activation"),
            "output activation",
            &[("softmax", ())],
        )?;
    }
    let dropout = match architecture.get("dropout") {
        Some(node) => number(
            reader,
            node,
            &architecture.path_of("dropout"),
            "a number in [0, 1)",
            |value| (0.0..1.0).contains(&value),
        )?,
        None => 0.0,
    };
    architecture.finish(reader);

    let mut lookback_periods = 0;
    let mut scale_features = true;
    let mut include_price_context = false;
    if let Some(node) = model.get("features") {
        let mut features = Fields::of(reader, node, &model.path_of("features"))?;
        if let Some(node) = features.get("lookback_periods") {
            lookback_periods = count(reader, node, &features.path_of("lookback_periods"), 0)?;
        }
        if let Some(node) = features.get("scale_features") {
            scale_features = boolean(reader, node, &features.path_of("scale_features"))?;
        }
        if let Some(node) = features.get("include_price_context") {
            include_price_context =
                boolean(reader, node, &features.path_of("include_price_context"))?;
        }
        features.finish(reader);
    }

    let training_path = model.path_of("training");
    let mut training = Fields::of(reader, model.require(reader, "training")?, &training_path)?;
    let learning_rate = number(
        reader,
        training.require(reader, "learning_rate")?,
        &training.path_of("learning_rate"),
        "a number > 0",
        |value| value > 0.0,
    )?;
    let batch_size = count(
        reader,
        training.require(reader, "batch_size")?,
        &training.path_of("batch_size"),
        1,
    )?;
    let epochs = count(
        reader,
        training.require(reader, "epochs")?,
        &training.path_of("epochs"),
        1,
    )?;
    let optimizer = match training.get("optimizer") {
        Some(node) => choice(
            reader,
            node,
            &training.path_of("optimizer"),
            "optimizer",
            OPTIMIZERS,
        )?,
        None => Optimizer::Adam,
    };
    let seed = match training.get("seed") {
        Some(node) => integer(reader, node, &training.path_of("seed"), 0)?,
        None => 42,
    };
    let early_stopping_patience = match training.get("early_stopping") {
        Some(node) => read_early_stopping(reader, node, &training.path_of("early_stopping"))?,
        None => None,
    };
    let checkpoint = match training.get("checkpoint") {
        Some(node) => read_checkpoint(reader, node, &training.path_of("checkpoint"))?,
        None => CheckpointPolicy::default(),
    };
    training.finish(reader);
    model.finish(reader);

    Ok(ModelConfig {
        kind,
        hidden_layers,
        activation,
        dropout,
        lookback_periods,
        scale_features,
        include_price_context,
        symbol_embedding_dim,
        learning_rate,
        batch_size,
        epochs,
        optimizer,
        early_stopping_patience,
        seed,
        checkpoint,
    })
}

/// `checkpoint: {every_epochs, every_seconds}`; a field left out keeps its default.
fn read_checkpoint(reader: &mut Reader<'_>, node: &Node, path: &str) -> Result<CheckpointPolicy> {
    let mut fields = Fields::of(reader, node, path)?;
    let mut policy = CheckpointPolicy::default();
    if let Some(node) = fields.get("every_epochs") {
        policy.every_epochs = count(reader, node, &fields.path_of("every_epochs"), 0)?;
    }
    if let Some(node) = fields.get("every_seconds") {
        policy.every_seconds = integer(reader, node, &fields.path_of("every_seconds"), 0)?;
    }
    fields.finish(reader);
    Ok(policy)
}

/// The patience when early stopping is on.
fn read_early_stopping(reader: &mut Reader<'_>, node: &Node, path: &str) -> Result<Option<usize>> {
    let mut fields = Fields::of(reader, node, path)?;
    let enabled = match fields.get("enabled") {
        Some(node) => boolean(reader, node, &fields.path_of("enabled"))?,
        None => true,
    };
    let patience = match fields.get("patience") {
        Some(node) => count(reader, node, &fields.path_of("patience"), 1)?,
        None => DEFAULT_PATIENCE,
    };
    if let Some(node) = fields.get("min_delta") {
        // Checked for the file's sake; the trainer stops on any lack of improvement.
        number(
            reader,
            node,
            &fields.path_of("min_delta"),
            "a number >= 0",
            |value| value >= 0.0,
        )?;
    }
    fields.finish(reader);
    Ok(enabled.then_some(patience))
}
