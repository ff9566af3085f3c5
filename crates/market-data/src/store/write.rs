//! Writing a series file atomically: through a temporary file beside it,
//! renamed over the target once complete and synced.

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::validate;
use crate::{Bar, DataError};

pub(crate) fn write_bars(out: &mut impl Write, bars: &[Bar]) -> io::Result<()> {
    out.write_all(validate::HEADER_LINE.as_bytes())?;
    out.write_all(b"\n")?;
    let mut line = String::with_capacity(128);
    for bar in bars {
        line.clear();
        validate::write_timestamp(&mut line, bar.timestamp);
        for value in [bar.open, bar.high, bar.low, bar.close, bar.volume] {
            line.push(',');
            validate::write_number(&mut line, value);
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Writes `target` through a temporary file beside it: the body is written,
/// flushed and synced, then the file is renamed over `target`. On any error
/// the temporary file is removed and `target` is untouched.
pub(super) fn write_atomically(
    target: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), DataError> {
    let fail = |error| DataError::io(target, error);
    let (file, temp) = create_temp_beside(target).map_err(fail)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    body(&mut out).map_err(fail)?;
    let file = out.into_inner().map_err(|error| fail(error.into_error()))?;
    file.sync_all().map_err(fail)?;
    drop(file);
    fs::rename(&temp.path, target).map_err(fail)?;
    temp.keep();
    sync_dir(target);
    Ok(())
}

/// Makes the rename itself durable. Best effort: not every platform can
/// open a directory, and the data is already safe in the file.
fn sync_dir(target: &Path) {
    #[cfg(unix)]
    if let Some(dir) = target.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    #[cfg(not(unix))]
    let _ = target;
}

/// Removes the temporary file when dropped, unless [`TempFile::keep`] was
/// called after the rename.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Marks temporary file names; they start with a dot and do not end in `.csv`,
/// so `list` skips them.
const TEMP_MARK: &str = ".tmp-";

fn create_temp_beside(target: &Path) -> io::Result<(File, TempFile)> {
    let name = target
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the target has no file name")
        })?;
    let dir = target.parent().unwrap_or(Path::new(""));
    let mut attempts = 0;
    loop {
        let path = dir.join(format!(".{name}{TEMP_MARK}{:016x}", random_u64()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, TempFile { path, armed: true })),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                attempts += 1
            }
            Err(error) => return Err(error),
        }
    }
}

/// A random-enough number for temporary names: std's randomly keyed hasher
/// over a per-process counter, the process id and the time.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{SHIPPED, at, file_names, symbol, temp_store};
    use crate::{LocalStore, Timeframe};

    #[test]
    fn extreme_values_round_trip() {
        let (_dir, store) = temp_store();
        let name = symbol("X");
        let bars = [
            Bar {
                timestamp: at("0000-01-01T00:00:00Z"),
                open: 5e-324,
                high: f64::MAX,
                low: 0.0,
                close: 1e21,
                volume: 0.1 + 0.2,
            },
            Bar {
                timestamp: at("2017-01-01T00:00:00.123456789Z"),
                open: 1.0 / 3.0,
                high: 1e300,
                low: -0.0,
                close: 1e-300,
                volume: 123456789012345680.0,
            },
        ];
        let path = store.write(&name, Timeframe::M1, &bars).unwrap();
        assert_eq!(store.read(&name, Timeframe::M1).unwrap(), bars);
        let text = fs::read_to_string(path).unwrap();
        assert!(
            !text.replace(validate::HEADER_LINE, "").contains('e'),
            "no exponents: {text}"
        );
        assert!(
            text.contains("\n2017-01-01T00:00:00.123456789Z,0.3333333333333333,"),
            "{text}"
        );
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temporary_files() {
        let (dir, store) = temp_store();
        let nested = LocalStore::new(dir.path().join("new/data"));
        let name = symbol("EURUSD");
        let bars = LocalStore::new(SHIPPED).read(&name, Timeframe::H1).unwrap();
        let path = nested.write(&name, Timeframe::H1, &bars[..100]).unwrap();
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);
        nested.write(&name, Timeframe::H1, &bars).unwrap();
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);
        let before = fs::read(&path).unwrap();

        // Invalid bars: refused before anything is written.
        let mut bad = bars.clone();
        bad[7].volume = -1.0;
        let error = nested.write(&name, Timeframe::H1, &bad).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: cannot write bars[7] (2017-01-02T05:00:00Z): volume is negative (-1)",
                path.display()
            )
        );
        let error = nested.write(&name, Timeframe::H1, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}: no bars to write", path.display())
        );

        // A failure half way through the body: the guard removes the
        // temporary file and the target keeps its old bytes.
        let error = write_atomically(&path, |out| {
            write_bars(out, &bars[..10])?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert_eq!(error.to_string(), path.display().to_string());
        assert_eq!(
            std::error::Error::source(&error).map(ToString::to_string),
            Some("disk on fire".to_owned())
        );
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);

        // The temporary file really is there while the body runs.
        let mut seen = Vec::new();
        write_atomically(&path, |out| {
            seen = file_names(nested.dir());
            write_bars(out, &bars)
        })
        .unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].starts_with(".EURUSD_1h.csv.tmp-"), "{seen:?}");
        assert_eq!(file_names(nested.dir()), ["EURUSD_1h.csv"]);
        assert_eq!(fs::read(&path).unwrap(), before);
        drop(store);
    }
}
