//! `cargo xtask bench data`: how fast series are parsed and validated,
//! written and resampled, and how much memory a large load takes.
//!
//! Prints one JSON line, then a table. Peak memory is the process's resident
//! high-water mark (Linux `VmHWM`), reset before each measurement.

// A benchmark's output is its purpose.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bench_support::{round, workspace_root};
use chrono::{TimeZone, Utc};
use market_data::{Bar, LocalStore, Symbol, Timeframe, resample};

const LARGE_SERIES_BARS: usize = 1_000_000;
/// Each measurement repeats until it has run at least this long.
const MIN_MEASURE: Duration = Duration::from_millis(500);

fn main() {
    let samples = LocalStore::new(workspace_root().join("data"));
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let mut table: Vec<(String, String)> = Vec::new();

    for info in samples.list().expect("the shipped sample data") {
        let bytes = std::fs::metadata(&info.path).expect("sample file").len();
        let (bars, per_run) = repeat(|| {
            samples
                .read(&info.symbol, info.timeframe)
                .expect("sample series")
                .len()
        });
        let bars_per_s = bars as f64 / per_run.as_secs_f64();
        let mb_per_s = bytes as f64 / 1e6 / per_run.as_secs_f64();
        rows.push(serde_json::json!({
            "series": format!("{}_{}", info.symbol, info.timeframe),
            "bars": bars,
            "read_bars_per_s": bars_per_s.round(),
            "read_mb_per_s": round(mb_per_s, 1),
        }));
        table.push((
            format!(
                "read+validate {}_{} ({bars} bars)",
                info.symbol, info.timeframe
            ),
            format!("{bars_per_s:>12.0} bars/s {mb_per_s:>7.1} MB/s"),
        ));
    }

    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LocalStore::new(dir.path());
    let symbol: Symbol = "SYNTH".parse().expect("valid symbol");
    let generated = synthetic_hourly(LARGE_SERIES_BARS);

    let started = Instant::now();
    let path = store
        .write(&symbol, Timeframe::H1, &generated)
        .expect("write large series");
    let write_s = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path).expect("large series file").len();
    drop(generated);

    reset_peak_memory();
    let baseline_kib = peak_memory_kib();
    let started = Instant::now();
    let loaded = store
        .read(&symbol, Timeframe::H1)
        .expect("read large series");
    let read_s = started.elapsed().as_secs_f64();
    let peak_kib = peak_memory_kib();
    let peak_growth_mib = match (baseline_kib, peak_kib) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) as f64 / 1024.0),
        _ => None,
    };

    let (four_hour, resample_4h) = repeat(|| {
        resample(&loaded, Timeframe::H1, Timeframe::H4)
            .expect("1h to 4h")
            .len()
    });
    let (daily, resample_1d) = repeat(|| {
        resample(&loaded, Timeframe::H1, Timeframe::D1)
            .expect("1h to 1d")
            .len()
    });
    let resample_rate = |took: Duration| LARGE_SERIES_BARS as f64 / took.as_secs_f64();

    let json = serde_json::json!({
        "bench": "data",
        "samples": rows,
        "large_series": {
            "bars": LARGE_SERIES_BARS,
            "file_mb": round(bytes as f64 / 1e6, 1),
            "write_bars_per_s": (LARGE_SERIES_BARS as f64 / write_s).round(),
            "read_bars_per_s": (loaded.len() as f64 / read_s).round(),
            "read_mb_per_s": round(bytes as f64 / 1e6 / read_s, 1),
            "read_peak_memory_growth_mib": peak_growth_mib.map(|mib| round(mib, 1)),
            "bar_size_bytes": std::mem::size_of::<Bar>(),
        },
        "resample_input_bars_per_s": {
            "1h_to_4h": resample_rate(resample_4h).round(),
            "1h_to_1d": resample_rate(resample_1d).round(),
        },
    });
    table.push((
        format!(
            "write (atomic) {LARGE_SERIES_BARS} bars, {:.1} MB",
            bytes as f64 / 1e6
        ),
        format!("{:>12.0} bars/s", LARGE_SERIES_BARS as f64 / write_s),
    ));
    table.push((
        format!("read+validate {LARGE_SERIES_BARS} bars"),
        format!(
            "{:>12.0} bars/s {:>7.1} MB/s",
            loaded.len() as f64 / read_s,
            bytes as f64 / 1e6 / read_s
        ),
    ));
    table.push((
        format!(
            "  peak memory growth (Bar = {} bytes)",
            std::mem::size_of::<Bar>()
        ),
        peak_growth_mib.map_or("unavailable".to_owned(), |mib| format!("{mib:>12.1} MiB")),
    ));
    table.push((
        format!("resample 1h -> 4h ({four_hour} bars out)"),
        format!("{:>12.0} bars/s in", resample_rate(resample_4h)),
    ));
    table.push((
        format!("resample 1h -> 1d ({daily} bars out)"),
        format!("{:>12.0} bars/s in", resample_rate(resample_1d)),
    ));

    println!("{json}");
    println!();
    for (label, value) in table {
        println!("{label:<48} {value}");
    }
}

/// Runs `work` until [`MIN_MEASURE`] has passed; returns its last output and
/// the mean time per run.
fn repeat<T>(mut work: impl FnMut() -> T) -> (T, Duration) {
    let started = Instant::now();
    let mut runs = 0u32;
    loop {
        let output = std::hint::black_box(work());
        runs += 1;
        if started.elapsed() >= MIN_MEASURE {
            return (output, started.elapsed() / runs);
        }
    }
}

/// A valid hourly series with a weekly rhythm of prices.
fn synthetic_hourly(bars: usize) -> Vec<Bar> {
    let start = Utc.with_ymd_and_hms(2000, 1, 3, 0, 0, 0).unwrap();
    (0..bars)
        .map(|i| {
            let base = 100.0 + ((i % 168) as f64 / 168.0 * std::f64::consts::TAU).sin() * 5.0;
            let open = (base * 1e4).round() / 1e4;
            let close = ((base + 0.25) * 1e4).round() / 1e4;
            Bar {
                timestamp: start + chrono::Duration::hours(i as i64),
                open,
                high: open.max(close) + 0.5,
                low: open.min(close) - 0.5,
                close,
                volume: (i % 1000) as f64 * 10.0,
            }
        })
        .collect()
}

/// Resets the resident high-water mark (Linux; ignored elsewhere).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
