//! The importer on whole files: the exported shapes it recognises, the
//! mapping flags, and its errors.

use expect_test::{Expect, expect};

use super::*;

/// Imports `content` from a file named `data.csv`; errors come back as
/// text with the temporary directory removed.
fn import(content: &str) -> Result<Vec<Bar>, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    std::fs::write(&path, content).unwrap();
    read_import_file(&path, &ImportOptions::default())
        .map(|imported| imported.bars)
        .map_err(|err| {
            err.to_string()
                .replace(&path.display().to_string(), "data.csv")
        })
}

fn render(bars: &[Bar]) -> String {
    bars.iter()
        .map(|b| {
            let at = b.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            format!(
                "{at} {} {} {} {} {}\n",
                b.open, b.high, b.low, b.close, b.volume
            )
        })
        .collect()
}

fn check(content: &str, expected: Expect) {
    match import(content) {
        Ok(bars) => expected.assert_eq(&render(&bars)),
        Err(err) => panic!("import failed: {err}"),
    }
}

fn check_err_with(content: &str, options: &ImportOptions, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    std::fs::write(&path, content).unwrap();
    match read_import_file(&path, options) {
        Ok(imported) => panic!("expected an error, got:\n{}", render(&imported.bars)),
        Err(err) => assert_eq!(
            err.to_string()
                .replace(&path.display().to_string(), "data.csv"),
            expected
        ),
    }
}

fn check_err(content: &str, expected: &str) {
    match import(content) {
        Ok(bars) => panic!("expected an error, got:\n{}", render(&bars)),
        Err(err) => assert_eq!(err, expected),
    }
}

/// Imports `content` with `options` and checks the row count, the first
/// and last bar and what was read from where.
fn check_shape(
    content: &str,
    options: &ImportOptions,
    rows: usize,
    first: &str,
    last: &str,
    columns: Expect,
) {
    columns.assert_eq(&import_shape(content, options, rows, first, last));
}

/// As [`check_shape`], returning what was read from where.
fn import_shape(
    content: &str,
    options: &ImportOptions,
    rows: usize,
    first: &str,
    last: &str,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    std::fs::write(&path, content).unwrap();
    let imported =
        read_import_file(&path, options).unwrap_or_else(|err| panic!("import failed: {err}"));
    let shown = render(&imported.bars);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), rows, "{shown}");
    assert_eq!(lines.first().copied(), Some(first), "{shown}");
    assert_eq!(lines.last().copied(), Some(last), "{shown}");
    imported.columns
}

fn mapping(flags: &[(&str, &str)]) -> ImportOptions {
    let mut options = ImportOptions::default();
    for &(flag, value) in flags {
        match flag {
            "--timestamp-column" => options.timestamp = Some(value.parse().unwrap()),
            "--columns" => options.columns = value.parse().unwrap(),
            "--time-format" => options.time_format = value.parse().unwrap(),
            "--timezone" => options.timezone = value.parse().unwrap(),
            "--adjusted" => options.adjusted = true,
            other => panic!("unknown flag {other}"),
        }
    }
    options
}

#[test]
fn pandas_nameless_index_daily() {
    check_shape(
        ",Open,High,Low,Close,Volume\n\
         2024-01-02,187.15,188.44,183.89,185.64,82488700\n\
         2024-01-03,184.22,185.88,183.43,184.25,58414500\n\
         2024-01-04,182.15,183.09,180.88,181.91,71983600\n",
        &ImportOptions::default(),
        3,
        "2024-01-02T00:00:00Z 187.15 188.44 183.89 185.64 82488700",
        "2024-01-04T00:00:00Z 182.15 183.09 180.88 181.91 71983600",
        expect![
            "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume Volume"
        ],
    );
}

#[test]
fn pandas_nameless_index_intraday_with_and_without_offset() {
    let naive = ",open,high,low,close,volume\n\
         2024-01-02 09:30:00,187.15,187.4,186.9,187.2,1200\n\
         2024-01-02 09:31:00,187.2,187.5,187.1,187.45,800\n";
    check_shape(
        naive,
        &ImportOptions::default(),
        2,
        "2024-01-02T09:30:00Z 187.15 187.4 186.9 187.2 1200",
        "2024-01-02T09:31:00Z 187.2 187.5 187.1 187.45 800",
        expect![
            "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"
        ],
    );
    // The same file saved from a frame whose index is in New York time.
    check_shape(
        &naive.replace(":00,", ":00-05:00,"),
        &ImportOptions::default(),
        2,
        "2024-01-02T14:30:00Z 187.15 187.4 186.9 187.2 1200",
        "2024-01-02T14:31:00Z 187.2 187.5 187.1 187.45 800",
        expect![
            "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"
        ],
    );
    check_shape(
        ",Open,High,Low,Close\n\
         2024-01-02 14:30:00.250000+00:00,1,2,0.5,1.5\n\
         2024-01-02 15:30:00+00:00,1.5,2,1,1.25\n\
         2024-01-02 16:30:00+00:00,1.25,2,1,1.5\n",
        &ImportOptions::default(),
        3,
        "2024-01-02T14:30:00.250Z 1 2 0.5 1.5 0",
        "2024-01-02T16:30:00Z 1.25 2 1 1.5 0",
        expect![
            "pandas to_csv, unnamed index; time #1 (no name) (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume none (0)"
        ],
    );
}

#[test]
fn pandas_named_index() {
    for name in ["Date", "Datetime", "timestamp"] {
        let columns = import_shape(
            &format!(
                "{name},Open,High,Low,Close,Volume\n\
                 2024-01-02 09:30:00-05:00,187.15,187.4,186.9,187.2,1200\n\
                 2024-01-02 10:30:00-05:00,187.2,187.5,187.1,187.45,800\n"
            ),
            &ImportOptions::default(),
            2,
            "2024-01-02T14:30:00Z 187.15 187.4 186.9 187.2 1200",
            "2024-01-02T15:30:00Z 187.2 187.5 187.1 187.45 800",
        );
        assert_eq!(
            columns,
            format!(
                "header; time {name} (recognised, UTC unless the text gives a zone), \
                 open Open, high High, low Low, close Close, volume Volume"
            )
        );
    }
}

#[test]
fn yfinance_to_csv_with_price_and_ticker_rows() {
    check_shape(
        "Price,Close,High,Low,Open,Volume\n\
         Ticker,AAPL,AAPL,AAPL,AAPL,AAPL\n\
         Date,,,,,\n\
         2024-01-02,184.73,187.52,182.99,186.03,82488700\n\
         2024-01-03,183.35,184.77,182.35,183.12,58414500\n",
        &ImportOptions::default(),
        2,
        "2024-01-02T00:00:00Z 186.03 187.52 182.99 184.73 82488700",
        "2024-01-03T00:00:00Z 183.12 184.77 182.35 183.35 58414500",
        expect![
            "pandas to_csv, index named in a row of its own; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume Volume"
        ],
    );
}

#[test]
fn metatrader_5_tab_separated_with_date_and_time() {
    check_shape(
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n\
         2024.01.02\t00:00:00\t1.10427\t1.10481\t1.10392\t1.10455\t1320\t0\t5\n\
         2024.01.02\t01:00:00\t1.10455\t1.10502\t1.10420\t1.10478\t1102\t0\t4\n\
         2024.01.02\t02:00:00\t1.10478\t1.10533\t1.10461\t1.10512\t987\t0\t4\n",
        &ImportOptions::default(),
        3,
        "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 0",
        "2024-01-02T02:00:00Z 1.10478 1.10533 1.10461 1.10512 0",
        expect![
            "header; time <DATE> + <TIME> (recognised, UTC unless the text gives a zone), open <OPEN>, high <HIGH>, low <LOW>, close <CLOSE>, volume <VOL>"
        ],
    );
    // Tick volume instead of the (forex: always 0) real volume.
    check_shape(
        "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n\
         2024.01.02\t1.10427\t1.10481\t1.10392\t1.10455\t1320\t0\t5\n\
         2024.01.03\t1.10455\t1.10502\t1.10420\t1.10478\t1102\t0\t4\n",
        &mapping(&[("--columns", "volume=TICKVOL")]),
        2,
        "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 1320",
        "2024-01-03T00:00:00Z 1.10455 1.10502 1.1042 1.10478 1102",
        expect![
            "columns as mapped; time <DATE> (recognised, UTC unless the text gives a zone), open <OPEN>, high <HIGH>, low <LOW>, close <CLOSE>, volume <TICKVOL>"
        ],
    );
}

#[test]
fn metatrader_4_history_without_header() {
    check_shape(
        "2024.01.02,00:00,1.10427,1.10481,1.10392,1.10455,1320\n\
         2024.01.02,00:01,1.10455,1.10502,1.10420,1.10478,1102\n\
         2024.01.02,00:02,1.10478,1.10533,1.10461,1.10512,987\n\
         2024.01.02,00:03,1.10512,1.10540,1.10490,1.10501,1010\n",
        &ImportOptions::default(),
        4,
        "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 1320",
        "2024-01-02T00:03:00Z 1.10512 1.1054 1.1049 1.10501 1010",
        expect![[
            r#"MetaTrader 4 history (no header); time date + time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"#
        ]],
    );
}

#[test]
fn binance_klines_without_header() {
    check_shape(
        "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108,1704070799999,53957248.99,47134,682.57581,28957416.82,0\n\
         1704070800000,42475.23,42775.00,42431.65,42613.56,1196.37856,1704074399999,50984893.01,44226,580.91136,24751770.02,0\n\
         1704074400000,42613.57,42638.41,42500.00,42581.10,685.21154,1704077999999,29172803.78,30009,291.60075,12415434.64,0\n",
        &ImportOptions::default(),
        3,
        "2024-01-01T00:00:00Z 42283.58 42554.57 42261.02 42475.23 1271.68108",
        "2024-01-01T02:00:00Z 42613.57 42638.41 42500 42581.1 685.21154",
        expect![[
            r#"Binance klines (no header); time open time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"#
        ]],
    );
    // Spot files from 2025 on give the times in microseconds.
    check_shape(
        "1735689600000000,93576.00,94509.42,93489.03,94401.14,755.99010,1735693199999999,71068958.82,111260,397.50000,37369003.11,0\n",
        &ImportOptions::default(),
        1,
        "2025-01-01T00:00:00Z 93576 94509.42 93489.03 94401.14 755.9901",
        "2025-01-01T00:00:00Z 93576 94509.42 93489.03 94401.14 755.9901",
        expect![[
            r#"Binance klines (no header); time open time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume volume"#
        ]],
    );
}

#[test]
fn tradingview_chart_export() {
    check_shape(
        "time,open,high,low,close,Volume,Volume MA\n\
         1704186000,187.15,188.44,183.89,185.64,82488700,\n\
         1704272400,184.22,185.88,183.43,184.25,58414500,70451600\n\
         1704358800,182.15,183.09,180.88,181.91,71983600,70962266.67\n",
        &ImportOptions::default(),
        3,
        "2024-01-02T09:00:00Z 187.15 188.44 183.89 185.64 82488700",
        "2024-01-04T09:00:00Z 182.15 183.09 180.88 181.91 71983600",
        expect![[
            r#"header; time time (recognised, UTC unless the text gives a zone), open open, high high, low low, close close, volume Volume"#
        ]],
    );
    // Without volume, and before 1973 (short epochs need the unit given).
    check_shape(
        "time,open,high,low,close\n-86400,91.1,92.0,90.5,91.6\n0,92.06,93.54,91.79,93.0\n",
        &mapping(&[("--time-format", "epoch-s")]),
        2,
        "1969-12-31T00:00:00Z 91.1 92 90.5 91.6 0",
        "1970-01-01T00:00:00Z 92.06 93.54 91.79 93 0",
        expect![[
            r#"header; time time (epoch-s), open open, high high, low low, close close, volume none (0)"#
        ]],
    );
}

#[test]
fn stooq_daily_and_bulk() {
    check_shape(
        "Date,Open,High,Low,Close,Volume\n\
         2024-01-02,4745.2,4754.33,4722.67,4742.83,3743050000\n\
         2024-01-03,4725.07,4729.29,4699.71,4704.81,3950760000\n",
        &ImportOptions::default(),
        2,
        "2024-01-02T00:00:00Z 4745.2 4754.33 4722.67 4742.83 3743050000",
        "2024-01-03T00:00:00Z 4725.07 4729.29 4699.71 4704.81 3950760000",
        expect![[
            r#"header; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close, volume Volume"#
        ]],
    );
    check_shape(
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n\
         EURUSD,60,20240102,000000,1.10427,1.10481,1.10392,1.10455,0,0\n\
         EURUSD,60,20240102,010000,1.10455,1.10502,1.1042,1.10478,0,0\n",
        &ImportOptions::default(),
        2,
        "2024-01-02T00:00:00Z 1.10427 1.10481 1.10392 1.10455 0",
        "2024-01-02T01:00:00Z 1.10455 1.10502 1.1042 1.10478 0",
        expect![
            "header; time <DATE> + <TIME> (recognised, UTC unless the text gives a zone), open <OPEN>, high <HIGH>, low <LOW>, close <CLOSE>, volume <VOL>"
        ],
    );
}

#[test]
fn yahoo_close_by_default_adj_close_with_adjusted() {
    let yahoo = "Date,Open,High,Low,Close,Adj Close,Volume\n\
                 2020-08-28,504.05,505.77,498.31,499.23,124.81,46907500\n\
                 2020-08-31,127.58,131.0,126.0,129.04,129.04,225702700\n";
    check_shape(
        yahoo,
        &ImportOptions::default(),
        2,
        "2020-08-28T00:00:00Z 504.05 505.77 498.31 499.23 46907500",
        "2020-08-31T00:00:00Z 127.58 131 126 129.04 225702700",
        expect![[
            r#"header; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Close (Adj Close not used; --adjusted uses it), volume Volume"#
        ]],
    );
    // The split of 2020-08-31 (4:1) adjusted away: every price scaled.
    check_shape(
        yahoo,
        &mapping(&[("--adjusted", "")]),
        2,
        "2020-08-28T00:00:00Z 126.01502413717124 126.44503275043566 124.57999539290508 124.81 46907500",
        "2020-08-31T00:00:00Z 127.58 131 126 129.04 225702700",
        expect![[
            r#"header; time Date (recognised, UTC unless the text gives a zone), open Open, high High, low Low, close Adj Close (adjusted: open, high and low scaled by Adj Close / Close), volume Volume"#
        ]],
    );
    check_err_with(
        "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n",
        &mapping(&[("--adjusted", "")]),
        "data.csv:1: --adjusted needs an adjusted close column (Adj Close); none was found \
         (name it with --columns adj_close=NAME)",
    );
}

#[test]
fn an_unknown_layout_is_named_and_the_flags_import_it() {
    let file = "when;first;max;min;last;qty\n\
                02/01/2024 09:00;1,1043;1,1048;1,1039;1,1045;12\n\
                02/01/2024 10:00;1,1045;1,1050;1,1042;1,1047;9\n";
    check_err_with(
        file,
        &ImportOptions::default(),
        "data.csv:1: missing columns timestamp (or date, time, datetime), open, high, low, \
         close; header is: when, first, max, min, last, qty",
    );
    check_shape(
        file,
        &mapping(&[
            ("--timestamp-column", "when"),
            (
                "--columns",
                "open=first,high=max,low=min,close=last,volume=qty",
            ),
            ("--time-format", "%d/%m/%Y %H:%M"),
            ("--timezone", "+01:00"),
        ]),
        2,
        "2024-01-02T08:00:00Z 1.1043 1.1048 1.1039 1.1045 12",
        "2024-01-02T09:00:00Z 1.1045 1.105 1.1042 1.1047 9",
        expect![[
            r#"columns as mapped; time when (%d/%m/%Y %H:%M, at +01:00 unless the text gives a zone), open first, high max, low min, close last, volume qty"#
        ]],
    );
    // Without a header, columns are given by position.
    let headerless = "02.01.2024;0900;1,1043;1,1048;1,1039;1,1045\n\
                      02.01.2024;1000;1,1045;1,1050;1,1042;1,1047\n";
    check_err_with(
        headerless,
        &ImportOptions::default(),
        "data.csv:1: the first line is a row, not a header, and its 6 columns match no \
         export without a header (Binance klines: 12 columns, open time first; MetaTrader 4: \
         date, time, open, high, low, close, volume); first line: 02.01.2024, 0900, 1,1043, \
         1,1048, 1,1039, 1,1045",
    );
    check_shape(
        headerless,
        &mapping(&[
            ("--timestamp-column", "1,2"),
            ("--columns", "open=3,high=4,low=5,close=6"),
            ("--time-format", "%d.%m.%Y %H%M"),
        ]),
        2,
        "2024-01-02T09:00:00Z 1.1043 1.1048 1.1039 1.1045 0",
        "2024-01-02T10:00:00Z 1.1045 1.105 1.1042 1.1047 0",
        expect![[
            r#"columns as mapped; time #1 + #2 (%d.%m.%Y %H%M, UTC unless the text gives a zone), open #3, high #4, low #5, close #6, volume none (0)"#
        ]],
    );
}

#[test]
fn our_own_format() {
    check(
        "timestamp,open,high,low,close,volume\n\
         2017-01-01T22:00:00Z,1.05236,1.05253,1.05221,1.05227,143539993.3\n\
         2017-01-01T23:00:00Z,1.05227,1.05283,1.05227,1.05265,1.00532E+11\n",
        expect![[r#"
            2017-01-01T22:00:00Z 1.05236 1.05253 1.05221 1.05227 143539993.3
            2017-01-01T23:00:00Z 1.05227 1.05283 1.05227 1.05265 100532000000
        "#]],
    );
}

#[test]
fn yahoo_with_us_dates_and_adj_close() {
    check(
        "Date,Open,High,Low,Close,Adj Close,Volume\r\n\
         1/4/1999,1229.23,1248.81,1219.1,1228.1,1228.1,877000000\r\n\
         12/31/2018,2498.94,2509.24,2482.82,2506.85,2506.85,3442870000\r\n\
         1/5/1999,1228.1,1246.11,1228.1,1244.78,1244.78,775000000\r\n",
        expect![[r#"
            1999-01-04T00:00:00Z 1229.23 1248.81 1219.1 1228.1 877000000
            1999-01-05T00:00:00Z 1228.1 1246.11 1228.1 1244.78 775000000
            2018-12-31T00:00:00Z 2498.94 2509.24 2482.82 2506.85 3442870000
        "#]],
    );
}

#[test]
fn dukascopy_day_first_with_milliseconds() {
    check(
        "Time,Open,High,Low,Close,Volume\n\
         01.01.2017 22:00:00.000,1.05236,1.05253,1.05221,1.05227,143539993.3\n\
         02.01.2017 00:00:00.000,1.05227,1.05283,1.05227,1.05265,1.63119E+11\n",
        expect![[r#"
            2017-01-01T22:00:00Z 1.05236 1.05253 1.05221 1.05227 143539993.3
            2017-01-02T00:00:00Z 1.05227 1.05283 1.05227 1.05265 163119000000
        "#]],
    );
    // Dukascopy's other export names the column by zone and may add one.
    check(
        "Gmt time,Open,High,Low,Close,Volume\n01.01.2017 22:00:00.000,1,2,0.5,1.5,10\n",
        expect![[r#"
            2017-01-01T22:00:00Z 1 2 0.5 1.5 10
        "#]],
    );
    check(
        "Local time,Open,High,Low,Close,Volume\n02.01.2017 00:00:00.000 GMT+0200,1,2,0.5,1.5,10\n",
        expect![[r#"
            2017-01-01T22:00:00Z 1 2 0.5 1.5 10
        "#]],
    );
}

#[test]
fn cryptodatadownload_with_url_line_newest_first() {
    check(
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n\
         date,symbol,open,high,low,close,volume_btc,volume\n\
         2019-10-17 01-PM,BTCUSD,8000.5,8010,7990,8005,12.5,100062.5\n\
         2019-10-17 12-PM,BTCUSD,7990,8001,7985,8000.5,10,80000\n\
         2019-10-17 09-AM,BTCUSD,7980,7995,7970,7990,3.25,25967.5\n\
         2019-10-17 12-AM,BTCUSD,7950,7985,7940,7980,1,7980\n",
        // The USD `volume` column is used, not `volume_btc`.
        expect![[r#"
            2019-10-17T00:00:00Z 7950 7985 7940 7980 7980
            2019-10-17T09:00:00Z 7980 7995 7970 7990 25967.5
            2019-10-17T12:00:00Z 7990 8001 7985 8000.5 80000
            2019-10-17T13:00:00Z 8000.5 8010 7990 8005 100062.5
        "#]],
    );
    // Without a plain `volume`, the only `volume_*` column is used.
    check(
        "date,symbol,open,high,low,close,Volume BTC\n2019-10-17 09-AM,BTCUSD,1,2,0.5,1.5,3.25\n",
        expect![[r#"
            2019-10-17T09:00:00Z 1 2 0.5 1.5 3.25
        "#]],
    );
}

#[test]
fn epoch_seconds_and_milliseconds() {
    check(
        "timestamp,open,high,low,close,volume\n1483308000,1,2,0.5,1.5,10\n1483311600,1.5,2,1,1,20\n",
        expect![[r#"
            2017-01-01T22:00:00Z 1 2 0.5 1.5 10
            2017-01-01T23:00:00Z 1.5 2 1 1 20
        "#]],
    );
    // A Binance kline dump: `open_time` wins over `close_time`.
    check(
        "open_time,open,high,low,close,volume,close_time,quote_volume\n\
         1483311600000,1.5,2,1,1,20,1483315199999,30\n\
         1483308000000,1,2,0.5,1.5,10,1483311599999,15\n",
        expect![[r#"
            2017-01-01T22:00:00Z 1 2 0.5 1.5 10
            2017-01-01T23:00:00Z 1.5 2 1 1 20
        "#]],
    );
}

#[test]
fn semicolons_quotes_and_decimal_commas() {
    check(
        "\"Date\";\"Open\";\"High\";\"Low\";\"Close\";\"Volume\"\n\
         \"2017-01-02\";\"1,0523\";\"1,0530\";\"1,0510\";\"1,0525\";\"1200\"\n\
         2017-01-03;1.0525;1.0540;1.0500;1.0510;1e3\n",
        expect![[r#"
            2017-01-02T00:00:00Z 1.0523 1.053 1.051 1.0525 1200
            2017-01-03T00:00:00Z 1.0525 1.054 1.05 1.051 1000
        "#]],
    );
}

#[test]
fn separate_date_and_time_columns() {
    // A MetaTrader export: bracketed names, tabs, dotted dates.
    check(
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\n\
         2017.01.02\t00:00\t1.5\t2\t1\t1.75\t33\t0\n\
         2017.01.01\t23:00:00\t1\t2\t0.5\t1.5\t12\t7\n",
        expect![[r#"
            2017-01-01T23:00:00Z 1 2 0.5 1.5 7
            2017-01-02T00:00:00Z 1.5 2 1 1.75 0
        "#]],
    );
    check(
        " Date , Time ,Open,High,Low,Close\n1/3/2017, 9:30 PM ,1,2,0.5,1.5\n",
        expect![[r#"
            2017-01-03T21:30:00Z 1 2 0.5 1.5 0
        "#]],
    );
}

#[test]
fn iso_variants_and_header_spelling() {
    check(
        "' Timestamp ',\"OPEN\", High ,low,Close,Vol.,Ticker\n\
         2017-01-01T22:00:00+02:00,1,2,0.5,1.5,1,X\n\
         2017-01-01T21:00:00.000Z,1,2,0.5,1.5,2,X\n\
         2017-01-01 22:00:00,1,2,0.5,1.5,3,X\n\
         2017-01-01 23:00,1,2,0.5,1.5,4,X\n\
         2017/01/02,1,2,0.5,1.5,5,X\n\
         2017-01-03,1,2,0.5,1.5,6,X\n",
        expect![[r#"
            2017-01-01T20:00:00Z 1 2 0.5 1.5 1
            2017-01-01T21:00:00Z 1 2 0.5 1.5 2
            2017-01-01T22:00:00Z 1 2 0.5 1.5 3
            2017-01-01T23:00:00Z 1 2 0.5 1.5 4
            2017-01-02T00:00:00Z 1 2 0.5 1.5 5
            2017-01-03T00:00:00Z 1 2 0.5 1.5 6
        "#]],
    );
}

#[test]
fn short_names_blank_lines_and_no_volume() {
    check(
        "\u{feff}\n\nTime,O,H,L,C\n\n2017-01-01 10:00,1,2,0.5,1.5\n   \n2017-01-01 11:00,1.5,2,1,1\n\n",
        expect![[r#"
            2017-01-01T10:00:00Z 1 2 0.5 1.5 0
            2017-01-01T11:00:00Z 1.5 2 1 1 0
        "#]],
    );
}

#[test]
fn identical_duplicates_are_dropped() {
    check(
        "date,open,high,low,close,volume\n\
         2017-01-02,1,2,0.5,1.5,10\n\n\
         2017-01-01,1,2,0.5,1.5,10\n\
         2017-01-02,1,2,0.5,1.5,10\n",
        expect![[r#"
            2017-01-01T00:00:00Z 1 2 0.5 1.5 10
            2017-01-02T00:00:00Z 1 2 0.5 1.5 10
        "#]],
    );
}

#[test]
fn errors_name_file_line_column_and_text() {
    check_err("", "data.csv: the file is empty");
    check_err(" \n\n", "data.csv: the file is empty");
    check_err(
        "date,open,high,low,close\n",
        "data.csv: no rows after the header on line 1",
    );
    check_err(
        "Date,Open,High,Low,Adj Close,Volume\n1/4/1999,1,2,0.5,1.5,10\n",
        "data.csv:1: missing column close; header is: Date, Open, High, Low, Adj Close, Volume",
    );
    check_err(
        "when,open,max,low,close\n",
        "data.csv:1: missing columns timestamp (or date, time, datetime), high; header is: when, open, max, low, close",
    );
    // The header after a preamble line is the one reported.
    check_err(
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\ndate,open,high,low\n",
        "data.csv:2: missing column close; header is: date, open, high, low",
    );
    check_err(
        "2017-01-01,1,2,0.5,1.5\n2017-01-02,1,2,0.5,1.5\n",
        "data.csv:1: the first line is a row, not a header, and its 5 columns match no export \
         without a header (Binance klines: 12 columns, open time first; MetaTrader 4: date, \
         time, open, high, low, close, volume); first line: 2017-01-01, 1, 2, 0.5, 1.5",
    );
    check_err(
        "date,open,high,low,close,Close\n",
        r#"data.csv:1: column "close" appears more than once in the header"#,
    );
    check_err(
        "date,open,high,low,close,Volume BTC,Volume USD\n",
        r#"data.csv:1: several volume columns (Volume BTC, Volume USD) and none named "volume"; rename the one to import to "volume""#,
    );
    check_err(
        "Date,Open,High,Low,Close\n2017-01-01,1,2,0.5,1.5\n2017-13-01,1,2,0.5,1.5\n",
        r#"data.csv:3: cannot read timestamp "2017-13-01" in column "Date""#,
    );
    check_err(
        "Date,Time,Open,High,Low,Close\n2017-01-01,25:00,1,2,0.5,1.5\n",
        r#"data.csv:2: cannot read timestamp "2017-01-01 25:00" in columns "Date" and "Time""#,
    );
    check_err(
        "date,open,high,low,close,volume\n2017-01-01,1,2,0.5,1.5,1O0\n",
        r#"data.csv:2: cannot read number "1O0" in column "volume""#,
    );
    check_err(
        "date,open,high,low,close,volume\n2017-01-01,1,2,0.5,NaN,100\n",
        r#"data.csv:2: "NaN" in column "close" is not a finite number"#,
    );
    check_err(
        "date,open,high,low,close,volume\n2017-01-01,1,inf,0.5,1.5,100\n",
        r#"data.csv:2: "inf" in column "high" is not a finite number"#,
    );
    check_err(
        "date,open,high,low,close,volume\n2017-01-01,1,2,,1.5,100\n",
        r#"data.csv:2: empty value in column "low""#,
    );
    // A comma is never a decimal point in a comma-separated file.
    check_err(
        "date,open,high,low,close,volume\n2017-01-01,\"1,5\",2,0.5,1.5,100\n",
        r#"data.csv:2: cannot read number "1,5" in column "open""#,
    );
    // A row of a date and nothing else is a row, not more header.
    check_err(
        "Date,Open,High,Low,Close\n2017-01-01,,,,\n",
        r#"data.csv:2: empty value in column "Open""#,
    );
    check_err(
        "date,open,high,low,close,volume,symbol\n2017-01-01,1,2,0.5\n",
        "data.csv:2: the row has 4 fields, the header has 7",
    );
    check_err(
        "date,open,high,low,close\n\
         2017-01-02,1,2,0.5,1.5\n\
         2017-01-01,1,2,0.5,1.5\n\
         2017-01-02,1,2,0.5,1.25\n",
        "data.csv:4: timestamp 2017-01-02T00:00:00Z appears again with different values (first on line 2)",
    );
    check_err(
        "date,open,high,low,close\n2017-01-01,1,2,0.5,1.5\n2017-01-02,\u{e9}1,2,0.5,1.5\n",
        "data.csv:3: cannot read number \"\u{e9}1\" in column \"open\"",
    );
}

#[test]
fn errors_for_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.csv");
    std::fs::write(
        &path,
        b"date,open,high,low,close\n2017-01-01,1,2,0.5,1.5 \xe9\n",
    )
    .unwrap();
    let err = read_import_file(&path, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(err, format!("{}:2: the text is not UTF-8", path.display()));

    let missing = dir.path().join("missing.csv");
    let err = read_import_file(&missing, &ImportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, DataError::Io { path, .. } if *path == missing),
        "{err:?}"
    );
}

/// Valid files mutated at random (tokens inserted, bytes replaced, ranges
/// cut): the parser must return, never panic, and whatever it accepts must
/// be sorted, unique and finite.
#[test]
fn never_panics_on_mangled_input() {
    const BASES: &[&str] = &[
        "timestamp,open,high,low,close,volume\n2017-01-01T22:00:00Z,1,2,0.5,1.5,10\n2017-01-01T23:00:00+02:00,1,2,0.5,1.5,1E+3\n",
        "Timestamps are UTC timezone,x\ndate,symbol,open,high,low,close,volume_btc,volume\n2019-10-17 09-AM,B,1,2,0.5,1.5,3,4\n",
        "\"Date\";\"Time\";\"Open\";\"High\";\"Low\";\"Close\"\n02.01.2017;22:00:00.000;1,5;2;0,5;1\n1/2/2017;9 PM;1;2;0.5;1\n",
        "open_time\topen\thigh\tlow\tclose\tvolume\n1483308000000\t1\t2\t0.5\t1.5\t10\n1483311600\t1\t2\t0.5\t1.5\t10\n",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound.max(1) as u64) as usize
    };
    let path = Path::new("fuzz.csv");
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut bytes = BASES[next(BASES.len())].as_bytes().to_vec();
        for _ in 0..next(4) {
            let at = next(bytes.len() + 1);
            match next(3) {
                0 => {
                    let tokens = crate::fuzzing::IMPORT_TOKENS;
                    let token = tokens[next(tokens.len())].as_bytes();
                    bytes.splice(at..at, token.iter().copied());
                }
                1 => bytes.insert(at, next(256) as u8),
                _ => {
                    let end = (at + next(8)).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
        }
        if let Ok(Imported { bars, .. }) = parse_import(path, &bytes, &ImportOptions::default()) {
            accepted += 1;
            assert!(bars.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
            let finite = |b: &Bar| {
                [b.open, b.high, b.low, b.close, b.volume]
                    .iter()
                    .all(|v| v.is_finite())
            };
            assert!(bars.iter().all(finite));
        }
    }
    assert!(accepted > 1_000, "only {accepted} inputs were accepted");
}
