//! `trdr data …` end to end: load with progress, show, list, import, bad
//! input, and Ctrl-C cancelling a load.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use orchestrator_core::{ListFilter, OperationKind, OperationStatus, OperationsService};

use super::*;

#[test]
fn load_prints_progress_and_the_summary_of_a_sample_series() {
    let state = tempfile::tempdir().unwrap();
    let output = trdr(state.path())
        .args(["data", "load", "EURUSD", "1H", "--data-dir"])
        .arg(sample_data())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stdout = text(&output.stdout);
    // Not a terminal: plain progress lines, then the summary.
    assert!(
        stdout.starts_with("[  0%] Loading EURUSD [1h] (local)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Loaded EURUSD 1h: 6225 bars, 2017-01-01 22:00 to 2017-12-29 21:00 UTC"),
        "{stdout}"
    );
    assert!(
        stdout.contains("gaps       51 weekends, 1 closure, 0 holes"),
        "{stdout}"
    );

    // The operation was recorded in the embedded store.
    let operations = OperationsService::open_sqlite(state.path().join("operations.db")).unwrap();
    let page = operations.list(&ListFilter::default()).unwrap();
    assert_eq!(page.total, 1);
    let operation = &page.operations[0];
    assert_eq!(operation.kind, OperationKind::DataLoad);
    assert_eq!(operation.status, OperationStatus::Completed);
    assert_eq!(operation.result.as_ref().unwrap()["bars"], 6225);
}

#[test]
fn json_load_emits_ndjson_events_ending_with_the_result() {
    let state = tempfile::tempdir().unwrap();
    let output = trdr(state.path())
        .args([
            "data",
            "load",
            "IBM",
            "1d",
            "--json",
            "--start",
            "2010-01-01",
            "--data-dir",
        ])
        .arg(sample_data())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let events = json_events(&output);
    assert!(events.len() >= 2);
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["event"] == "progress")
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["status"], "completed");
    let result = &last["operation"]["result"];
    assert_eq!(result["first"], "2010-01-04T00:00:00Z");
    assert_eq!(result["last"], "2013-03-01T00:00:00Z");
    assert_eq!(last["progress"]["context"]["kind"], "data");
    assert_eq!(last["progress"]["context"]["symbol"], "IBM");
}

#[test]
fn a_missing_timeframe_is_resampled_from_a_lower_one() {
    let state = tempfile::tempdir().unwrap();
    let output = trdr(state.path())
        .args(["data", "load", "BTCUSD", "4h", "--data-dir"])
        .arg(sample_data())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("(resampled from 1h)"), "{stdout}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();

    let missing = trdr(state.path())
        .args(["data", "load", "NOPE", "1h", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_exit(&missing, 1);
    let expected_path = data.path().join("NOPE_1h.csv");
    assert!(
        text(&missing.stderr).contains(&format!("{} does not exist", expected_path.display())),
        "{}",
        text(&missing.stderr)
    );

    let escape = trdr(state.path())
        .args(["data", "show", "../etc", "1h"])
        .output()
        .unwrap();
    assert_exit(&escape, 2);
    assert!(
        text(&escape.stderr).contains("invalid symbol"),
        "{}",
        text(&escape.stderr)
    );

    let timeframe = trdr(state.path())
        .args(["data", "show", "EURUSD", "2h"])
        .output()
        .unwrap();
    assert_exit(&timeframe, 2);
    assert!(
        text(&timeframe.stderr).contains("unknown timeframe \"2h\""),
        "{}",
        text(&timeframe.stderr)
    );

    std::fs::write(
        data.path().join("BAD_1h.csv"),
        "timestamp,open,high,low,close,volume\n2017-01-01T00:00:00Z,1,0.5,0.9,1,10\n",
    )
    .unwrap();
    let invalid = trdr(state.path())
        .args(["data", "show", "BAD", "1h", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_exit(&invalid, 1);
    let stderr = text(&invalid.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", data.path().join("BAD_1h.csv").display())),
        "{stderr}"
    );
}

#[test]
fn list_show_and_import_work_on_a_store() {
    let state = tempfile::tempdir().unwrap();
    let listed = trdr(state.path())
        .args(["data", "list", "--data-dir"])
        .arg(sample_data())
        .output()
        .unwrap();
    assert_exit(&listed, 0);
    let stdout = text(&listed.stdout);
    for series in [
        "BTCUSD       1h",
        "EURUSD       1h",
        "IBM          1d",
        "SP500        1d",
    ] {
        assert!(stdout.contains(series), "{series} missing from:\n{stdout}");
    }

    let data = tempfile::tempdir().unwrap();
    let yahoo = data.path().join("aapl.csv");
    std::fs::write(
        &yahoo,
        "Date,Open,High,Low,Close,Adj Close,Volume\n\
         1/4/2021,133.52,133.61,126.76,129.41,127.0,143301900\n\
         1/5/2021,128.89,131.74,128.43,131.01,128.6,97664900\n",
    )
    .unwrap();
    let imported = trdr(state.path())
        .args(["data", "import"])
        .arg(&yahoo)
        .args(["--symbol", "AAPL", "--timeframe", "1d", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_exit(&imported, 0);
    assert!(
        text(&imported.stdout).contains("2 added, 0 replaced, 0 unchanged; 2 bars"),
        "{}",
        text(&imported.stdout)
    );

    let shown = trdr(state.path())
        .args(["data", "show", "AAPL", "1d", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_exit(&shown, 0);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["bars"], 2);
    assert_eq!(shown["last_bars"][1]["close"], 131.01);
}

#[test]
fn import_names_an_unknown_layout_and_the_mapping_flags_import_it() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("broker.csv");
    std::fs::write(
        &file,
        "when;first;max;min;last;qty\n\
         02/01/2024 09:00;1,1043;1,1048;1,1039;1,1045;12\n\
         02/01/2024 10:00;1,1045;1,1050;1,1042;1,1047;9\n",
    )
    .unwrap();
    let import = |flags: &[&str]| {
        trdr(state.path())
            .args(["data", "import"])
            .arg(&file)
            .args(["--symbol", "EURUSD", "--timeframe", "1h"])
            .args(flags)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap()
    };

    let refused = import(&[]);
    assert_exit(&refused, 1);
    let stderr = text(&refused.stderr);
    for part in [
        "broker.csv:1: missing columns timestamp (or date, time, datetime), open, high, low, close; \
         header is: when, first, max, min, last, qty; map the columns to import it: \
         --timestamp-column NAME (or DATE,TIME) --columns open=NAME,high=NAME,low=NAME,close=NAME",
        "--time-format FORMAT",
        "--timezone OFFSET",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from:\n{stderr}");
    }

    let imported = import(&[
        "--timestamp-column",
        "when",
        "--columns",
        "open=first,high=max,low=min,close=last,volume=qty",
        "--time-format",
        "%d/%m/%Y %H:%M",
        "--timezone",
        "-01:00",
    ]);
    assert_exit(&imported, 0);
    let stdout = text(&imported.stdout);
    assert!(
        stdout.contains("2 added, 0 replaced, 0 unchanged; 2 bars"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  read as  columns as mapped; time when (%d/%m/%Y %H:%M, at -01:00"),
        "{stdout}"
    );
    let shown = trdr(state.path())
        .args(["data", "show", "EURUSD", "1h", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_exit(&shown, 0);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["first"], "2024-01-02T10:00:00Z");
    assert_eq!(shown["last_bars"][1]["close"], 1.1047);

    let bad_flag = import(&["--time-format", "dd/mm/yyyy"]);
    assert_exit(&bad_flag, 2);
    assert!(
        text(&bad_flag.stderr).contains("not a time format"),
        "{}",
        text(&bad_flag.stderr)
    );
}

#[test]
fn import_adjusted_takes_the_adjusted_close() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let yahoo = data.path().join("aapl.csv");
    std::fs::write(
        &yahoo,
        "Date,Open,High,Low,Close,Adj Close,Volume\n\
         2020-08-28,504.05,505.77,498.31,499.23,124.81,46907500\n\
         2020-08-31,127.58,131.0,126.0,129.04,129.04,225702700\n",
    )
    .unwrap();
    let imported = trdr(state.path())
        .args(["data", "import"])
        .arg(&yahoo)
        .args([
            "--symbol",
            "AAPL",
            "--timeframe",
            "1d",
            "--adjusted",
            "--json",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert_exit(&imported, 0);
    let summary: serde_json::Value = serde_json::from_slice(&imported.stdout).unwrap();
    assert_eq!(
        summary["read_as"],
        "header; time Date (recognised, UTC unless the text gives a zone), open Open, high High, \
         low Low, close Adj Close (adjusted: open, high and low scaled by Adj Close / Close), \
         volume Volume"
    );
    let shown = trdr(state.path())
        .args(["data", "show", "AAPL", "1d", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["last_bars"][0]["close"], 124.81);
    assert_eq!(shown["last_bars"][1]["close"], 129.04);
}

/// Writes `bars` hourly bars in the store format.
fn write_large_series(path: &Path, bars: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(file, "timestamp,open,high,low,close,volume").unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2000-01-03T00:00:00Z").unwrap();
    for i in 0..bars {
        let at = start + chrono::Duration::hours(i as i64);
        let price = 100.0 + (i % 100) as f64 / 10.0;
        writeln!(
            file,
            "{},{price},{},{},{price},{}",
            at.format("%Y-%m-%dT%H:%M:%SZ"),
            price + 1.0,
            price - 1.0,
            i % 1000
        )
        .unwrap();
    }
    file.flush().unwrap();
}

#[test]
fn ctrl_c_cancels_a_load_and_exits_130() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let series = data.path().join("BIG_1h.csv");
    write_large_series(&series, 600_000);
    let before = std::fs::read(&series).unwrap();

    let mut child = trdr(state.path())
        .args([
            "data",
            "load",
            "BIG",
            "1h",
            "--segment-bars",
            "500",
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("Loading BIG [1h] (local)"), "{first}");

    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_or_hang(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert!(stderr.contains("Cancelled op_data_load_"), "{stderr}");

    let operations = OperationsService::open_sqlite(state.path().join("operations.db")).unwrap();
    let page = operations.list(&ListFilter::default()).unwrap();
    assert_eq!(page.operations[0].status, OperationStatus::Cancelled);
    let loaded = page.operations[0]
        .progress
        .items
        .map_or(0, |items| items.processed);
    assert!(
        loaded < 600_000,
        "the load ran to the end ({loaded} bars) instead of stopping"
    );
    assert_eq!(
        std::fs::read(&series).unwrap(),
        before,
        "the store file changed"
    );
}
