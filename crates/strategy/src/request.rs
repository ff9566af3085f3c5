//! One training request, checked once: the strategy to train (its symbol
//! and timeframe overrides applied), the range of bars, and how to run it.
//!
//! Every route uses it: the training manager builds it, the local trainer
//! runs it, the host client sends it and the training host receives it
//! (the one conversion to and from the wire is in `rpc`). No burn here, so
//! each of them can hold one.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use market_data::{Symbol, Timeframe};
use serde::{Deserialize, Serialize};

use crate::StrategyConfig;

/// A burn backend the trainer can run on (the trainer maps it to burn's).
///
/// Every name is known everywhere, so a request, a record or a host's
/// status can name a GPU backend; whether this build and machine can run
/// it is the trainer's to say (the GPU ones are cargo features).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// burn-flex, burn's pure-Rust CPU backend since 0.22.
    #[default]
    Flex,
    /// burn-ndarray, deprecated by burn since 0.22 in favour of flex; kept
    /// for comparison and for artifacts that name it.
    #[serde(rename = "ndarray")]
    NdArray,
    /// burn's wgpu backend: compute shaders on Vulkan, Metal or DX12.
    Wgpu,
    /// burn's CUDA backend, on NVIDIA GPUs.
    Cuda,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::NdArray,
        Backend::Wgpu,
        Backend::Cuda,
    ];

    /// The ones every build has: they run on the process's CPU cores.
    pub const CPU: [Backend; 2] = [Backend::Flex, Backend::NdArray];

    /// The name used on command lines, on the wire and in artifacts.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::NdArray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether it is one of [`Backend::CPU`].
    pub fn is_cpu(self) -> bool {
        Self::CPU.contains(&self)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that width and alignment flags work in tables.
        f.pad(self.as_str())
    }
}

/// The text names no supported backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}; expected one of: flex, ndarray, wgpu, cuda")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Self::ALL
            .into_iter()
            .find(|backend| backend.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownBackend(text.to_owned()))
    }
}

/// Where a training's strategy comes from, as a user names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategySource {
    /// A file of the machine that trains, read when the training is submitted.
    File(PathBuf),
    /// YAML the caller already holds, as a client of `trdr serve` sends it.
    Text {
        /// Where the text came from: it names the strategy in messages, the
        /// operation record and the artifact, and is never opened.
        origin: String,
        /// Left out of the operation record, which names the origin only,
        /// as it names a file's path and not its content.
        #[serde(skip_serializing, default)]
        yaml: String,
    },
    /// A file in the strategies directory of the server that trains, by
    /// name; the server resolves it to a `File` (or refuses it) before
    /// anything is read.
    Named(String),
}

impl StrategySource {
    /// The strategy file at `path`, read here and carried as text named
    /// `origin`: what a client sends a server, which opens no client path.
    pub fn read(path: &Path, origin: String) -> std::io::Result<Self> {
        Ok(Self::Text {
            origin,
            yaml: std::fs::read_to_string(path)?,
        })
    }
}

/// What a user asks to train: a strategy and what to override in it. The
/// training manager reads the strategy and makes the checked
/// [`TrainingRequest`] from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub strategy: StrategySource,
    /// Instead of the strategy's symbols.
    pub symbols: Option<Vec<Symbol>>,
    /// Instead of the strategy's timeframes; the first is the base timeframe.
    pub timeframes: Option<Vec<Timeframe>>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Instead of the strategy's epochs.
    pub epochs: Option<u32>,
    /// `None`: the machine that trains picks (see [`TrainingOptions::backend`]).
    pub backend: Option<Backend>,
    /// Instead of the strategy's `training.checkpoint.every_epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every_epochs: Option<u32>,
    /// Instead of the strategy's `training.checkpoint.every_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every_seconds: Option<u64>,
}

impl TrainRequest {
    /// The strategy of `source` as written, on the backend the trainer picks.
    pub fn new(source: StrategySource) -> Self {
        Self {
            strategy: source,
            symbols: None,
            timeframes: None,
            start: None,
            end: None,
            epochs: None,
            backend: None,
            checkpoint_every_epochs: None,
            checkpoint_every_seconds: None,
        }
    }

    /// `strategy` with this request's checkpoint policy overrides applied.
    pub fn with_checkpoint_overrides(&self, mut strategy: StrategyConfig) -> StrategyConfig {
        let policy = &mut strategy.model.checkpoint;
        if let Some(every) = self.checkpoint_every_epochs {
            policy.every_epochs = every as usize;
        }
        if let Some(every) = self.checkpoint_every_seconds {
            policy.every_seconds = every;
        }
        strategy
    }
}

/// Where a training reads its bars and writes its model: the machine's
/// own folders, never a request's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directories {
    pub data: PathBuf,
    pub models: PathBuf,
}

/// How to run a training: everything but what to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingOptions {
    /// `None` leaves the choice to the machine that trains: a training
    /// host's own (`trdr host-service --backend`), else flex.
    pub backend: Option<Backend>,
    /// Train this many epochs instead of the strategy's.
    pub epochs: Option<u32>,
    /// Check the cancellation token every this many batches.
    pub check_every_batches: u32,
    /// Least time between two progress reports inside an epoch; the end of
    /// every epoch is always reported.
    pub progress_interval: Duration,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        Self {
            backend: None,
            epochs: None,
            check_every_batches: 1,
            progress_interval: Duration::from_millis(100),
        }
    }
}

/// Why a training request cannot be run; each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the symbol list is empty")]
    NoSymbols,
    #[error("the timeframe list is empty")]
    NoTimeframes,
    #[error("epochs must be at least 1 (leave it unset for the strategy's)")]
    NoEpochs,
    #[error("check_every_batches must be at least 1")]
    NoCheckInterval,
    #[error("start ({start}) is after end ({end})")]
    StartAfterEnd {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// One training, checked when it is made: fields are read through getters,
/// so a request that exists is a valid one.
///
/// ```
/// use strategy::{RequestError, StrategyConfig, TrainingOptions, TrainingRequest};
///
/// # fn demo(strategy: StrategyConfig) -> Result<(), RequestError> {
/// let options = TrainingOptions { epochs: Some(5), ..TrainingOptions::default() };
/// let request = TrainingRequest::new(strategy, None, None, options)?;
/// assert_eq!(request.options().epochs, Some(5));
///
/// let none = TrainingOptions { epochs: Some(0), ..TrainingOptions::default() };
/// let refused = TrainingRequest::new(request.strategy().clone(), None, None, none);
/// assert_eq!(refused.unwrap_err(), RequestError::NoEpochs);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRequest {
    strategy: StrategyConfig,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    options: TrainingOptions,
}

impl TrainingRequest {
    /// `strategy` as it is trained (overrides applied: see
    /// [`with_overrides`]), the bars from `start` to `end` (both included),
    /// and how.
    pub fn new(
        strategy: StrategyConfig,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        options: TrainingOptions,
    ) -> Result<Self, RequestError> {
        if options.epochs == Some(0) {
            return Err(RequestError::NoEpochs);
        }
        if options.check_every_batches == 0 {
            return Err(RequestError::NoCheckInterval);
        }
        if let (Some(start), Some(end)) = (start, end)
            && start > end
        {
            return Err(RequestError::StartAfterEnd { start, end });
        }
        Ok(Self {
            strategy,
            start,
            end,
            options,
        })
    }

    pub fn strategy(&self) -> &StrategyConfig {
        &self.strategy
    }

    /// Only bars at or after this time.
    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }

    /// Only bars at or before this time.
    pub fn end(&self) -> Option<DateTime<Utc>> {
        self.end
    }

    pub fn options(&self) -> &TrainingOptions {
        &self.options
    }

    /// This request on `backend` unless it names one: how a machine that
    /// trains applies its own choice.
    pub fn with_default_backend(mut self, backend: Backend) -> Self {
        self.options.backend.get_or_insert(backend);
        self
    }
}

/// `strategy` trained on `symbols` and `timeframes` instead of its own
/// (the first timeframe becomes the base one); `None` keeps its own.
pub fn with_overrides(
    mut strategy: StrategyConfig,
    symbols: Option<Vec<Symbol>>,
    timeframes: Option<Vec<Timeframe>>,
) -> Result<StrategyConfig, RequestError> {
    if let Some(symbols) = symbols {
        if symbols.is_empty() {
            return Err(RequestError::NoSymbols);
        }
        strategy.training_data.symbols = symbols;
    }
    if let Some(timeframes) = timeframes {
        let Some(&base) = timeframes.first() else {
            return Err(RequestError::NoTimeframes);
        };
        strategy.training_data.timeframes = timeframes;
        strategy.training_data.base_timeframe = base;
    }
    Ok(strategy)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn strategy() -> StrategyConfig {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../strategies/eurusd_mlp.yaml"
        );
        StrategyConfig::from_file(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn backend_names_round_trip_through_text_and_json() {
        for backend in Backend::ALL {
            assert_eq!(backend.to_string().parse::<Backend>(), Ok(backend));
            let json = serde_json::to_string(&backend).unwrap();
            assert_eq!(json, format!("\"{backend}\""));
            assert_eq!(serde_json::from_str::<Backend>(&json).unwrap(), backend);
        }
        assert_eq!(" NdArray ".parse::<Backend>(), Ok(Backend::NdArray));
        assert_eq!(
            "wgpux".parse::<Backend>().unwrap_err().to_string(),
            "unknown backend \"wgpux\"; expected one of: flex, ndarray, wgpu, cuda"
        );
    }

    #[test]
    fn a_request_is_checked_once_when_made() {
        let options = TrainingOptions::default();
        assert!(TrainingRequest::new(strategy(), None, None, options).is_ok());
        let refused = |options| TrainingRequest::new(strategy(), None, None, options).unwrap_err();
        assert_eq!(
            refused(TrainingOptions {
                epochs: Some(0),
                ..options
            }),
            RequestError::NoEpochs
        );
        assert_eq!(
            refused(TrainingOptions {
                check_every_batches: 0,
                ..options
            }),
            RequestError::NoCheckInterval
        );
        let (start, end) = (
            Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        );
        let backwards = TrainingRequest::new(strategy(), Some(start), Some(end), options);
        assert_eq!(
            backwards.unwrap_err().to_string(),
            "start (2024-02-01 00:00:00 UTC) is after end (2024-01-01 00:00:00 UTC)"
        );
    }

    #[test]
    fn checkpoint_overrides_replace_what_they_name_and_keep_the_rest() {
        let strategy = strategy();
        let request = TrainRequest {
            checkpoint_every_seconds: Some(0),
            ..TrainRequest::new(StrategySource::Named("x.yaml".into()))
        };
        let policy = request
            .with_checkpoint_overrides(strategy.clone())
            .model
            .checkpoint;
        assert_eq!(policy.every_seconds, 0);
        assert_eq!(policy.every_epochs, strategy.model.checkpoint.every_epochs);
        let none = TrainRequest::new(StrategySource::Named("x.yaml".into()));
        assert_eq!(none.with_checkpoint_overrides(strategy.clone()), strategy);
        // Absent overrides stay out of operation records.
        let json = serde_json::to_string(&none).unwrap();
        assert!(!json.contains("checkpoint"), "{json}");
    }

    #[test]
    fn overrides_replace_symbols_and_timeframes_and_empty_lists_are_refused() {
        let symbols = vec!["GBPUSD".parse().unwrap()];
        let timeframes: Vec<Timeframe> = vec!["4h".parse().unwrap(), "1d".parse().unwrap()];
        let overridden =
            with_overrides(strategy(), Some(symbols.clone()), Some(timeframes.clone())).unwrap();
        assert_eq!(overridden.training_data.symbols, symbols);
        assert_eq!(overridden.training_data.timeframes, timeframes);
        assert_eq!(overridden.training_data.base_timeframe, timeframes[0]);
        assert_eq!(with_overrides(strategy(), None, None).unwrap(), strategy());
        assert_eq!(
            with_overrides(strategy(), Some(Vec::new()), None),
            Err(RequestError::NoSymbols)
        );
        assert_eq!(
            with_overrides(strategy(), None, Some(Vec::new())),
            Err(RequestError::NoTimeframes)
        );
    }
}
