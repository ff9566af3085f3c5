//! Trains, evaluates, saves and loads the strategy models (MLP, CNN, LSTM)
//! with burn, on a CPU backend chosen at run time.
//!
//! [`train`] runs a seeded, deterministic training loop over a
//! [`PreparedData`](strategy::PreparedData): it checks the operation's
//! [`CancellationToken`](orchestrator_core::CancellationToken) at every batch,
//! reports throttled, typed [`ProgressState`](progress::ProgressState)s,
//! validates every epoch, stops early when configured and keeps the best
//! epoch's weights. [`TrainedModel::evaluate`] scores the test split
//! ([`Metrics`]), [`save_artifact`] writes a versioned artifact folder
//! atomically and [`load_artifact`] reads one back; [`PendingArtifact`]
//! installs an artifact received from a training host the same way.
//!
//! ```
//! use local_trainer::{Backend, TrainOptions, load_artifact, save_artifact, train};
//! use orchestrator_core::CancellationToken;
//! use strategy::{FeatureLayout, Label, ModelKind, PreparedData, Samples};
//! # use strategy::*;
//! # fn strategy() -> StrategyConfig {
//! #     StrategyConfig {
//! #         name: "demo".into(), description: None, source: None,
//! #         training_data: TrainingData {
//! #             symbols: vec!["EURUSD".parse().unwrap()],
//! #             timeframes: vec![market_data::Timeframe::H1],
//! #             base_timeframe: market_data::Timeframe::H1,
//! #         },
//! #         indicators: vec![], fuzzy_sets: vec![],
//! #         model: ModelConfig {
//! #             kind: ModelKind::Mlp, hidden_layers: vec![8], activation: Activation::Relu,
//! #             dropout: 0.0, lookback_periods: 1, scale_features: false,
//! #             include_price_context: false, symbol_embedding_dim: 0, learning_rate: 0.05,
//! #             batch_size: 16, epochs: 10, optimizer: Optimizer::Adam,
//! #             early_stopping_patience: Some(3), seed: 42,
//! #             checkpoint: CheckpointPolicy::default(),
//! #         },
//! #         labels: LabelConfig { zigzag_threshold: 0.02, label_lookahead: 5 },
//! #         data_split: DataSplit { train: 0.6, validation: 0.2, test: 0.2 },
//! #     }
//! # }
//!
//! // Two bars of one feature per sample; BUY when the newest value is positive.
//! let mut rng = fastrand::Rng::with_seed(1);
//! let mut split = |len: usize| {
//!     let features: Vec<f32> = (0..len * 2).map(|_| rng.f32() - 0.5).collect();
//!     let labels = features
//!         .chunks(2)
//!         .map(|bars| if bars[1] > 0.0 { Label::Buy } else { Label::Sell })
//!         .collect();
//!     Samples { features, labels, symbol_ids: vec![0; len], timestamps: vec![] }
//! };
//! let data = PreparedData {
//!     layout: FeatureLayout { window: 2, names: vec!["return".into()] },
//!     symbols: vec!["EURUSD".parse()?],
//!     train: split(200),
//!     validation: split(50),
//!     test: split(50),
//!     scaler: None,
//! };
//! let strategy = strategy(); // an MLP, 10 epochs, seed 42
//!
//! let token = CancellationToken::new();
//! let options = TrainOptions { backend: Backend::Flex, ..TrainOptions::default() };
//! let mut last_percentage = 0.0;
//! let trained = train(&strategy, &data, &options, &token, &mut |state| {
//!     last_percentage = state.percentage;
//! })?;
//! let metrics = trained.evaluate(&data, &token)?;
//! assert!(metrics.accuracy > metrics.baseline.accuracy);
//! assert!(last_percentage > 50.0);
//!
//! let models = tempfile::tempdir()?;
//! let path = save_artifact(models.path(), &strategy, &data, &trained, &metrics, &token)?;
//! assert!(path.ends_with("demo/EURUSD_1h_v1"));
//! let artifact = load_artifact(&path, Backend::Flex)?;
//! assert_eq!(artifact.predict(&data.test)?, trained.model.predict(&data.test)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(test)]
mod against_burn;
mod artifact;
mod backend;
mod batch;
mod checkpoint;
mod cnn;
mod error;
mod kernels;
mod lstm;
mod model;
mod pipeline;
#[cfg(test)]
mod test_data;
mod train;

pub use artifact::{
    Artifact, FEATURES_FILE, FeatureSpec, MANIFEST_FILE, METRICS_FILE, Manifest, PendingArtifact,
    STRATEGY_FILE, WEIGHTS_FILE, load_artifact, save_artifact,
};
pub use backend::{Backend, BackendUnavailable, UnknownBackend, probe};
pub use checkpoint::{Checkpoints, SavedCheckpoint, replace_atomically, resume_strategy};
pub use error::{ArtifactError, TrainError};
pub use model::{Architecture, Model};
pub use pipeline::{LocalTrainer, PipelineError};
pub use strategy::{
    Baseline, ClassMetrics, Directories, EpochMetrics, Metrics, PhaseSeconds, SplitSizes,
    TrainingOptions, TrainingReport, TrainingRequest, TrainingSummary,
};
pub use train::{TrainOptions, TrainedModel, evaluate, train, train_with_checkpoints};
