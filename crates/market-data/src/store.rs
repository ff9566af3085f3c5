//! The local data store: one validated CSV file per series,
//! `{dir}/{SYMBOL}_{timeframe}.csv`, read in segments and written atomically.

mod reader;
mod write;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::reader::SeriesReader;
use self::write::write_atomically;
pub(crate) use self::write::write_bars;
use crate::validate;
use crate::{Bar, DataError, Symbol, Timeframe};

/// Where the bars came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BarSource {
    Store {
        path: std::path::PathBuf,
    },
    /// Built on the fly from a lower timeframe the store has.
    Resampled {
        from: Timeframe,
        path: std::path::PathBuf,
    },
}

impl BarSource {
    /// The stored timeframe that is read to serve `requested`.
    pub fn timeframe(&self, requested: Timeframe) -> Timeframe {
        match self {
            BarSource::Store { .. } => requested,
            BarSource::Resampled { from, .. } => *from,
        }
    }
}

/// The CSV files of one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStore {
    dir: PathBuf,
}

/// One series found by [`LocalStore::list`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesInfo {
    pub symbol: Symbol,
    pub timeframe: Timeframe,
    pub path: PathBuf,
    pub bars: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl LocalStore {
    /// The environment variable naming the data directory.
    pub const DIR_ENV: &'static str = "TRDR_DATA_DIR";
    /// The data directory when neither a flag nor the variable names one.
    pub const DEFAULT_DIR: &'static str = "./data";

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory to use: `flag` if given, else `TRDR_DATA_DIR` if
    /// set and not empty, else `./data`.
    pub fn resolve_dir(flag: Option<PathBuf>) -> PathBuf {
        Self::resolve_dir_with(flag, |name| std::env::var(name).ok())
    }

    /// [`LocalStore::resolve_dir`] with the environment read through `lookup`.
    pub fn resolve_dir_with(
        flag: Option<PathBuf>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> PathBuf {
        flag.or_else(|| {
            lookup(Self::DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(Self::DEFAULT_DIR))
    }

    /// Where the series lives, e.g. `{dir}/EURUSD_1h.csv`.
    pub fn path(&self, symbol: &Symbol, timeframe: Timeframe) -> PathBuf {
        self.dir.join(file_name(symbol, timeframe))
    }

    pub fn exists(&self, symbol: &Symbol, timeframe: Timeframe) -> bool {
        self.path(symbol, timeframe).is_file()
    }

    /// Where bars of `timeframe` come from: its own file, else the file of
    /// the highest lower timeframe that divides it (resampled on the fly).
    pub fn source_for(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
    ) -> Result<BarSource, DataError> {
        if self.exists(symbol, timeframe) {
            return Ok(BarSource::Store {
                path: self.path(symbol, timeframe),
            });
        }
        Timeframe::ALL
            .into_iter()
            .rev()
            .filter(|lower| *lower < timeframe && divides(*lower, timeframe))
            .find(|lower| self.exists(symbol, *lower))
            .map(|lower| BarSource::Resampled {
                from: lower,
                path: self.path(symbol, lower),
            })
            .ok_or_else(|| DataError::NotFound {
                symbol: symbol.clone(),
                timeframe,
                path: self.path(symbol, timeframe),
            })
    }

    /// The whole series of `timeframe`, resampled from a lower one when the
    /// store lacks it.
    pub fn read_or_resample(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
    ) -> Result<(Vec<Bar>, BarSource), DataError> {
        let source = self.source_for(symbol, timeframe)?;
        let stored = source.timeframe(timeframe);
        let bars = self.read(symbol, stored)?;
        let bars = if stored == timeframe {
            bars
        } else {
            crate::resample(&bars, stored, timeframe)?
        };
        Ok((bars, source))
    }

    /// Opens a series for reading in segments; checks the header now.
    pub fn open(&self, symbol: &Symbol, timeframe: Timeframe) -> Result<SeriesReader, DataError> {
        let path = self.path(symbol, timeframe);
        match File::open(&path) {
            Ok(file) => SeriesReader::from_file(path, file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Err(DataError::NotFound {
                symbol: symbol.clone(),
                timeframe,
                path,
            }),
            Err(error) => Err(DataError::io(path, error)),
        }
    }

    /// Reads and validates the whole series.
    pub fn read(&self, symbol: &Symbol, timeframe: Timeframe) -> Result<Vec<Bar>, DataError> {
        self.open(symbol, timeframe)?.read_to_end()
    }

    /// Validates `bars`, then replaces the series file atomically (a temporary
    /// file in the same directory, synced, then renamed over the target), so
    /// readers see the old file or the new one, never a mix. Creates the
    /// directory if needed. Returns the file's path.
    pub fn write(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        bars: &[Bar],
    ) -> Result<PathBuf, DataError> {
        let path = self.path(symbol, timeframe);
        if let Err(message) = validate::check_bars(bars) {
            return Err(DataError::InvalidFile { path, message });
        }
        fs::create_dir_all(&self.dir).map_err(|error| DataError::io(&self.dir, error))?;
        write_atomically(&path, |out| write_bars(out, bars))?;
        Ok(path)
    }

    /// Every series file in the directory (`{SYMBOL}_{timeframe}.csv` with a
    /// valid symbol and a timeframe in its canonical form), sorted by symbol
    /// then timeframe. Other files are ignored. Each file is read in full, so
    /// an invalid one fails the listing with an error naming it.
    pub fn list(&self) -> Result<Vec<SeriesInfo>, DataError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::MissingDataDir {
                    path: self.dir.clone(),
                });
            }
            Err(error) => return Err(DataError::io(&self.dir, error)),
        };
        let mut series = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| DataError::io(&self.dir, error))?;
            let name = entry.file_name();
            let Some((symbol, timeframe)) = name.to_str().and_then(parse_file_name) else {
                continue;
            };
            let path = entry.path();
            if path.is_file() {
                series.push((symbol, timeframe, path));
            }
        }
        series.sort();
        series
            .into_iter()
            .map(|(symbol, timeframe, path)| summarize(symbol, timeframe, path))
            .collect()
    }
}

fn file_name(symbol: &Symbol, timeframe: Timeframe) -> String {
    format!("{symbol}_{timeframe}.csv")
}

/// The series a file name stands for, if it is a store file name.
fn parse_file_name(name: &str) -> Option<(Symbol, Timeframe)> {
    let (symbol, timeframe) = name.strip_suffix(".csv")?.rsplit_once('_')?;
    let timeframe = Timeframe::ALL
        .into_iter()
        .find(|tf| tf.as_str() == timeframe)?;
    Some((symbol.parse().ok()?, timeframe))
}

fn summarize(symbol: Symbol, timeframe: Timeframe, path: PathBuf) -> Result<SeriesInfo, DataError> {
    let mut reader = SeriesReader::from_path(&path)?;
    let mut bars = 0;
    let mut first = None;
    let mut last = None;
    while let Some(segment) = reader.next_segment(SUMMARY_SEGMENT)? {
        bars += segment.len();
        first = first.or_else(|| segment.first().map(|bar| bar.timestamp));
        last = segment.last().map(|bar| bar.timestamp).or(last);
    }
    match (first, last) {
        (Some(first), Some(last)) => Ok(SeriesInfo {
            symbol,
            timeframe,
            path,
            bars,
            first,
            last,
        }),
        // The reader fails on a file without bars before we get here.
        _ => Err(DataError::InvalidFile {
            path,
            message: "no bars".to_owned(),
        }),
    }
}

const SUMMARY_SEGMENT: usize = 65_536;

fn divides(lower: Timeframe, higher: Timeframe) -> bool {
    let (lower, higher) = (
        lower.duration().num_seconds(),
        higher.duration().num_seconds(),
    );
    lower > 0 && higher % lower == 0
}

#[cfg(test)]
mod tests;
