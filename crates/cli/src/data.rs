//! `trdr data`: load (as an operation, with progress), show, list and import series.

use std::path::PathBuf;
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
    report_outcome(&finished, global.json, |result| {
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
    let gaps = market_data::find_gaps(&bars, timeframe);
    let newest = &bars[bars.len().saturating_sub(last)..];
    if json {
        println!(
            "{}",
            serde_json::json!({
                "symbol": symbol,
                "timeframe": timeframe,
                "path": store.path(symbol, timeframe),
                "bars": bars.len(),
                "first": bars.first().map(|bar| bar.timestamp),
                "last": bars.last().map(|bar| bar.timestamp),
                "gaps": gaps,
                "last_bars": newest,
            })
        );
        return Ok(0);
    }
    println!(
        "{symbol} {timeframe}  {}",
        store.path(symbol, timeframe).display()
    );
    println!("  bars   {}", bars.len());
    println!(
        "  range  {}",
        range(
            bars.first().map(|b| b.timestamp),
            bars.last().map(|b| b.timestamp)
        )
    );
    println!("  gaps   {}", gap_line(&gaps));
    for gap in gaps
        .gaps
        .iter()
        .filter(|gap| gap.kind == market_data::GapKind::Hole)
        .take(10)
    {
        println!(
            "         hole: {} bars missing between {} and {}",
            gap.missing_bars, gap.from, gap.to
        );
    }
    if !newest.is_empty() {
        println!();
        print_bars(newest);
    }
    Ok(0)
}

fn print_bars(bars: &[Bar]) {
    println!(
        "{:<20} {:>14} {:>14} {:>14} {:>14} {:>16}",
        "timestamp", "open", "high", "low", "close", "volume"
    );
    for bar in bars {
        println!(
            "{:<20} {:>14} {:>14} {:>14} {:>14} {:>16}",
            bar.timestamp.format("%Y-%m-%d %H:%M"),
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume
        );
    }
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
