//! The store as its users see it: the shipped series, listing, paths, the
//! data directory, and writing then reading back.

use super::*;
use crate::validate::parse_timestamp;

pub(super) const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");

/// name, timeframe, rows, first bar, last bar (data/README.md).
pub(super) const SHIPPED_FILES: [(&str, Timeframe, usize, &str, &str); 4] = [
    (
        "BTCUSD",
        Timeframe::H1,
        20106,
        "2017-07-01T11:00:00Z",
        "2019-10-17T09:00:00Z",
    ),
    (
        "EURUSD",
        Timeframe::H1,
        6225,
        "2017-01-01T22:00:00Z",
        "2017-12-29T21:00:00Z",
    ),
    (
        "IBM",
        Timeframe::D1,
        3270,
        "2000-03-01T00:00:00Z",
        "2013-03-01T00:00:00Z",
    ),
    (
        "SP500",
        Timeframe::D1,
        5031,
        "1999-01-04T00:00:00Z",
        "2018-12-31T00:00:00Z",
    ),
];

pub(super) const HEADER: &str = "timestamp,open,high,low,close,volume\n";

pub(super) fn symbol(text: &str) -> Symbol {
    text.parse().unwrap()
}

pub(super) fn at(text: &str) -> DateTime<Utc> {
    parse_timestamp(text).unwrap()
}

pub(super) fn temp_store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    (dir, store)
}

pub(super) fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

pub(super) fn rows(count: usize) -> String {
    let mut text = HEADER.to_owned();
    for hour in 0..count {
        text.push_str(&format!(
            "2017-01-02T{hour:02}:00:00Z,1.5,2,1,1.25,{hour}\n"
        ));
    }
    text
}

#[test]
fn shipped_files_load_with_their_documented_rows_and_range() {
    let store = LocalStore::new(SHIPPED);
    for (name, timeframe, rows, first, last) in SHIPPED_FILES {
        let bars = store.read(&symbol(name), timeframe).unwrap();
        assert_eq!(bars.len(), rows, "{name}");
        assert_eq!(
            bars.first().map(|bar| bar.timestamp),
            Some(at(first)),
            "{name}"
        );
        assert_eq!(
            bars.last().map(|bar| bar.timestamp),
            Some(at(last)),
            "{name}"
        );
    }
    let eurusd = store.read(&symbol("EURUSD"), Timeframe::H1).unwrap();
    assert_eq!(
        eurusd[0],
        Bar {
            timestamp: at("2017-01-01T22:00:00Z"),
            open: 1.05236,
            high: 1.05253,
            low: 1.05221,
            close: 1.05227,
            volume: 143539993.3,
        }
    );
}

#[test]
fn list_shows_the_shipped_series() {
    let listed = LocalStore::new(SHIPPED).list().unwrap();
    let summary: Vec<_> = listed
        .iter()
        .map(|info| {
            (
                info.symbol.as_str(),
                info.timeframe,
                info.bars,
                info.first,
                info.last,
            )
        })
        .collect();
    let expected: Vec<_> = SHIPPED_FILES
        .iter()
        .map(|&(name, timeframe, rows, first, last)| (name, timeframe, rows, at(first), at(last)))
        .collect();
    assert_eq!(summary, expected);
    assert_eq!(listed[1].path, Path::new(SHIPPED).join("EURUSD_1h.csv"));
}

#[test]
fn missing_series_and_paths() {
    let store = LocalStore::new("/nowhere/data");
    let eurusd = symbol("EURUSD");
    assert_eq!(
        store.path(&eurusd, Timeframe::H1),
        Path::new("/nowhere/data/EURUSD_1h.csv")
    );
    assert_eq!(
        store.path(&symbol("es_f"), Timeframe::M15),
        Path::new("/nowhere/data/es_f_15m.csv")
    );
    assert!(!store.exists(&eurusd, Timeframe::H1));
    assert!(LocalStore::new(SHIPPED).exists(&eurusd, Timeframe::H1));
    assert!(!LocalStore::new(SHIPPED).exists(&eurusd, Timeframe::D1));
    let error = store.read(&eurusd, Timeframe::H1).unwrap_err();
    assert!(matches!(error, DataError::NotFound { .. }));
    assert_eq!(
        error.to_string(),
        "no data for EURUSD 1h: /nowhere/data/EURUSD_1h.csv does not exist"
    );
    let error = store.list().unwrap_err();
    assert!(matches!(error, DataError::MissingDataDir { .. }));
    assert_eq!(
        error.to_string(),
        "data directory /nowhere/data does not exist"
    );
    let error = SeriesReader::from_path("/nowhere/x.csv").unwrap_err();
    assert_eq!(error.to_string(), "/nowhere/x.csv");
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert!(cause.is_some_and(|cause| cause.contains("No such file")));
}

#[test]
fn the_data_dir_comes_from_the_flag_then_the_environment() {
    let env =
        |value: &'static str| move |name: &str| (name == "TRDR_DATA_DIR").then(|| value.to_owned());
    let none = |_: &str| None;
    assert_eq!(
        LocalStore::resolve_dir_with(Some("/flag".into()), env("/env")),
        Path::new("/flag")
    );
    assert_eq!(
        LocalStore::resolve_dir_with(None, env("/env")),
        Path::new("/env")
    );
    assert_eq!(
        LocalStore::resolve_dir_with(None, env("")),
        Path::new("./data")
    );
    assert_eq!(
        LocalStore::resolve_dir_with(None, none),
        Path::new("./data")
    );
    assert_eq!(LocalStore::new("/x").dir(), Path::new("/x"));
}

#[test]
fn shipped_files_round_trip_exactly() {
    let shipped = LocalStore::new(SHIPPED);
    let (dir, store) = temp_store();
    for (name, timeframe, ..) in SHIPPED_FILES {
        let name = symbol(name);
        let bars = shipped.read(&name, timeframe).unwrap();
        let path = store.write(&name, timeframe, &bars).unwrap();
        assert_eq!(path, store.path(&name, timeframe));
        assert_eq!(store.read(&name, timeframe).unwrap(), bars);
    }
    assert_eq!(
        file_names(dir.path()),
        [
            "BTCUSD_1h.csv",
            "EURUSD_1h.csv",
            "IBM_1d.csv",
            "SP500_1d.csv"
        ]
    );
}

#[test]
fn list_ignores_files_that_are_not_series() {
    let (dir, store) = temp_store();
    let text = rows(3);
    for name in [
        "EURUSD_1h.csv",
        "AAA_1d.csv",
        "AAA_1h.csv",
        "es_f_1h.csv",
        "eurusd_1H.csv",
        "EURUSD_2h.csv",
        "EURUSD.csv",
        "BAD SYMBOL_1h.csv",
        "EURUSD_1h.csv.bak",
        ".EURUSD_1h.csv.tmp-0123456789abcdef",
        "notes.txt",
        "README.md",
    ] {
        fs::write(dir.path().join(name), &text).unwrap();
    }
    fs::create_dir(dir.path().join("DIR_1h.csv")).unwrap();
    let listed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|info| (info.symbol.to_string(), info.timeframe, info.bars))
        .collect();
    assert_eq!(
        listed,
        [
            ("AAA".to_owned(), Timeframe::H1, 3),
            ("AAA".to_owned(), Timeframe::D1, 3),
            ("EURUSD".to_owned(), Timeframe::H1, 3),
            ("es_f".to_owned(), Timeframe::H1, 3),
        ]
    );

    fs::write(dir.path().join("BROKEN_1h.csv"), HEADER).unwrap();
    let error = store.list().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{}: no bars", dir.path().join("BROKEN_1h.csv").display())
    );

    let empty = tempfile::tempdir().unwrap();
    assert_eq!(LocalStore::new(empty.path()).list().unwrap(), []);
}
