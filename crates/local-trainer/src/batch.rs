//! Checks prepared samples and turns slices of them into batch tensors.
//!
//! Samples are `[len, window, width]` row-major, so one sample is one
//! contiguous slice: a batch is built by copying the chosen slices into one
//! buffer, which burn then takes over. That buffer (and the two small id
//! buffers) are the only allocations per batch; nothing else in the training
//! loop allocates per batch.

use burn::tensor::{Device, Int, Tensor, TensorData};
use strategy::{Label, Samples};

use crate::TrainError;

/// The inputs of one batch.
pub(crate) struct Inputs {
    /// `[batch, window, width]`.
    pub(crate) features: Tensor<3>,
    /// `[batch]` indices into the symbols of the data.
    pub(crate) symbols: Tensor<1, Int>,
}

/// The shape of one sample, checked against a split before any batch is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SampleShape {
    pub(crate) window: usize,
    pub(crate) width: usize,
}

impl SampleShape {
    pub(crate) fn len(self) -> usize {
        self.window * self.width
    }

    /// How many samples `features` holds, if it is a whole number of them.
    pub(crate) fn count(self, split: &str, features: &[f32]) -> Result<usize, TrainError> {
        let sample_len = self.len();
        if sample_len == 0 || !features.len().is_multiple_of(sample_len) {
            return Err(TrainError::InvalidData(format!(
                "{split}: {} feature values are not a whole number of samples of \
                 window {} x width {}",
                features.len(),
                self.window,
                self.width
            )));
        }
        Ok(features.len() / sample_len)
    }

    /// Checks that a labelled split is consistent: as many labels and symbol ids
    /// as samples, and every symbol id below `num_symbols`.
    pub(crate) fn check_split(
        self,
        split: &str,
        samples: &Samples,
        num_symbols: usize,
    ) -> Result<(), TrainError> {
        let count = self.count(split, &samples.features)?;
        if samples.labels.len() != count || samples.symbol_ids.len() != count {
            return Err(TrainError::InvalidData(format!(
                "{split}: {count} samples of features but {} labels and {} symbol ids",
                samples.labels.len(),
                samples.symbol_ids.len()
            )));
        }
        check_symbol_ids(split, &samples.symbol_ids, num_symbols)
    }
}

pub(crate) fn check_symbol_ids(
    split: &str,
    symbol_ids: &[u32],
    num_symbols: usize,
) -> Result<(), TrainError> {
    match symbol_ids
        .iter()
        .find(|&&id| usize::try_from(id).map_or(true, |id| id >= num_symbols))
    {
        Some(id) => Err(TrainError::InvalidData(format!(
            "{split}: symbol id {id} is out of range for {num_symbols} symbols"
        ))),
        None => Ok(()),
    }
}

/// The inputs of the samples at `indices` (in that order) on `device`.
///
/// `symbol_ids` may be empty, which reads as symbol 0 for every sample (for
/// models without a symbol embedding, where the ids are not used).
pub(crate) fn gather(
    features: &[f32],
    symbol_ids: &[u32],
    indices: &[usize],
    shape: SampleShape,
    device: &Device,
) -> Inputs {
    let sample_len = shape.len();
    let mut values = Vec::with_capacity(indices.len() * sample_len);
    for &index in indices {
        values.extend_from_slice(&features[index * sample_len..(index + 1) * sample_len]);
    }
    let features = Tensor::<3>::from_data(
        TensorData::new(values, [indices.len(), shape.window, shape.width]),
        device,
    );
    let ids: Vec<i64> = indices
        .iter()
        .map(|&index| symbol_ids.get(index).map_or(0, |&id| i64::from(id)))
        .collect();
    let symbols = Tensor::<1, Int>::from_data(TensorData::new(ids, [indices.len()]), device);
    Inputs { features, symbols }
}

/// The class indices `[batch]` of the samples at `indices`.
pub(crate) fn labels(labels: &[Label], indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let classes: Vec<i64> = indices
        .iter()
        .map(|&index| labels[index].index() as i64)
        .collect();
    Tensor::<1, Int>::from_data(TensorData::new(classes, [indices.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(len: usize, shape: SampleShape) -> Samples {
        Samples {
            features: (0..len * shape.len()).map(|v| v as f32).collect(),
            labels: vec![Label::Hold; len],
            symbol_ids: vec![0; len],
            timestamps: Vec::new(),
        }
    }

    #[test]
    fn split_checks_name_the_problem() {
        let shape = SampleShape {
            window: 2,
            width: 3,
        };
        let mut split = samples(4, shape);
        assert!(shape.check_split("train", &split, 1).is_ok());

        split.features.pop();
        let err = shape.check_split("train", &split, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid training data: train: 23 feature values are not a whole number of \
             samples of window 2 x width 3"
        );

        let mut split = samples(4, shape);
        split.labels.pop();
        let err = shape.check_split("test", &split, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid training data: test: 4 samples of features but 3 labels and 4 symbol ids"
        );

        let mut split = samples(4, shape);
        split.symbol_ids[2] = 5;
        let err = shape.check_split("validation", &split, 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid training data: validation: symbol id 5 is out of range for 2 symbols"
        );
    }

    #[test]
    fn gather_copies_the_chosen_samples_in_order() {
        let shape = SampleShape {
            window: 2,
            width: 2,
        };
        let split = samples(3, shape);
        let device = burn::tensor::Device::flex();
        let inputs = gather(&split.features, &split.symbol_ids, &[2, 0], shape, &device);
        assert_eq!(inputs.features.dims(), [2, 2, 2]);
        let values = inputs.features.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(values, [8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0]);
        let classes = labels(&[Label::Buy, Label::Hold, Label::Sell], &[2, 0], &device);
        let classes = classes.into_data().iter::<i64>().collect::<Vec<_>>();
        assert_eq!(classes, [2, 0]);
    }
}
