//! The `training` section: labels and the data split.

use super::Result;
use super::reader::{Fields, Reader};
use super::values::{choice, count, number, show};
use super::yaml::Node;
use crate::config::{DataSplit, LabelConfig};

pub(super) fn read_training(
    reader: &mut Reader<'_>,
    node: &Node,
) -> Result<(LabelConfig, DataSplit)> {
    let mut training = Fields::of(reader, node, "training")?;
    if let Some(node) = training.get("method") {
        choice(
            reader,
            node,
            &training.path_of("method"),
            "training method",
            &[("supervised", ())],
        )?;
    }

    let labels_path = training.path_of("labels");
    let mut labels = Fields::of(reader, training.require(reader, "labels")?, &labels_path)?;
    if let Some(node) = labels.get("source") {
        choice(
            reader,
            node,
            &labels.path_of("source"),
            "label source",
            &[("zigzag", ())],
        )?;
    }
    let zigzag_threshold = number(
        reader,
        labels.require(reader, "zigzag_threshold")?,
        &labels.path_of("zigzag_threshold"),
        "a fraction in (0, 1), e.g. 0.02 for 2 %",
        |value| value > 0.0 && value < 1.0,
    )?;
    let label_lookahead = count(
        reader,
        labels.require(reader, "label_lookahead")?,
        &labels.path_of("label_lookahead"),
        1,
    )?;
    labels.finish(reader);

    let split_path = training.path_of("data_split");
    let split_node = training.require(reader, "data_split")?;
    let mut split = Fields::of(reader, split_node, &split_path)?;
    let mut fraction = |key: &str, expected: &str, check: fn(f64) -> bool| -> Result<f64> {
        let node = split.require(reader, key)?;
        number(reader, node, &split.path_of(key), expected, check)
    };
    let train = fraction("train", "a number > 0", |value| value > 0.0)?;
    let validation = fraction("validation", "a number >= 0", |value| value >= 0.0)?;
    let test = fraction("test", "a number >= 0", |value| value >= 0.0)?;
    let sum = train + validation + test;
    if (sum - 1.0).abs() > 1e-6 {
        return Err(reader.invalid(
            split_node.pos,
            &split_path,
            format!("train + validation + test must be 1, found {}", show(sum)),
        ));
    }
    split.finish(reader);
    training.finish(reader);

    Ok((
        LabelConfig {
            zigzag_threshold,
            label_lookahead,
        },
        DataSplit {
            train,
            validation,
            test,
        },
    ))
}
