//! Model artifacts: a versioned folder holding the weights and everything
//! needed to use them again, written atomically.
//!
//! `MODELS_DIR/{strategy}/{SYMBOLS}_{TIMEFRAMES}_v{N}/` holds `model.bpk`
//! (burnpack weights at full precision), `strategy.json`, `features.json`,
//! `metrics.json` and, written last, `manifest.json`. Everything is first
//! written and synced into a hidden `.{name}.tmp-{random}` folder beside the
//! final one, which is then renamed into place: a reader sees a complete
//! artifact or none. A folder without `manifest.json` is never taken for an
//! artifact, and the temporary folder is removed when saving fails or is
//! cancelled.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use chrono::{DateTime, Utc};
use market_data::Symbol;
use orchestrator_core::CancellationToken;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strategy::{Label, ModelKind, PreparedData, Samples, Scaler, StrategyConfig};

use crate::model::{Architecture, Network};
use crate::{ArtifactError, Backend, Metrics, Model, TrainError, TrainedModel, TrainingReport};

pub const WEIGHTS_FILE: &str = "model.bpk";
pub const STRATEGY_FILE: &str = "strategy.json";
pub const FEATURES_FILE: &str = "features.json";
pub const METRICS_FILE: &str = "metrics.json";
/// Written last: its presence marks a complete artifact.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The burn version the weights were written with (kept in step with the
/// workspace manifest by a test).
const BURN_VERSION: &str = "0.22.1";
const FORMAT_VERSION: u32 = 1;
/// Attempts at a free version number when other saves race for the same one.
const VERSION_ATTEMPTS: usize = 16;

/// What the model reads: the feature layout, scaling and symbols it was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// One name per feature of a bar, in order.
    pub names: Vec<String>,
    /// Bars per sample.
    pub window: usize,
    /// The standardisation applied to the training data; apply it to new data.
    pub scaler: Option<Scaler>,
    /// Symbol ids index this list.
    pub symbols: Vec<Symbol>,
}

/// Describes an artifact; written last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub strategy: String,
    pub model_kind: ModelKind,
    pub architecture: Architecture,
    /// The backend it was trained on (any backend can load it).
    pub backend: Backend,
    pub trainer_version: String,
    pub burn_version: String,
    pub created_at: DateTime<Utc>,
    pub seed: u64,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub training: TrainingReport,
    /// The files of the artifact, this one included.
    pub files: Vec<String>,
}

/// An artifact read back from disk, ready to predict.
#[derive(Debug)]
pub struct Artifact {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub strategy: StrategyConfig,
    pub features: FeatureSpec,
    pub metrics: Metrics,
    pub model: Model,
}

impl Artifact {
    /// The predicted class of each sample (see [`Model::predict`]).
    pub fn predict(&self, samples: &Samples) -> Result<Vec<Label>, TrainError> {
        self.model.predict(samples)
    }
}

/// Writes a new version of the strategy's model and returns its folder.
///
/// The token is checked between files and once more just before the final
/// rename; a cancelled or failed save leaves nothing behind.
pub fn save_artifact(
    models_dir: &Path,
    strategy: &StrategyConfig,
    data: &PreparedData,
    trained: &TrainedModel,
    metrics: &Metrics,
    token: &CancellationToken,
) -> Result<PathBuf, ArtifactError> {
    save_artifact_with(
        models_dir,
        strategy,
        data,
        trained,
        metrics,
        token,
        &mut |_| Ok(()),
    )
}

/// [`save_artifact`], calling `before_commit` with the complete temporary
/// folder just before it is renamed (tests inject failures there).
pub(crate) fn save_artifact_with(
    models_dir: &Path,
    strategy: &StrategyConfig,
    data: &PreparedData,
    trained: &TrainedModel,
    metrics: &Metrics,
    token: &CancellationToken,
    before_commit: &mut dyn FnMut(&Path) -> io::Result<()>,
) -> Result<PathBuf, ArtifactError> {
    const STAGE: &str = "saving model";
    token.check(STAGE)?;
    let pending = PendingArtifact::create(models_dir, strategy)?;
    let dir = pending.path();

    let weights = trained
        .model
        .network()
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|err| ArtifactError::Weights {
            action: "encode",
            path: dir.join(WEIGHTS_FILE),
            message: err.to_string(),
        })?;
    write_file(&dir.join(WEIGHTS_FILE), &weights)?;
    token.check(STAGE)?;
    write_json(&dir.join(STRATEGY_FILE), strategy)?;
    write_json(
        &dir.join(FEATURES_FILE),
        &FeatureSpec {
            names: data.layout.names.clone(),
            window: data.layout.window,
            scaler: data.scaler.clone(),
            symbols: data.symbols.clone(),
        },
    )?;
    write_json(&dir.join(METRICS_FILE), metrics)?;
    token.check(STAGE)?;
    let report = &trained.report;
    let architecture = trained.model.architecture();
    write_json(
        &dir.join(MANIFEST_FILE),
        &Manifest {
            format_version: FORMAT_VERSION,
            strategy: strategy.name.clone(),
            model_kind: architecture.kind,
            architecture: architecture.clone(),
            backend: trained.model.backend(),
            trainer_version: env!("CARGO_PKG_VERSION").to_owned(),
            burn_version: BURN_VERSION.to_owned(),
            created_at: Utc::now(),
            seed: report.seed,
            epochs_run: report.epochs_run,
            best_epoch: report.best_epoch,
            training: report.clone(),
            files: [
                WEIGHTS_FILE,
                STRATEGY_FILE,
                FEATURES_FILE,
                METRICS_FILE,
                MANIFEST_FILE,
            ]
            .map(str::to_owned)
            .to_vec(),
        },
    )?;
    before_commit(dir).map_err(io_error("prepare", dir))?;
    pending.commit_at(token, STAGE)
}

/// An artifact folder being filled from elsewhere (a training host), then
/// committed as the next free version of its strategy, exactly as a local
/// save is: the files go to a hidden temporary folder, renamed into place by
/// [`commit`](Self::commit). Dropped uncommitted, the folder is removed.
///
/// ```
/// use local_trainer::{MANIFEST_FILE, PendingArtifact};
/// use orchestrator_core::CancellationToken;
/// # fn demo(strategy: &strategy::StrategyConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let models = tempfile::tempdir()?;
/// let pending = PendingArtifact::create(models.path(), strategy)?;
/// // ... write the received files, manifest.json included, into pending.path() ...
/// std::fs::write(pending.path().join(MANIFEST_FILE), b"{}")?;
/// let installed = pending.commit(&CancellationToken::new())?;
/// assert!(installed.join(MANIFEST_FILE).is_file());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PendingArtifact {
    /// `MODELS_DIR/{strategy}`.
    parent: PathBuf,
    /// `{SYMBOLS}_{TIMEFRAMES}_v`.
    prefix: String,
    first_version: u32,
    temp: TempDir,
}

impl PendingArtifact {
    /// A new, empty temporary folder for an artifact of `strategy` (with the
    /// symbols and timeframes it was trained on) under `models_dir`.
    pub fn create(models_dir: &Path, strategy: &StrategyConfig) -> Result<Self, ArtifactError> {
        let parent = models_dir.join(checked_name(&strategy.name)?);
        fs::create_dir_all(&parent).map_err(io_error("create", &parent))?;
        let prefix = format!(
            "{}_{}_v",
            join(strategy.training_data.symbols.iter().map(Symbol::as_str)),
            join(
                strategy
                    .training_data
                    .timeframes
                    .iter()
                    .map(|tf| tf.as_str())
            ),
        );
        let first_version = next_version(&parent, &prefix)?;
        let temp = TempDir::create(&parent, &format!("{prefix}{first_version}"))?;
        Ok(Self {
            parent,
            prefix,
            first_version,
            temp,
        })
    }

    /// The temporary folder to write the artifact's files into.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Renames the folder into place as the next free version and returns
    /// where it went. Fails when `manifest.json` is missing (the artifact is
    /// incomplete) or `token` was cancelled; the folder is removed then.
    pub fn commit(self, token: &CancellationToken) -> Result<PathBuf, ArtifactError> {
        self.commit_at(token, "installing the model")
    }

    fn commit_at(
        self,
        token: &CancellationToken,
        stage: &'static str,
    ) -> Result<PathBuf, ArtifactError> {
        let dir = self.temp.path();
        if !dir.join(MANIFEST_FILE).is_file() {
            return Err(ArtifactError::Incomplete(dir.to_owned()));
        }
        sync_dir(dir)?;
        // The last moment a cancellation can stop the save: a cancel that
        // races the rename waits for it, and after it the artifact is
        // complete and stays.
        token.commit(stage, || self.install())?
    }

    /// Renames the folder into place as the next free version.
    fn install(self) -> Result<PathBuf, ArtifactError> {
        let dir = self.temp.path();
        let parent = &self.parent;
        for version in (self.first_version..).take(VERSION_ATTEMPTS) {
            let target = parent.join(format!("{}{version}", self.prefix));
            if !target.exists() {
                match fs::rename(dir, &target) {
                    Ok(()) => {
                        self.temp.keep();
                        // The artifact is complete either way; only its
                        // durability across a crash is in doubt.
                        if let Err(err) = sync_dir(parent) {
                            tracing::warn!(error = %err, "cannot sync the models folder");
                        }
                        return Ok(target);
                    }
                    // Another save took this version between the check and the rename.
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                        ) => {}
                    Err(err) => return Err(io_error("rename into", &target)(err)),
                }
            }
        }
        Err(ArtifactError::NoFreeVersion(parent.join(&self.prefix)))
    }
}

/// Reads the artifact in `path` and builds its model on `backend`.
pub fn load_artifact(path: &Path, backend: Backend) -> Result<Artifact, ArtifactError> {
    let manifest_path = path.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(ArtifactError::Incomplete(path.to_owned()));
    }
    let manifest: Manifest = read_json(&manifest_path)?;
    let strategy: StrategyConfig = read_json(&path.join(STRATEGY_FILE))?;
    let features: FeatureSpec = read_json(&path.join(FEATURES_FILE))?;
    let metrics: Metrics = read_json(&path.join(METRICS_FILE))?;
    let architecture = manifest.architecture.clone();
    let inconsistent = |message: String| ArtifactError::Inconsistent {
        path: path.to_owned(),
        message,
    };
    architecture.validate().map_err(inconsistent)?;
    if features.window != architecture.window
        || features.names.len() != architecture.width
        || features.symbols.len() != architecture.num_symbols
    {
        return Err(inconsistent(format!(
            "features.json describes window {} x {} features over {} symbols, the model \
             window {} x {} over {}",
            features.window,
            features.names.len(),
            features.symbols.len(),
            architecture.window,
            architecture.width,
            architecture.num_symbols
        )));
    }

    let weights_path = path.join(WEIGHTS_FILE);
    let bytes = fs::read(&weights_path).map_err(io_error("read", &weights_path))?;
    let weights_error = |err: burn::store::RecordError| ArtifactError::Weights {
        action: "load",
        path: weights_path.clone(),
        message: err.to_string(),
    };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(weights_error)?;
    let opened = crate::backend::open(backend)?;
    let network = Network::new(&architecture, &opened.device)
        .try_load_record(record)
        .map_err(weights_error)?;
    Ok(Artifact {
        path: path.to_owned(),
        manifest,
        strategy,
        features,
        metrics,
        model: Model::new(network, architecture, backend, opened),
    })
}

/// The strategy name as one folder name: no separators, not hidden, not `..`.
fn checked_name(name: &str) -> Result<&str, ArtifactError> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| matches!(c, '/' | '\\') || c.is_control());
    if valid {
        Ok(name)
    } else {
        Err(ArtifactError::InvalidName(name.to_owned()))
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join("-")
}

/// 1 + the highest `{prefix}{N}` in `parent`, complete or not (so that a
/// leftover folder is never overwritten).
fn next_version(parent: &Path, prefix: &str) -> Result<u32, ArtifactError> {
    let entries = fs::read_dir(parent).map_err(io_error("list", parent))?;
    let mut highest = 0;
    for entry in entries {
        let entry = entry.map_err(io_error("list", parent))?;
        let name = entry.file_name();
        let version = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .and_then(|digits| digits.parse::<u32>().ok());
        if let Some(version) = version {
            highest = highest.max(version);
        }
    }
    Ok(highest + 1)
}

/// A hidden folder that is removed when dropped, unless kept.
#[derive(Debug)]
struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    fn create(parent: &Path, final_name: &str) -> Result<Self, ArtifactError> {
        let path = parent.join(format!(".{final_name}.tmp-{:016x}", fastrand::u64(..)));
        fs::create_dir(&path).map_err(io_error("create", &path))?;
        Ok(Self { path: Some(path) })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// The folder was renamed into place: nothing to remove.
    fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(err) = fs::remove_dir_all(&path)
        {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove temporary model folder");
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let write = || -> io::Result<()> {
        let mut file = File::create_new(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(io_error("write", path))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ArtifactError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| ArtifactError::Json {
        action: "encode",
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    write_file(path, &bytes)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ArtifactError> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| ArtifactError::Json {
        action: "parse",
        path: path.to_owned(),
        source,
    })
}

/// Makes the folder's entries (new files, a rename) durable.
fn sync_dir(path: &Path) -> Result<(), ArtifactError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("sync", path))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArtifactError {
    let path = path.to_owned();
    move |source| ArtifactError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests;
