//! `trdr data`: load (as an operation, with progress), show, list and import series.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use market_data::{
    Bar, ColumnMap, DataError, GapReport, ImportOptions, LoadMode, LoadRequest, LoadSummary,
    LocalStore, Symbol, TimeFormat, Timeframe, TimestampColumns, Timezone, merge_bars,
    read_import_file,
};
use orchestrator_core::{Operation, ServiceOrchestrator};

use crate::Global;
use crate::args::parse_time;
use crate::display::{OperationDisplay, OutputMode};
use crate::embedded;
use crate::follow::follow;
use crate::outcome::report_outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Load a series as an operation, with live progress, and summarise it.
    ///
    /// A timeframe the store lacks is built on the fly from a lower one it
    /// has (e.g. 4h from 1h). Ctrl-C cancels the load and exits with 130.
    Load(LoadArgs),
    /// Show a stored series: bars, range, gaps and the last bars.
    Show {
        /// Market symbol, e.g. EURUSD.
        symbol: Symbol,
        /// Bar timeframe: 1m, 5m, 15m, 30m, 1h, 4h, 1d or 1w (any case).
        timeframe: Timeframe,
        /// How many of the newest bars to print.
        #[arg(long, default_value_t = 5)]
        last: usize,
    },
    /// List the series in the data directory.
    List,
    /// Import a CSV file into the store, merged with what is there.
    ///
    /// Recognises the exports people have from the header and the first
    /// rows: pandas to_csv (named or unnamed time index, with or without a
    /// UTC offset; yfinance's Price/Ticker rows), MetaTrader 4/5, Binance
    /// klines (no header), TradingView, Stooq, Yahoo, Dukascopy,
    /// CryptoDataDownload; `,`, `;` or tab separated. The Close column is
    /// the close (an `Adj Close` is used only with --adjusted). Any other
    /// layout imports with the mapping flags. The store file is replaced
    /// atomically, so an interrupted import never leaves it broken.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The CSV file to import.
    file: PathBuf,
    /// Symbol to store the bars under.
    #[arg(long)]
    symbol: Symbol,
    /// Timeframe of the bars in the file.
    #[arg(long)]
    timeframe: Timeframe,
    /// The time column, by header name or 1-based position; DATE,TIME for a
    /// date column and a time column.
    #[arg(long, value_name = "COLUMN")]
    timestamp_column: Option<TimestampColumns>,
    /// Value columns by header name or 1-based position, any subset:
    /// open=C,high=C,low=C,close=C,volume=C,adj_close=C.
    #[arg(long, value_name = "FIELD=COLUMN,...")]
    columns: Option<ColumnMap>,
    /// How times are written: auto, epoch-s, epoch-ms, epoch-us, epoch-ns or
    /// a strftime pattern such as "%d/%m/%Y %H:%M".
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    time_format: TimeFormat,
    /// UTC offset of times written without a zone, e.g. +02:00 (a date
    /// alone stays that date).
    #[arg(
        long,
        default_value = "UTC",
        value_name = "OFFSET",
        allow_hyphen_values = true
    )]
    timezone: Timezone,
    /// Take the adjusted close (Adj Close) as the close, scaling open, high
    /// and low by Adj Close / Close.
    #[arg(long)]
    adjusted: bool,
}

impl ImportArgs {
    fn options(&self) -> ImportOptions {
        ImportOptions {
            timestamp: self.timestamp_column.clone(),
            columns: self.columns.clone().unwrap_or_default(),
            time_format: self.time_format.clone(),
            timezone: self.timezone,
            adjusted: self.adjusted,
        }
    }
}

/// Appended to an unrecognised layout's message: how to import it anyway.
const MAPPING_HINT: &str = "map the columns to import it: --timestamp-column NAME (or DATE,TIME) \
     --columns open=NAME,high=NAME,low=NAME,close=NAME[,volume=NAME] (header names or 1-based \
     positions), with --time-format FORMAT (e.g. \"%d/%m/%Y %H:%M\", epoch-s) and --timezone \
     OFFSET (e.g. +02:00) when the times are not ISO-8601 in UTC";

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Market symbol, e.g. EURUSD.
    symbol: Symbol,
    /// Bar timeframe: 1m, 5m, 15m, 30m, 1h, 4h, 1d or 1w (any case).
    timeframe: Timeframe,
    /// First bar to keep: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or RFC 3339 (UTC).
    #[arg(long, value_parser = parse_time)]
    start: Option<DateTime<Utc>>,
    /// Last bar to keep (inclusive), same formats as --start.
    #[arg(long, value_parser = parse_time)]
    end: Option<DateTime<Utc>>,
    /// local reads the store. tail, backfill and full read it too, unless
    /// USE_DATA_HOST_SERVICE selects a data host, which this version cannot
    /// fetch from yet (the load then fails with a message saying so).
    #[arg(long, default_value_t = LoadMode::Local)]
    mode: LoadMode,
    /// Bars read between two progress updates and cancellation checks.
    #[arg(long, default_value_t = market_data::DEFAULT_SEGMENT_BARS, value_name = "N")]
    segment_bars: usize,
    /// Submit to this `trdr serve` (e.g. http://127.0.0.1:50051) and follow
    /// it there; the server's data directory and segment size apply.
    #[arg(long, env = crate::remote::SERVER_ENV, value_name = "URL")]
    server: Option<String>,
}

pub(crate) async fn run(command: DataCommand, global: &Global) -> anyhow::Result<u8> {
    let store = LocalStore::new(&global.data_dir);
    match command {
        DataCommand::Load(args) => load(args, store, global).await,
        DataCommand::Show {
            symbol,
            timeframe,
            last,
        } => show(&store, &symbol, timeframe, last, global.json),
        DataCommand::List => list(&store, global.json),
        DataCommand::Import(args) => import(&store, &args, global.json),
    }
}

async fn load(args: LoadArgs, store: LocalStore, global: &Global) -> anyhow::Result<u8> {
    let finished = match &args.server {
        Some(server) => {
            let request = rpc::proto::StartDataLoadRequest {
                symbol: args.symbol.to_string(),
                timeframe: args.timeframe.to_string(),
                start: args.start.map(rpc::timestamp),
                end: args.end.map(rpc::timestamp),
                mode: args.mode.to_string(),
            };
            crate::remote::load(server, request, global).await?
        }
        None => load_embedded(args, store, global).await?,
    };
    // A data load saves no checkpoint: no server is needed to resume it.
    report_outcome(&finished, global.json, None, |result| {
        let summary: LoadSummary =
            serde_json::from_value(result.clone()).context("unreadable load summary")?;
        print_load_summary(&summary, &finished);
        Ok(())
    })
}

async fn load_embedded(
    args: LoadArgs,
    store: LocalStore,
    global: &Global,
) -> anyhow::Result<Operation> {
    let operations = embedded::operations()?;
    let manager = host_client::data_manager_from_env(operations.clone(), store)?
        .with_segment_bars(args.segment_bars);
    let request = LoadRequest {
        symbol: args.symbol,
        timeframe: args.timeframe,
        start: args.start,
        end: args.end,
        mode: args.mode,
    };
    let id = manager.load(request)?;
    let mut display = OperationDisplay::new(OutputMode::detect(global.json));
    let finished = follow(&operations, &id, &mut display).await?;
    // The work stops at its next segment; let it, so nothing is cut mid-read.
    let _ = tokio::time::timeout(Duration::from_secs(5), manager.drain()).await;
    // Re-read: work that stopped after a cancel may have noted how it stopped.
    Ok(operations.get(&id).unwrap_or(finished))
}

fn print_load_summary(summary: &LoadSummary, operation: &Operation) {
    println!(
        "Loaded {} {}: {} bars, {}",
        summary.symbol,
        summary.timeframe,
        summary.bars,
        range(summary.first, summary.last)
    );
    match &summary.source {
        market_data::BarSource::Store { path } => println!("  source     {}", path.display()),
        market_data::BarSource::Resampled { from, path } => {
            println!("  source     {} (resampled from {from})", path.display());
        }
    }
    println!("  gaps       {}", gap_line(&summary.gaps));
    if let Some(fetched) = &summary.fetched {
        println!(
            "  fetched    {} bars from {}: {} added, {} replaced, {} unchanged",
            fetched.received, fetched.from, fetched.added, fetched.replaced, fetched.unchanged
        );
    }
    println!("  operation  {}", operation.id);
}

fn show(
    store: &LocalStore,
    symbol: &Symbol,
    timeframe: Timeframe,
    last: usize,
    json: bool,
) -> anyhow::Result<u8> {
    let bars = store.read(symbol, timeframe)?;
    let path = store.path(symbol, timeframe);
    if json {
        let newest = &bars[bars.len().saturating_sub(last)..];
        println!(
            "{}",
            serde_json::json!({
                "symbol": symbol,
                "timeframe": timeframe,
                "path": path,
                "bars": bars.len(),
                "first": bars.first().map(|bar| bar.timestamp),
                "last": bars.last().map(|bar| bar.timestamp),
                "gaps": market_data::find_gaps(&bars, timeframe),
                "last_bars": newest,
            })
        );
        return Ok(0);
    }
    print!("{}", show_text(symbol, timeframe, &path, &bars, last));
    Ok(0)
}

/// What `trdr data show` prints: the series' file, size, range and gaps (the
/// first ten holes), then its `last` newest bars.
fn show_text(
    symbol: &Symbol,
    timeframe: Timeframe,
    path: &Path,
    bars: &[Bar],
    last: usize,
) -> String {
    let gaps = market_data::find_gaps(bars, timeframe);
    let mut lines = vec![
        format!("{symbol} {timeframe}  {}", path.display()),
        format!("  bars   {}", bars.len()),
        format!(
            "  range  {}",
            range(
                bars.first().map(|b| b.timestamp),
                bars.last().map(|b| b.timestamp)
            )
        ),
        format!("  gaps   {}", gap_line(&gaps)),
    ];
    lines.extend(
        gaps.gaps
            .iter()
            .filter(|gap| gap.kind == market_data::GapKind::Hole)
            .take(10)
            .map(|gap| {
                format!(
                    "         hole: {} missing between {} and {}",
                    counted(gap.missing_bars as usize, "bar"),
                    gap.from.format("%Y-%m-%d %H:%M"),
                    gap.to.format("%Y-%m-%d %H:%M")
                )
            }),
    );
    let newest = &bars[bars.len().saturating_sub(last)..];
    if !newest.is_empty() {
        lines.push(String::new());
        lines.extend(bar_lines(newest));
    }
    lines.push(String::new());
    lines.join("\n")
}

/// The bars as a table, each column's numbers written with as many decimals
/// as its most precise value needs (prices share one count), so that the
/// decimal points line up.
fn bar_lines(bars: &[Bar]) -> Vec<String> {
    let price = decimals(
        bars.iter()
            .flat_map(|bar| [bar.open, bar.high, bar.low, bar.close]),
    );
    let volume = decimals(bars.iter().map(|bar| bar.volume));
    let mut lines = vec![format!(
        "{:<20} {:>14} {:>14} {:>14} {:>14} {:>16}",
        "timestamp", "open", "high", "low", "close", "volume"
    )];
    lines.extend(bars.iter().map(|bar| {
        format!(
            "{:<20} {:>14.price$} {:>14.price$} {:>14.price$} {:>14.price$} {:>16.volume$}",
            bar.timestamp.format("%Y-%m-%d %H:%M").to_string(),
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume
        )
    }));
    lines
}

/// The most decimals any of `values` needs, at most 8; float noise (the
/// `…0000004` of a sum) does not count.
fn decimals(values: impl Iterator<Item = f64>) -> usize {
    let needed = |value: f64| {
        (0..8)
            .find(|&places| {
                let written: f64 = format!("{value:.places$}").parse().unwrap_or(f64::NAN);
                (written - value).abs() <= value.abs() * 1e-12
            })
            .unwrap_or(8)
    };
    values.map(needed).max().unwrap_or(0)
}

fn list(store: &LocalStore, json: bool) -> anyhow::Result<u8> {
    let series = store.list()?;
    if json {
        println!("{}", serde_json::to_string(&series)?);
        return Ok(0);
    }
    if series.is_empty() {
        println!("No series in {}", store.dir().display());
        return Ok(0);
    }
    println!(
        "{:<12} {:<9} {:>8}  {:<17}  {:<17}",
        "symbol", "timeframe", "bars", "first", "last"
    );
    for info in &series {
        println!(
            "{:<12} {:<9} {:>8}  {:<17}  {:<17}",
            info.symbol.as_str(),
            info.timeframe.as_str(),
            info.bars,
            info.first.format("%Y-%m-%d %H:%M"),
            info.last.format("%Y-%m-%d %H:%M")
        );
    }
    Ok(0)
}

fn import(store: &LocalStore, args: &ImportArgs, json: bool) -> anyhow::Result<u8> {
    let (file, symbol, timeframe) = (&args.file, &args.symbol, args.timeframe);
    let imported = match read_import_file(file, &args.options()) {
        Ok(imported) => imported,
        Err(err @ DataError::UnknownLayout { .. }) => anyhow::bail!("{err}; {MAPPING_HINT}"),
        Err(err) => return Err(err.into()),
    };
    let incoming = imported.bars;
    let existing = if store.exists(symbol, timeframe) {
        store.read(symbol, timeframe)?
    } else {
        Vec::new()
    };
    let (merged, stats) = merge_bars(existing, incoming);
    let path = store.write(symbol, timeframe, &merged)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "symbol": symbol,
                "timeframe": timeframe,
                "path": path,
                "read_as": imported.columns,
                "merge": stats,
            })
        );
    } else {
        println!(
            "Imported {} into {symbol} {timeframe}: {} added, {} replaced, {} unchanged; {} bars in {}",
            file.display(),
            stats.added,
            stats.replaced,
            stats.unchanged,
            stats.total,
            path.display()
        );
        println!("  read as  {}", imported.columns);
    }
    Ok(0)
}

fn gap_line(gaps: &GapReport) -> String {
    format!(
        "{}, {}, {} ({})",
        counted(gaps.weekend, "weekend"),
        counted(gaps.closures, "closure"),
        counted(gaps.holes, "hole"),
        counted(gaps.missing_bars as usize, "missing bar"),
    )
}

fn counted(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn range(first: Option<DateTime<Utc>>, last: Option<DateTime<Utc>>) -> String {
    match (first, last) {
        (Some(first), Some(last)) => format!(
            "{} to {} UTC",
            first.format("%Y-%m-%d %H:%M"),
            last.format("%Y-%m-%d %H:%M")
        ),
        _ => "empty".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use expect_test::expect;

    use super::*;

    /// A bar at `hour` UTC on 2026-11-`day`.
    fn bar(day: u32, hour: u32, [open, high, low, close]: [f64; 4], volume: f64) -> Bar {
        Bar {
            timestamp: Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap(),
            open,
            high,
            low,
            close,
            volume,
        }
    }

    /// EURUSD 1h over a weekend (Friday 20:00 to Sunday 22:00) with a
    /// two-bar hole on Monday morning.
    fn series() -> Vec<Bar> {
        vec![
            bar(27, 18, [1.05236, 1.05253, 1.05221, 1.05227], 1435.5),
            bar(27, 19, [1.05227, 1.05426, 1.05226, 1.05282], 2531.25),
            bar(27, 20, [1.05282, 1.0531, 1.0527, 1.053], 980.0),
            bar(29, 22, [1.0531, 1.05344, 1.05299, 1.0533], 312.0),
            bar(29, 23, [1.0533, 1.0541, 1.0532, 1.054], 1204.75),
            bar(30, 0, [1.054, 1.05412, 1.05361, 1.05368], 1877.0),
            bar(30, 1, [1.05368, 1.05371, 1.0529, 1.05301], 2210.5),
            bar(30, 4, [1.053, 1.0533, 1.05281, 1.05322], 1650.0),
            bar(30, 5, [1.05322, 1.054, 1.05318, 1.05391], 1799.25),
        ]
    }

    #[test]
    fn show_gives_the_series_range_gaps_holes_and_newest_bars() {
        let symbol: Symbol = "EURUSD".parse().unwrap();
        let path = LocalStore::new("data").path(&symbol, Timeframe::H1);
        expect![[r#"
            EURUSD 1h  data/EURUSD_1h.csv
              bars   9
              range  2026-11-27 18:00 to 2026-11-30 05:00 UTC
              gaps   1 weekend, 0 closures, 1 hole (51 missing bars)
                     hole: 2 bars missing between 2026-11-30 01:00 and 2026-11-30 04:00

            timestamp                      open           high            low          close           volume
            2026-11-29 23:00            1.05330        1.05410        1.05320        1.05400          1204.75
            2026-11-30 00:00            1.05400        1.05412        1.05361        1.05368          1877.00
            2026-11-30 01:00            1.05368        1.05371        1.05290        1.05301          2210.50
            2026-11-30 04:00            1.05300        1.05330        1.05281        1.05322          1650.00
            2026-11-30 05:00            1.05322        1.05400        1.05318        1.05391          1799.25
        "#]].assert_eq(&show_text(&symbol, Timeframe::H1, &path, &series(), 5));
    }

    #[test]
    fn bar_columns_have_the_decimals_their_values_need_not_their_float_noise() {
        assert_eq!(decimals([1.05, 1.05412, 2.0].into_iter()), 5);
        assert_eq!(decimals([0.1 + 0.2, 1.5].into_iter()), 1);
        assert_eq!(decimals([980.0, 1877.0].into_iter()), 0);
        assert_eq!(decimals([0.000_000_012_345].into_iter()), 8);
    }

    #[test]
    fn show_of_an_empty_series_says_so() {
        let symbol: Symbol = "EURUSD".parse().unwrap();
        let path = LocalStore::new("data").path(&symbol, Timeframe::H1);
        expect![[r#"
            EURUSD 1h  data/EURUSD_1h.csv
              bars   0
              range  empty
              gaps   0 weekends, 0 closures, 0 holes (0 missing bars)
        "#]]
        .assert_eq(&show_text(&symbol, Timeframe::H1, &path, &[], 5));
    }
}
