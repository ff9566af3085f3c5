//! `trdr data load --mode tail|backfill` against a real `trdr host-service`
//! acting as the data host: exactly the missing bars are fetched and merged.

use market_data::{Bar, LocalStore, Timeframe};

use super::*;

/// A data host serving the shipped sample data.
fn data_host() -> Listening {
    let models = tempfile::tempdir().unwrap();
    let mut command = trdr(models.path());
    command
        .env_remove("TRDR_AUTH_TOKEN")
        .args(["host-service", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(sample_data())
        .arg("--models-dir")
        .arg(models.path());
    Listening::start(command)
}

fn eurusd(store: &LocalStore) -> Vec<Bar> {
    store
        .read(&"EURUSD".parse().unwrap(), Timeframe::H1)
        .unwrap()
}

/// `trdr data load EURUSD 1h --mode MODE --json` against the data host at `url`.
fn load(state: &Path, data_dir: &Path, url: &str, mode: &str) -> Output {
    trdr(state)
        .env("USE_DATA_HOST_SERVICE", "true")
        .env("DATA_HOST_SERVICE_URL", url)
        .env_remove("TRDR_AUTH_TOKEN")
        .args([
            "data",
            "load",
            "EURUSD",
            "1h",
            "--json",
            "--mode",
            mode,
            "--data-dir",
        ])
        .arg(data_dir)
        .output()
        .unwrap()
}

fn fetched(output: &Output) -> serde_json::Value {
    let events = json_events(output);
    let last = events.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    last["operation"]["result"]["fetched"].clone()
}

#[test]
fn tail_then_backfill_fill_in_exactly_the_missing_bars() {
    let host = data_host();
    let all = eurusd(&LocalStore::new(sample_data()));
    let state = tempfile::tempdir().unwrap();
    let local_dir = tempfile::tempdir().unwrap();
    let local = LocalStore::new(local_dir.path());
    // The local copy lacks the first 300 and the last 500 bars.
    local
        .write(
            &"EURUSD".parse().unwrap(),
            Timeframe::H1,
            &all[300..all.len() - 500],
        )
        .unwrap();

    let tail = load(state.path(), local_dir.path(), &host.url, "tail");
    assert_exit(&tail, 0);
    let tail = fetched(&tail);
    assert_eq!(
        (tail["received"].as_u64(), tail["added"].as_u64()),
        (Some(500), Some(500)),
        "{tail}"
    );
    assert_eq!(tail["from"], host.url.as_str());
    assert_eq!(eurusd(&local), &all[300..]);

    let backfill = load(state.path(), local_dir.path(), &host.url, "backfill");
    assert_exit(&backfill, 0);
    let backfill = fetched(&backfill);
    assert_eq!(
        (backfill["received"].as_u64(), backfill["added"].as_u64()),
        (Some(300), Some(300))
    );
    assert_eq!(eurusd(&local), all);

    // Nothing is missing any more: a second tail fetches nothing.
    let again = load(state.path(), local_dir.path(), &host.url, "tail");
    assert_exit(&again, 0);
    assert_eq!(fetched(&again)["received"], 0);
}

#[test]
fn a_data_host_that_is_down_fails_the_load_promptly_naming_it() {
    let url = free_url();
    let state = tempfile::tempdir().unwrap();
    let local_dir = tempfile::tempdir().unwrap();
    // Within the connect deadline (1.5 s by default); bench host times it.
    let output = load(state.path(), local_dir.path(), &url, "tail");
    assert_exit(&output, 1);
    let events = json_events(&output);
    let last = events.last().unwrap();
    assert_eq!(last["status"], "failed");
    let error = last["operation"]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "fetching EURUSD 1h bars: data host at {url} is not reachable"
        )),
        "{error}"
    );
}
