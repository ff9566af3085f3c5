//! Typed, structured progress for long-running operations.
//!
//! Every long job publishes [`ProgressState`] snapshots: overall percentage,
//! the pipeline step, items done, an ETA, and a typed [`ProgressContext`]
//! saying what the work is ([`TrainingContext`], [`DataContext`]). Consumers
//! read the structured fields; the one-line `message` is rendered from them by
//! a [`ProgressRenderer`] ([`TrainingProgressRenderer`],
//! [`DataProgressRenderer`]) so that nobody ever parses it. [`EtaEstimator`]
//! turns elapsed time and fraction done into a steady time-left estimate, and
//! [`format_duration`] shows it.
//!
//! The crate is pure: no I/O, no async runtime, only `serde`.
//!
//! ```
//! use progress::{
//!     ProgressContext, ProgressRenderer, ProgressState, Step, TrainingContext,
//!     TrainingProgressRenderer,
//! };
//!
//! let state = ProgressState {
//!     percentage: 37.5,
//!     step: Some(Step::new(2, 4)),
//!     context: ProgressContext::Training(TrainingContext {
//!         model_type: Some("MLP".to_owned()),
//!         symbols: vec!["AAPL".to_owned()],
//!         timeframes: vec!["1H".to_owned()],
//!         epoch: Some(Step::new(15, 50)),
//!         batch: Some(Step::new(342, 500)),
//!         train_loss: Some(0.42),
//!         ..TrainingContext::default()
//!     }),
//!     ..ProgressState::default()
//! };
//!
//! assert_eq!(
//!     TrainingProgressRenderer.render(&state),
//!     "Training MLP model on AAPL [1H] [epoch 15/50] (batch 342/500) [2/4]",
//! );
//! ```

mod data;
mod eta;
mod state;
mod training;

pub use data::DataProgressRenderer;
pub use eta::{EtaEstimator, format_duration};
pub use state::{
    DataContext, EpochPoint, Items, ProgressContext, ProgressState, Step, TrainingContext,
};
pub use training::TrainingProgressRenderer;

/// Turns a structured [`ProgressState`] into the one-line message shown to users.
pub trait ProgressRenderer: Send + Sync + std::fmt::Debug {
    /// The message for `state`, on one line without a trailing newline.
    fn render(&self, state: &ProgressState) -> String;
}

// The README's example runs as a doctest too, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
