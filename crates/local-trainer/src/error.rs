//! What can go wrong while training, evaluating, saving or loading a model.

use std::path::PathBuf;

use orchestrator_core::Cancelled;

use crate::BackendUnavailable;

/// Why a training, an evaluation or a prediction did not produce its result.
///
/// A cancellation keeps the [`Cancelled`] as its source, so callers that look
/// for it in the error chain (the operations service does) find it.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The strategy's model section cannot be trained as written.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// The prepared samples do not fit together (shapes, lengths, ids).
    #[error("invalid training data: {0}")]
    InvalidData(String),
    /// The loss became NaN or infinite; a lower learning rate usually helps.
    #[error("training diverged in epoch {epoch}: the loss is {loss}")]
    Diverged { epoch: usize, loss: f64 },
    #[error("training cancelled")]
    Cancelled(#[from] Cancelled),
    #[error(transparent)]
    Backend(#[from] BackendUnavailable),
    /// A checkpoint cannot be continued from: unreadable, damaged, or of
    /// another training (the reason names what changed).
    #[error("cannot resume from {path}: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("cannot {action} the checkpoint {path}")]
    CheckpointIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a model artifact could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The strategy name cannot name a folder inside the models directory.
    #[error("strategy name {0:?} cannot be used as a folder name")]
    InvalidName(String),
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {action} {path}")]
    Json {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// burn could not encode or decode the weights.
    #[error("cannot {action} the weights in {path}: {message}")]
    Weights {
        action: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The folder has no `manifest.json`: an interrupted save, or not an artifact at all.
    #[error("{0} is not a complete model artifact (no manifest.json)")]
    Incomplete(PathBuf),
    /// The files of the artifact contradict each other.
    #[error("model artifact {path} is inconsistent: {message}")]
    Inconsistent { path: PathBuf, message: String },
    /// No free version number was found after several attempts (concurrent saves).
    #[error("no free version folder for {0} after several attempts")]
    NoFreeVersion(PathBuf),
    #[error("saving the model artifact was cancelled")]
    Cancelled(#[from] Cancelled),
    #[error(transparent)]
    Backend(#[from] BackendUnavailable),
}
