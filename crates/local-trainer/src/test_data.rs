//! Small synthetic, learnable data sets and strategies for tests (shared by
//! the unit tests and, through `#[path]`, the integration tests).

use chrono::{DateTime, Duration, Utc};
use market_data::Timeframe;
use strategy::{
    Activation, CheckpointPolicy, DataSplit, FeatureLayout, Label, LabelConfig, ModelConfig,
    ModelKind, Optimizer, PreparedData, Samples, StrategyConfig, TrainingData,
};

pub(crate) const WINDOW: usize = 4;
pub(crate) const WIDTH: usize = 3;

/// `len` samples of uniform noise in [-1, 1]; the label is BUY when the first
/// feature of the newest bar is above 0.3, SELL below -0.3, HOLD otherwise.
pub(crate) fn samples(len: usize, rng: &mut fastrand::Rng) -> Samples {
    let start: DateTime<Utc> = DateTime::UNIX_EPOCH;
    let mut samples = Samples::default();
    for index in 0..len {
        let first = samples.features.len();
        samples
            .features
            .extend((0..WINDOW * WIDTH).map(|_| rng.f32() * 2.0 - 1.0));
        let signal = samples.features[first + (WINDOW - 1) * WIDTH];
        samples.labels.push(if signal > 0.3 {
            Label::Buy
        } else if signal < -0.3 {
            Label::Sell
        } else {
            Label::Hold
        });
        samples.symbol_ids.push(rng.u32(0..2));
        samples
            .timestamps
            .push(start + Duration::hours(i64::try_from(index).unwrap_or(0)));
    }
    samples
}

/// Train, validation and test splits of 300, 100 and 100 samples over two symbols.
pub(crate) fn prepared_data(seed: u64) -> PreparedData {
    let mut rng = fastrand::Rng::with_seed(seed);
    PreparedData {
        layout: FeatureLayout {
            window: WINDOW,
            names: (0..WIDTH).map(|index| format!("feature{index}")).collect(),
        },
        symbols: vec!["AAA".parse().unwrap(), "BBB".parse().unwrap()],
        train: samples(300, &mut rng),
        validation: samples(100, &mut rng),
        test: samples(100, &mut rng),
        scaler: None,
    }
}

/// A small, quick strategy training `kind` with Adam.
pub(crate) fn strategy(kind: ModelKind) -> StrategyConfig {
    StrategyConfig {
        name: "synthetic".to_owned(),
        description: None,
        source: None,
        training_data: TrainingData {
            symbols: vec!["AAA".parse().unwrap(), "BBB".parse().unwrap()],
            timeframes: vec![Timeframe::H1, Timeframe::H4],
            base_timeframe: Timeframe::H1,
        },
        indicators: Vec::new(),
        fuzzy_sets: Vec::new(),
        model: ModelConfig {
            kind,
            hidden_layers: vec![16],
            activation: Activation::Relu,
            dropout: 0.1,
            lookback_periods: WINDOW - 1,
            scale_features: false,
            include_price_context: false,
            symbol_embedding_dim: 0,
            learning_rate: 0.01,
            batch_size: 32,
            epochs: 12,
            optimizer: Optimizer::Adam,
            early_stopping_patience: None,
            seed: 7,
            checkpoint: CheckpointPolicy::default(),
        },
        labels: LabelConfig {
            zigzag_threshold: 0.02,
            label_lookahead: 10,
        },
        data_split: DataSplit {
            train: 0.6,
            validation: 0.2,
            test: 0.2,
        },
    }
}
