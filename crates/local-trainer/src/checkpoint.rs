//! Checkpoints: the whole state of a training at a batch boundary, so that
//! a stopped run continues to exactly the weights and metrics of a run that
//! never stopped.
//!
//! A checkpoint holds the network and optimizer records (Adam's moments
//! and step counts), the position (epoch, batches done, whether the epoch's
//! validation is done), the sample order of the epoch under way, both
//! random streams, the running loss and accuracy of the epoch, the best
//! epoch's weights and score, the early-stopping count and the metric
//! history. It also holds what it was trained on (the strategy, the feature
//! layout, a fingerprint of every split's samples and the backend), so a
//! resume against changed inputs is refused with what changed.
//!
//! One file, replaced atomically (temporary file, fsync, rename, fsync of
//! the folder): magic and format version, then length-prefixed sections
//! (JSON header, sample order, network, optimizer, best network), then an
//! FNV-1a checksum of everything before it, so a damaged file is refused.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};
use strategy::{EpochMetrics, PreparedData, Samples, StrategyConfig};

use crate::{Backend, TrainError};

const MAGIC: &[u8; 8] = b"TRDRCKPT";
const FORMAT_VERSION: u32 = 2;

/// Where a training keeps its checkpoint, where it continues from, and who
/// hears of each save.
pub struct Checkpoints {
    /// The file this run writes, replaced at each save.
    pub path: PathBuf,
    /// A checkpoint of an earlier run of the same training to continue from.
    pub resume_from: Option<PathBuf>,
    /// Told of every checkpoint once it is durable on disk, from the
    /// thread that wrote it (the training's own thread goes on meanwhile).
    pub on_saved: Arc<dyn Fn(&SavedCheckpoint) + Send + Sync>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("path", &self.path)
            .field("resume_from", &self.resume_from)
            .finish_non_exhaustive()
    }
}

/// A checkpoint written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCheckpoint {
    pub path: PathBuf,
    pub bytes: u64,
    /// The epoch the state is in (from 1).
    pub epoch: usize,
    /// Batches of that epoch done.
    pub batch: usize,
    /// How long encoding and writing it took (fsync included), the
    /// training being held up by the encoding only.
    pub took: Duration,
}

/// The strategy to resume the checkpoint at `path` with, and the backend:
/// those it was trained on. Given `current`, the strategy as its file reads
/// now, refuses one that changed since, naming the fields; where it is read
/// from and its checkpoint policy are `current`'s.
pub fn resume_strategy(
    path: &Path,
    current: Option<&StrategyConfig>,
) -> Result<(StrategyConfig, Backend), TrainError> {
    let inputs = read_file(path)?.header.inputs;
    let mut strategy = inputs.strategy;
    if let Some(current) = current {
        let now = comparable(current);
        if now != strategy {
            let fields = changed_fields(&strategy, &now).join(", ");
            return Err(invalid(
                path,
                &format!("the strategy changed since the checkpoint ({fields})"),
            ));
        }
        strategy.source.clone_from(&current.source);
        strategy.model.checkpoint = current.model.checkpoint;
    }
    Ok((strategy, inputs.backend))
}

/// Where the training loop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// The epoch under way, or the last one run (from 1).
    pub(crate) epoch: usize,
    /// Batches of `epoch` done.
    pub(crate) batches_done: usize,
    /// Whether `epoch` is validated and in the history.
    pub(crate) epoch_closed: bool,
}

/// The running sums of the epoch under way.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunningSums {
    /// The f32 sum kept on the device, as its bits: the sum goes on from
    /// exactly this value.
    pub(crate) loss_sum_bits: u32,
    pub(crate) correct: u64,
    pub(crate) samples: usize,
}

/// Everything but the tensors and the sample order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) trainer_version: String,
    pub(crate) inputs: Inputs,
    pub(crate) epochs: usize,
    pub(crate) position: Position,
    pub(crate) stopped_early: bool,
    pub(crate) shuffle_rng: u64,
    pub(crate) dropout_rng: u64,
    pub(crate) running: Option<RunningSums>,
    /// The best epoch so far and its score (its weights are a section).
    pub(crate) best: Option<(usize, f64)>,
    pub(crate) epochs_without_improvement: usize,
    pub(crate) history: Vec<EpochMetrics>,
}

/// What a training was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Inputs {
    pub(crate) strategy: StrategyConfig,
    pub(crate) backend: Backend,
    pub(crate) window: usize,
    pub(crate) features: Vec<String>,
    pub(crate) train: SplitPrint,
    pub(crate) validation: SplitPrint,
    pub(crate) test: SplitPrint,
}

/// A split's size, time range and a hash of its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SplitPrint {
    samples: usize,
    first: Option<i64>,
    last: Option<i64>,
    hash: u64,
}

impl SplitPrint {
    fn of(split: &Samples) -> Self {
        let mut hash = Fnv::new();
        hash.write(&hash_values(&split.features).to_le_bytes());
        for label in &split.labels {
            hash.write(&[label.index() as u8]);
        }
        for id in &split.symbol_ids {
            hash.write(&id.to_le_bytes());
        }
        let millis = |time: &chrono::DateTime<chrono::Utc>| time.timestamp_millis();
        Self {
            samples: split.len(),
            first: split.timestamps.first().map(millis),
            last: split.timestamps.last().map(millis),
            hash: hash.finish(),
        }
    }
}

impl Inputs {
    pub(crate) fn of(strategy: &StrategyConfig, data: &PreparedData, backend: Backend) -> Self {
        Self {
            strategy: comparable(strategy),
            backend,
            window: data.layout.window,
            features: data.layout.names.clone(),
            train: SplitPrint::of(&data.train),
            validation: SplitPrint::of(&data.validation),
            test: SplitPrint::of(&data.test),
        }
    }

    /// What differs from `now`, the inputs of a resume, in words; `None`
    /// when the two are the same training.
    pub(crate) fn changes(&self, now: &Inputs) -> Option<String> {
        let mut changes = Vec::new();
        if self.strategy != now.strategy {
            let fields = changed_fields(&self.strategy, &now.strategy);
            changes.push(format!("the strategy ({})", fields.join(", ")));
        }
        if self.backend != now.backend {
            changes.push(format!("the backend ({} → {})", self.backend, now.backend));
        }
        if self.window != now.window || self.features != now.features {
            changes.push(format!(
                "the features ({} × {} → {} × {})",
                self.window,
                self.features.len(),
                now.window,
                now.features.len()
            ));
        }
        for (name, then, now) in [
            ("train", self.train, now.train),
            ("validation", self.validation, now.validation),
            ("test", self.test, now.test),
        ] {
            if then != now {
                changes.push(split_change(name, then, now));
            }
        }
        (!changes.is_empty()).then(|| changes.join("; "))
    }
}

/// The strategy without what does not change the training: where it was
/// read from, and when it saves checkpoints.
fn comparable(strategy: &StrategyConfig) -> StrategyConfig {
    let mut strategy = strategy.clone();
    strategy.source = None;
    strategy.model.checkpoint = Default::default();
    strategy
}

/// The dotted paths of the fields that differ (at most five named).
fn changed_fields(then: &StrategyConfig, now: &StrategyConfig) -> Vec<String> {
    let (Ok(then), Ok(now)) = (serde_json::to_value(then), serde_json::to_value(now)) else {
        return vec!["its fields".to_owned()];
    };
    let mut paths = Vec::new();
    diff(&then, &now, String::new(), &mut paths);
    if paths.len() > 5 {
        let more = paths.len() - 4;
        paths.truncate(4);
        paths.push(format!("{more} more"));
    }
    paths
}

fn diff(then: &serde_json::Value, now: &serde_json::Value, path: String, out: &mut Vec<String>) {
    use serde_json::Value;
    match (then, now) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let null = Value::Null;
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    child,
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(path),
        _ => {}
    }
}

fn split_change(name: &str, then: SplitPrint, now: SplitPrint) -> String {
    if then.samples != now.samples {
        format!(
            "the {name} data ({} → {} samples)",
            then.samples, now.samples
        )
    } else if (then.first, then.last) != (now.first, now.last) {
        format!("the {name} data (its time range)")
    } else {
        format!("the {name} data (same size, other values)")
    }
}

/// A checkpoint as read from disk.
pub(crate) struct CheckpointFile {
    pub(crate) header: Header,
    pub(crate) order: Vec<usize>,
    pub(crate) network: Bytes,
    pub(crate) optimizer: Bytes,
    pub(crate) best: Option<Bytes>,
}

/// The sections of a checkpoint to write.
pub(crate) struct Sections<'a> {
    pub(crate) header: &'a Header,
    pub(crate) order: &'a [usize],
    pub(crate) network: &'a [u8],
    pub(crate) optimizer: &'a [u8],
    pub(crate) best: Option<&'a [u8]>,
}

/// The file's content for `sections`.
pub(crate) fn encode(path: &Path, sections: &Sections<'_>) -> Result<Vec<u8>, TrainError> {
    let header = serde_json::to_vec(sections.header)
        .map_err(|error| invalid(path, &format!("cannot encode its header: {error}")))?;
    // Four bytes an index: a split beyond 4 billion samples is refused.
    let order: Vec<u8> = sections
        .order
        .iter()
        .map(|&index| u32::try_from(index))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| invalid(path, "its training split has more than 2^32 samples"))?
        .into_iter()
        .flat_map(u32::to_le_bytes)
        .collect();
    let mut content = Vec::with_capacity(
        64 + header.len()
            + order.len()
            + sections.network.len()
            + sections.optimizer.len()
            + sections.best.map_or(0, <[u8]>::len),
    );
    content.extend_from_slice(MAGIC);
    content.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    for section in [
        &header[..],
        &order,
        sections.network,
        sections.optimizer,
        sections.best.unwrap_or_default(),
    ] {
        content.extend_from_slice(&(section.len() as u64).to_le_bytes());
        content.extend_from_slice(section);
    }
    let mut checksum = Fnv::new();
    checksum.write(&content);
    content.extend_from_slice(&checksum.finish().to_le_bytes());
    Ok(content)
}

/// Replaces `path` with `content` so that a crash leaves the old file or
/// the new one, whole: a temporary file in the same folder (created if
/// missing), fsync, rename, fsync of the folder. Checkpoints are written
/// this way, here and where a checkpoint fetched from a training host
/// lands.
pub fn replace_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.tmp-{:016x}", fastrand::u64(..)));
    let written = (|| {
        let mut file = File::create_new(&temporary)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        // Best effort: the error that matters is the write's.
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Reads and checks the checkpoint at `path`.
pub(crate) fn read_file(path: &Path) -> Result<CheckpointFile, TrainError> {
    let content = fs::read(path).map_err(|source| TrainError::CheckpointIo {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let damaged = |what: &str| invalid(path, what);
    if content.len() < MAGIC.len() + 4 + 8 || &content[..MAGIC.len()] != MAGIC {
        return Err(damaged("it is not a trdr checkpoint"));
    }
    let (body, sum) = content.split_at(content.len() - 8);
    let mut checksum = Fnv::new();
    checksum.write(body);
    if sum != checksum.finish().to_le_bytes() {
        return Err(damaged("it is damaged (its checksum does not match)"));
    }
    let version = u32::from_le_bytes(body[8..12].try_into().unwrap_or_default());
    if version != FORMAT_VERSION {
        return Err(damaged(&format!(
            "its format version is {version}; this trdr reads version {FORMAT_VERSION}"
        )));
    }
    let mut rest = &body[12..];
    let mut next = || -> Result<&[u8], TrainError> {
        let (length, tail) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| damaged("a section is cut short"))?;
        let length = usize::try_from(u64::from_le_bytes(*length))
            .ok()
            .filter(|&length| length <= tail.len())
            .ok_or_else(|| damaged("a section is cut short"))?;
        let (section, tail) = tail.split_at(length);
        rest = tail;
        Ok(section)
    };
    let header: Header = serde_json::from_slice(next()?)
        .map_err(|error| damaged(&format!("its header does not parse: {error}")))?;
    let order = next()?
        .chunks_exact(4)
        .map(|bytes| u32::from_le_bytes(bytes.try_into().unwrap_or_default()) as usize)
        .collect();
    let network = Bytes::from_bytes_vec(next()?.to_vec());
    let optimizer = Bytes::from_bytes_vec(next()?.to_vec());
    let best = next()?;
    let best = (!best.is_empty()).then(|| Bytes::from_bytes_vec(best.to_vec()));
    Ok(CheckpointFile {
        header,
        order,
        network,
        optimizer,
        best,
    })
}

pub(crate) fn invalid(path: &Path, reason: &str) -> TrainError {
    TrainError::Resume {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A hash of `values`' bits: FNV-1a over whole words in four interleaved
/// lanes, whose multiplications do not wait on each other, so that tens of
/// megabytes of features hash in milliseconds. It detects changes; it is
/// no defence against someone crafting a collision.
fn hash_values(values: &[f32]) -> u64 {
    let mut lanes = [FNV_OFFSET, FNV_OFFSET ^ 1, FNV_OFFSET ^ 2, FNV_OFFSET ^ 3];
    let chunks = values.chunks_exact(lanes.len());
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane = (*lane ^ u64::from(value.to_bits())).wrapping_mul(FNV_PRIME);
        }
    }
    let mut hash = Fnv::new();
    for word in lanes
        .into_iter()
        .chain(rest.iter().map(|value| u64::from(value.to_bits())))
    {
        hash.write(&word.to_le_bytes());
    }
    hash.finish()
}

/// 64-bit FNV-1a: stable across runs and builds, unlike std's hasher.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(FNV_OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests;
