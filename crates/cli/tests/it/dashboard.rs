//! The dashboard of `trdr serve --http` end to end: its event stream read
//! by a plain HTTP client, and its pages driven in a real headless Chromium
//! through chromedriver (Debian's `chromium` and `chromium-driver`, which
//! `.ci/run` installs).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;

use fantoccini::{ClientBuilder, Locator};
use http_body_util::BodyExt as _;

use super::*;

const TOKEN: &str = "dashboard-test-token";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// `trdr serve --http` with [`TOKEN`] on free loopback ports.
struct Dashboard {
    server: Listening,
    /// `http://ADDRESS` of the dashboard.
    url: String,
}

impl Dashboard {
    fn start(state: &Path, models: &Path) -> Self {
        let mut command = trdr(state);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--auth-token", TOKEN, "--db"])
            .arg(state.join("operations.db"))
            .arg("--data-dir")
            .arg(sample_data())
            .arg("--models-dir")
            .arg(models);
        let mut server = Listening::start(command);
        let line = server.next_line();
        let url = line
            .strip_prefix("dashboard on ")
            .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self { server, url }
    }

    /// A `trdr` client of the gRPC API, with the token.
    fn client(&self, state: &Path) -> Command {
        let mut command = trdr(state);
        command
            .env("TRDR_SERVER", &self.server.url)
            .env("TRDR_AUTH_TOKEN", TOKEN);
        command
    }
}

/// eurusd_mlp without early stopping, so a training runs every epoch asked.
fn without_early_stopping(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("strategies/eurusd_mlp.yaml")).unwrap();
    let early = "early_stopping:\n      enabled: true";
    assert!(
        text.contains(early),
        "eurusd_mlp.yaml no longer has {early:?}"
    );
    let path = dir.join("eurusd_mlp.yaml");
    std::fs::write(
        &path,
        text.replace(early, "early_stopping:\n      enabled: false"),
    )
    .unwrap();
    path
}

/// A training submitted with `trdr train FILE --server --json`: the client
/// process, the operation id, and its NDJSON events as they come.
struct Submitted {
    child: Child,
    id: String,
    events: mpsc::Receiver<serde_json::Value>,
}

fn submit(dashboard: &Dashboard, state: &Path, strategy: &Path, epochs: u32) -> Submitted {
    let mut child = dashboard
        .client(state)
        .arg("train")
        .arg(strategy)
        .args(["--epochs", &epochs.to_string(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (sender, events) = mpsc::channel();
    // Read to the end so the client never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let event = serde_json::from_str(&line.unwrap()).unwrap();
            let _ = sender.send(event);
        }
    });
    let first: serde_json::Value = events.recv_timeout(HANG).expect("no event from trdr train");
    let id = first["id"].as_str().unwrap().to_owned();
    Submitted { child, id, events }
}

impl Submitted {
    /// Waits for an event reporting epoch `epoch` or later.
    #[track_caller]
    fn wait_for_epoch(&self, epoch: u64) {
        loop {
            let event = self
                .events
                .recv_timeout(HANG)
                .unwrap_or_else(|_| panic!("no event reached epoch {epoch}"));
            let reached = event["progress"]["context"]["epoch"]["current"].as_u64();
            if reached.is_some_and(|reached| reached >= epoch) {
                return;
            }
            assert_ne!(
                event["event"], "finished",
                "finished before epoch {epoch}: {event}"
            );
        }
    }
}

/// One Server-Sent Event: its type and its data, parsed.
#[derive(Debug)]
struct ServerEvent {
    kind: String,
    data: serde_json::Value,
}

/// Reads the event stream at `url` to its `end` event with a plain HTTP
/// client; every event, in order.
async fn read_event_stream(url: &str) -> Vec<ServerEvent> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<String>();
    let request = http::Request::get(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", "text/event-stream")
        .body(String::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        buffer.push_str(std::str::from_utf8(&data).unwrap());
        // Events end with a blank line; a frame may hold several or part of one.
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut kind = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    kind = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(value).unwrap());
                }
            }
            // A block of comments only is a keep-alive.
            if let (Some(kind), Some(data)) = (kind, data) {
                let end = kind == "end";
                events.push(ServerEvent { kind, data });
                if end {
                    return events;
                }
            }
        }
    }
    panic!("the stream closed before its end event: {events:?}");
}

#[test]
fn the_event_stream_of_a_100_epoch_training_delivers_every_epoch_in_order_to_a_client_joining_mid_run()
 {
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let dashboard = Dashboard::start(state.path(), models.path());
    let strategy = without_early_stopping(state.path());
    let mut training = submit(&dashboard, state.path(), &strategy, 100);
    training.wait_for_epoch(10);

    let url = format!("{}/api/operations/{}/events", dashboard.url, training.id);
    let events = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(read_event_stream(&url));
    let epochs: Vec<u64> = events
        .iter()
        .filter(|event| event.kind == "epoch")
        .map(|event| event.data["epoch"].as_u64().unwrap())
        .collect();
    let end = events.last().unwrap();
    assert_eq!(end.data["status"], "completed", "{:?}", end.data);
    let epochs_run = end.data["result"]["report"]["epochs_run"].as_u64().unwrap();
    assert_eq!(epochs_run, 100);
    assert_eq!(epochs, (1..=epochs_run).collect::<Vec<_>>());
    // Joined mid-run: the first ten or more came as the backfill, before
    // any snapshot; the rest live, between snapshots.
    let backfill = events
        .iter()
        .take_while(|event| event.kind == "epoch")
        .count();
    assert!(backfill >= 10, "backfill of {backfill} epochs");
    assert!(
        events[backfill..]
            .iter()
            .any(|event| event.kind == "snapshot"),
        "no live snapshot"
    );
    assert!(wait_or_hang(&mut training.child).success());
}

/// chromedriver on a free loopback port; killed when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start() -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Debian's chromium and chromium-driver \
                 (.ci/run does)"
            );
        }
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // It says so once it accepts sessions.
        while !line.contains("started successfully") {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "chromedriver exited before it started"
            );
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits, in the page, until the JavaScript function `condition` returns
/// a truthy value, and returns it: checked now and at every change of the
/// document (a `MutationObserver`), so nothing polls on a timer. The
/// session's script timeout ([`HANG`]) turns a page that never gets there
/// into a failure.
async fn wait_in_page(browser: &fantoccini::Client, condition: &str) -> serde_json::Value {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         const condition = {condition};
         const check = () => {{ const value = condition(); if (value) done(value); return value; }};
         if (!check()) {{
           const observer = new MutationObserver(() => {{ if (check()) observer.disconnect(); }});
           observer.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});
         }}"
    );
    browser
        .execute_async(&script, vec![])
        .await
        .unwrap_or_else(|error| panic!("the page never satisfied {condition}: {error}"))
}

/// A JavaScript expression: how many points the chart's train loss curve
/// has (0 without a chart).
const CHART_POINTS: &str = "(() => {
    const line = document.querySelector('#chart polyline[data-series=\"train loss\"]');
    return line ? line.getAttribute('points').trim().split(/\\s+/).filter(Boolean).length : 0;
})()";

async fn text_of(browser: &fantoccini::Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_the_dashboard_in_chromium_logs_in_lists_follows_charts_cancels_and_reports() {
    let driver = Chromedriver::start();
    let state = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let dashboard = Dashboard::start(state.path(), models.path());
    let strategy = without_early_stopping(state.path());
    let long = submit(&dashboard, state.path(), &strategy, 2000);

    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": CHROMIUM,
            // Without the background-networking flags Chromium reaches out
            // at start, which a closed network refuses.
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1200,1400",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromedriver session");
    // Page waits (`wait_in_page`) fail after HANG, as loads do.
    browser
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(HANG),
            Some(HANG),
            None,
        ))
        .await
        .unwrap();

    // Without the token, the login form (answered 401); with it, the list.
    browser.goto(&format!("{}/", dashboard.url)).await.unwrap();
    let token = browser.find(Locator::Id("token")).await.unwrap();
    token.send_keys(TOKEN).await.unwrap();
    browser
        .find(Locator::Css("#login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = format!("tr[data-id=\"{}\"]", long.id);
    let status = wait_in_page(
        &browser,
        &format!(
            "() => document.querySelector('{} td.status')?.textContent",
            row.replace('"', "\\\"")
        ),
    )
    .await;
    assert!(
        ["pending", "running"].contains(&status.as_str().unwrap()),
        "{status}"
    );

    // Its page: the chart gains points as epochs finish.
    browser
        .find(Locator::Css(&format!("{row} a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let first = wait_in_page(&browser, &format!("() => {CHART_POINTS}"))
        .await
        .as_u64()
        .unwrap();
    let later = wait_in_page(
        &browser,
        &format!("() => {{ const points = {CHART_POINTS}; return points > {first} && points; }}"),
    )
    .await
    .as_u64()
    .unwrap();
    assert!(later > first, "{first} then {later} points");
    // The stepper marks the step the training is in.
    browser
        .find(Locator::Css("#steps li.current"))
        .await
        .unwrap();

    // Cancel: the page says so, and so does the server.
    browser
        .find(Locator::Id("cancel"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_in_page(
        &browser,
        "() => document.getElementById('status').textContent === 'cancelled'",
    )
    .await;
    let show = dashboard
        .client(state.path())
        .args(["ops", "show", &long.id, "--json"])
        .output()
        .unwrap();
    assert_exit(&show, 0);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["status"], "cancelled", "{shown}");
    let mut long = long;
    wait_or_hang(&mut long.child);

    let screenshot = repo()
        .canonicalize()
        .unwrap()
        .join("target/dashboard-screenshot.png");
    std::fs::write(&screenshot, browser.screenshot().await.unwrap()).unwrap();
    // A test artifact: where to look at the page.
    #[allow(clippy::print_stdout)]
    {
        println!("screenshot of the detail page: {}", screenshot.display());
    }

    // A training that finished before its page was opened: the whole
    // curve and the quality report at once.
    let mut short = submit(&dashboard, state.path(), &strategy, 5);
    assert!(wait_or_hang(&mut short.child).success());
    let finished = short
        .events
        .iter()
        .find(|event| event["event"] == "finished")
        .unwrap();
    let epochs_run = finished["operation"]["result"]["report"]["epochs_run"]
        .as_u64()
        .unwrap();
    browser
        .goto(&format!("{}/operations/{}", dashboard.url, short.id))
        .await
        .unwrap();
    let finished = wait_in_page(&browser, "() => document.body.dataset.finished").await;
    assert_eq!(finished, "completed");
    wait_in_page(&browser, &format!("() => {CHART_POINTS} === {epochs_run}")).await;
    assert!(!text_of(&browser, "#verdict").await.is_empty());
    assert!(
        text_of(&browser, "#model-path")
            .await
            .contains(&*models.path().to_string_lossy())
    );
    browser.close().await.unwrap();
}
