//! The host pool: each training runs on the least loaded of several
//! training hosts that has a free slot; while none has, it waits `pending`
//! and says why. A host that does not answer is set aside, with back-off,
//! until it answers again.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use host_client::{HostError, HostStatus, TrainingHostClient};
use orchestrator_core::{BoxError, CancellationToken, Cancelled, error_chain};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::host::{train_on_host, training_host};
use crate::{AdapterError, Backend, Executor, RemoteTrainingError, TrainingJob, TrainingSummary};

/// How long a host that failed is set aside at first; each failure of its
/// recheck doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often a waiting training asks the hosts again; it also asks as soon
/// as a training of this pool ends.
const POLL_INTERVAL: Duration = Duration::from_millis(750);

/// The stage a training cancelled while it waits for a host stops in.
const WAITING: &str = "waiting for a free training host";

/// Runs each training on one of several training hosts: it asks each host
/// that is not set aside for its status (all at once, bounded by the host
/// client's deadlines), picks the least loaded one with a free slot (ties:
/// fewer trainings, then the order of the list) that trains on the
/// request's backend, and runs the training there as [`HostExecutor`]
/// would, so the operation runs on that host's URL.
///
/// A training this pool sent to a host counts there until it ends here,
/// even before the host reports it, so trainings submitted together do not
/// all take the same last free slot. While no host has a free slot the
/// training stays `pending`, saying how many hosts are busy and down, and
/// asks again every 750 ms or as soon as one of this pool's trainings
/// ends; a cancel ends the wait at once.
///
/// A host that fails its status call, or is lost during a training, is set
/// aside for 1 s, doubled on each failed recheck up to 30 s; once it
/// answers it is used again.
///
/// [`HostExecutor`]: crate::HostExecutor
#[derive(Debug)]
pub struct HostPool {
    hosts: Vec<TrainingHostClient>,
    /// One entry per host, in the order of `hosts`; one lock, so that a
    /// choice and the count it adds are one step.
    state: Mutex<Vec<HostState>>,
    /// Woken when a training of this pool ends: a slot may be free.
    ended: Notify,
}

impl HostPool {
    /// The hosts at `urls`, in order of preference on equal load; the auth
    /// token comes from `TRDR_AUTH_TOKEN`.
    pub fn new(urls: &[String]) -> Self {
        Self {
            hosts: urls.iter().map(|url| training_host(url)).collect(),
            state: Mutex::new(urls.iter().map(|_| HostState::default()).collect()),
            ended: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, Vec<HostState>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn url(&self, index: usize) -> &str {
        self.hosts[index].endpoint().url()
    }

    /// Waits for a host with a free slot and takes it.
    async fn acquire(&self, job: &TrainingJob) -> Result<Slot<'_>, AdapterError> {
        let backend = job.request.options().backend;
        let mut told: Option<String> = None;
        loop {
            // Listening before asking: a training that ends meanwhile wakes us.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();

            let answers = self.ask(&job.token, Ask::Due).await;
            if job.token.is_cancelled() {
                return Err(wait_cancelled(&job.token));
            }
            let waiting = {
                let mut state = self.state();
                self.record(&mut state, &answers);
                let seen: Vec<Seen> = answers
                    .iter()
                    .zip(state.iter())
                    .map(|(answer, host)| Seen::of(answer.as_ref(), host.dispatched, backend))
                    .collect();
                match choose(&seen) {
                    Some(index) => {
                        state[index].dispatched += 1;
                        tracing::debug!(url = self.url(index), seen = ?seen[index], "training sent to the host");
                        return Ok(Slot { pool: self, index });
                    }
                    None => waiting_message(&seen, backend),
                }
            };
            if told.as_ref() != Some(&waiting) {
                job.start.waiting(waiting.clone());
                told = Some(waiting);
            }
            tokio::select! {
                () = job.token.cancelled() => return Err(wait_cancelled(&job.token)),
                () = &mut ended => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// Asks the hosts for their status at once: those whose back-off has
    /// passed, or all. `None` for a host not asked.
    async fn ask(&self, token: &CancellationToken, which: Ask) -> Vec<Option<Answer>> {
        let now = Instant::now();
        let asked: Vec<bool> = self
            .state()
            .iter()
            .map(|host| which == Ask::All || host.health.due(now))
            .collect();
        let mut calls = JoinSet::new();
        for (index, host) in self.hosts.iter().enumerate() {
            if asked[index] {
                let (host, token) = (host.clone(), token.clone());
                calls.spawn(async move { (index, host.status(&token).await) });
            }
        }
        let mut answers = vec![None; self.hosts.len()];
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok((index, answer)) => answers[index] = Some(answer),
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            }
        }
        answers
    }

    /// Marks each host that answered up and each that failed down, logging
    /// the changes.
    fn record(&self, state: &mut [HostState], answers: &[Option<Answer>]) {
        let now = Instant::now();
        for (index, answer) in answers.iter().enumerate() {
            match answer {
                None | Some(Err(HostError::Cancelled { .. })) => {}
                Some(Ok(_)) => {
                    if state[index].health.answered() {
                        tracing::info!(url = self.url(index), "the training host answers again");
                    }
                }
                Some(Err(error)) => self.failed(state, index, now, error),
            }
        }
    }

    fn failed(
        &self,
        state: &mut [HostState],
        index: usize,
        now: Instant,
        error: &(dyn std::error::Error + 'static),
    ) {
        let url = self.url(index);
        let error = error_chain(error);
        if state[index].health.failed(now) {
            tracing::warn!(url, %error, "training host down: no trainings go there until it answers again");
        } else {
            tracing::debug!(url, %error, retry_in = ?state[index].health.retry_in(now), "the training host is still down");
        }
    }
}

#[async_trait::async_trait]
impl Executor for HostPool {
    fn name(&self) -> &str {
        "host-pool"
    }

    async fn train(&self, job: TrainingJob) -> Result<TrainingSummary, AdapterError> {
        let slot = self.acquire(&job).await?;
        let trained = train_on_host(&self.hosts[slot.index], job).await;
        if let Err(error) = &trained
            && host_lost(error)
        {
            let mut state = self.state();
            self.failed(&mut state, slot.index, Instant::now(), error);
        }
        trained
    }

    /// Ok when at least one host answers its status call.
    async fn health(&self) -> Result<(), BoxError> {
        let answers = self.ask(&CancellationToken::new(), Ask::All).await;
        self.record(&mut self.state(), &answers);
        let mut errors = Vec::new();
        for answer in answers.into_iter().flatten() {
            match answer {
                Ok(_) => return Ok(()),
                Err(error) => errors.push(error),
            }
        }
        Err(Box::new(NoHostAnswers(errors)))
    }
}

type Answer = Result<HostStatus, HostError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// The hosts that are up or whose back-off has passed.
    Due,
    All,
}

/// A host's slot taken by one training of the pool, given back when the
/// training ends (or its future is dropped).
struct Slot<'a> {
    pool: &'a HostPool,
    index: usize,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.pool.state()[self.index].dispatched -= 1;
        self.pool.ended.notify_waiters();
    }
}

#[derive(Debug, Default)]
struct HostState {
    health: Health,
    /// Trainings this pool sent there that have not ended here.
    dispatched: u32,
}

/// Whether a host answers; a host that does not is asked again once its
/// back-off has passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Health {
    #[default]
    Up,
    Down {
        retry_at: Instant,
        backoff: Duration,
    },
}

impl Health {
    /// Whether the host may be asked now.
    fn due(&self, now: Instant) -> bool {
        match self {
            Health::Up => true,
            Health::Down { retry_at, .. } => now >= *retry_at,
        }
    }

    fn retry_in(&self, now: Instant) -> Duration {
        match self {
            Health::Up => Duration::ZERO,
            Health::Down { retry_at, .. } => retry_at.saturating_duration_since(now),
        }
    }

    /// A call failed at `now`: an up host goes down for [`FIRST_BACKOFF`],
    /// a failed recheck doubles the back-off. A failure of a call begun
    /// before the back-off began (another training's) changes nothing.
    /// True when the host just went down.
    fn failed(&mut self, now: Instant) -> bool {
        match *self {
            Health::Up => {
                *self = Health::Down {
                    retry_at: now + FIRST_BACKOFF,
                    backoff: FIRST_BACKOFF,
                };
                true
            }
            Health::Down { retry_at, backoff } => {
                if now >= retry_at {
                    let backoff = (backoff * 2).min(MAX_BACKOFF);
                    *self = Health::Down {
                        retry_at: now + backoff,
                        backoff,
                    };
                }
                false
            }
        }
    }

    /// The host answered: up again. True when it was down.
    fn answered(&mut self) -> bool {
        std::mem::replace(self, Health::Up) != Health::Up
    }
}

/// What one choice knows of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Set aside, or did not answer.
    Down,
    /// Answered, but does not train on the request's backend.
    Unsupported,
    /// Answered: its capacity (at least 1) and the trainings it has, the
    /// larger of what it reported and what this pool sent there.
    Up { capacity: u32, running: u32 },
}

impl Seen {
    /// `backend`: the one the request names; `None` suits every host.
    fn of(answer: Option<&Answer>, dispatched: u32, backend: Option<Backend>) -> Self {
        match answer {
            Some(Ok(status)) if backend.is_some_and(|wanted| !status.supports(wanted)) => {
                Seen::Unsupported
            }
            Some(Ok(status)) => Seen::Up {
                capacity: status.capacity.max(1),
                running: status.running.max(dispatched),
            },
            None | Some(Err(_)) => Seen::Down,
        }
    }
}

/// The host to send a training to: of those up with a free slot, the one
/// with the least `running / capacity`, then the fewest running, then the
/// first listed; `None` when every host is full or down.
fn choose(seen: &[Seen]) -> Option<usize> {
    seen.iter()
        .enumerate()
        .filter_map(|(index, seen)| match *seen {
            Seen::Up { capacity, running } if running < capacity => {
                Some((index, u64::from(capacity), u64::from(running)))
            }
            _ => None,
        })
        // Loads compared as fractions, exactly: a/b < c/d ⇔ a·d < c·b.
        .min_by(|(i, cap_a, run_a), (j, cap_b, run_b)| {
            (run_a * cap_b)
                .cmp(&(run_b * cap_a))
                .then(run_a.cmp(run_b))
                .then(i.cmp(j))
        })
        .map(|(index, _, _)| index)
}

/// Why a training waits: `waiting for a free training host: 3 hosts, 2
/// busy, 1 down`.
fn waiting_message(seen: &[Seen], backend: Option<Backend>) -> String {
    let count = |wanted: fn(&Seen) -> bool| seen.iter().filter(|seen| wanted(seen)).count();
    let busy = count(|seen| matches!(seen, Seen::Up { .. }));
    let down = count(|seen| matches!(seen, Seen::Down));
    let unsupported = count(|seen| matches!(seen, Seen::Unsupported));
    let hosts = seen.len();
    let plural = if hosts == 1 { "" } else { "s" };
    let mut message = format!("{WAITING}: {hosts} host{plural}, {busy} busy, {down} down");
    if let Some(backend) = backend
        && unsupported > 0
    {
        message.push_str(&format!(", {unsupported} without the {backend} backend"));
    }
    message
}

/// Whether `error` says the host itself went away (lost, unreachable, shut
/// down), rather than the training failing there.
fn host_lost(error: &AdapterError) -> bool {
    matches!(
        error,
        AdapterError::Host(
            RemoteTrainingError::Host(
                HostError::Lost { .. } | HostError::Unreachable { .. } | HostError::NoAnswer { .. }
            ) | RemoteTrainingError::HostShutDown { .. }
        )
    )
}

/// The training was cancelled before any host took it. Keeps the
/// [`Cancelled`] as its source, so the operation ends `cancelled`.
#[derive(Debug, thiserror::Error)]
#[error("cancelled while {WAITING}")]
struct WaitCancelled(#[source] Cancelled);

fn wait_cancelled(token: &CancellationToken) -> AdapterError {
    AdapterError::Executor(Box::new(WaitCancelled(token.cancelled_error(WAITING))))
}

/// No host of the pool answered its status call; each error names its host.
#[derive(Debug)]
struct NoHostAnswers(Vec<HostError>);

impl fmt::Display for NoHostAnswers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no training host answers")?;
        for (n, error) in self.0.iter().enumerate() {
            let separator = if n == 0 { ": " } else { "; " };
            write!(f, "{separator}{}", error_chain(error))?;
        }
        Ok(())
    }
}

impl std::error::Error for NoHostAnswers {}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use orchestrator_core::{CancelReason, OperationKind, OperationStatus, OperationsService};
    use strategy::StrategyConfig;

    use super::*;
    use crate::{Directories, TrainingOptions, TrainingRequest};

    fn up(capacity: u32, running: u32) -> Seen {
        Seen::Up { capacity, running }
    }

    #[test]
    fn the_least_loaded_host_with_a_free_slot_is_chosen() {
        // Loads 1/2, 1/4, 2/3.
        assert_eq!(choose(&[up(2, 1), up(4, 1), up(3, 2)]), Some(1));
        // Full or overfull hosts are not, however light the others' load.
        assert_eq!(choose(&[up(1, 1), up(2, 3), up(8, 7)]), Some(2));
    }

    #[test]
    fn equal_loads_go_to_the_fewest_running_then_the_first_listed() {
        // Loads 1/2 and 2/4: the host with one training.
        assert_eq!(choose(&[up(4, 2), up(2, 1)]), Some(1));
        assert_eq!(choose(&[up(2, 0), up(1, 0), up(2, 0)]), Some(0));
        assert_eq!(choose(&[Seen::Down, up(3, 1), up(3, 1)]), Some(1));
    }

    #[test]
    fn nothing_is_chosen_when_every_host_is_full_down_or_without_the_backend() {
        assert_eq!(
            choose(&[up(1, 1), Seen::Down, Seen::Unsupported, up(2, 2)]),
            None
        );
        assert_eq!(choose(&[]), None);
    }

    fn status(capacity: u32, running: u32, backends: &[Backend]) -> Answer {
        Ok(HostStatus {
            capacity,
            running,
            backends: backends.to_vec(),
            version: "0.0.0".to_owned(),
        })
    }

    #[test]
    fn a_training_sent_from_here_counts_until_the_host_reports_it() {
        let free = status(1, 0, &Backend::ALL);
        // Sent a moment ago, not yet reported: the one slot is taken.
        let seen = Seen::of(Some(&free), 1, Some(Backend::Flex));
        assert_eq!(seen, up(1, 1));
        assert_eq!(choose(&[seen]), None);
        // Reported, and another client's besides: the host's count wins.
        let busier = status(3, 2, &Backend::ALL);
        assert_eq!(Seen::of(Some(&busier), 1, Some(Backend::Flex)), up(3, 2));
        // A capacity of 0 (an old host) counts as 1.
        assert_eq!(
            Seen::of(Some(&status(0, 0, &Backend::ALL)), 0, Some(Backend::Flex)),
            up(1, 0)
        );
    }

    #[test]
    fn hosts_that_fail_are_down_and_those_without_the_backend_are_not_chosen() {
        let lost = Err(HostError::Lost {
            kind: host_client::HostKind::Training,
            url: "http://a".to_owned(),
            reason: "gone".to_owned(),
        });
        assert_eq!(Seen::of(Some(&lost), 0, Some(Backend::Flex)), Seen::Down);
        assert_eq!(Seen::of(None, 0, Some(Backend::Flex)), Seen::Down);
        let flex_only = status(2, 0, &[Backend::Flex]);
        assert_eq!(
            Seen::of(Some(&flex_only), 0, Some(Backend::NdArray)),
            Seen::Unsupported
        );
        // A request that names no backend trains on the host's default.
        assert_eq!(Seen::of(Some(&flex_only), 0, None), up(2, 0));
    }

    #[test]
    fn the_waiting_message_counts_busy_down_and_unsuitable_hosts() {
        assert_eq!(
            waiting_message(&[up(1, 1), up(2, 2), up(1, 1)], Some(Backend::Flex)),
            "waiting for a free training host: 3 hosts, 3 busy, 0 down"
        );
        assert_eq!(
            waiting_message(
                &[up(1, 1), Seen::Down, Seen::Unsupported],
                Some(Backend::NdArray)
            ),
            "waiting for a free training host: 3 hosts, 1 busy, 1 down, 1 without the ndarray backend"
        );
        assert_eq!(
            waiting_message(&[Seen::Down], Some(Backend::Flex)),
            "waiting for a free training host: 1 host, 0 busy, 1 down"
        );
    }

    #[test]
    fn a_failing_host_backs_off_doubling_to_30_s_and_is_up_once_it_answers() {
        let start = Instant::now();
        let mut health = Health::Up;
        assert!(health.due(start));
        assert!(health.failed(start), "the first failure takes it down");

        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..7 {
            let wait = health.retry_in(now);
            assert!(!health.due(now + wait - Duration::from_millis(1)));
            now += wait;
            assert!(health.due(now));
            waits.push(wait.as_secs());
            assert!(!health.failed(now), "already down: no second warning");
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);

        assert!(health.answered(), "a host that answers is back");
        assert_eq!(health, Health::Up);
        assert!(!health.answered());
        assert!(health.failed(now));
        assert_eq!(health.retry_in(now), FIRST_BACKOFF);
    }

    #[test]
    fn a_failure_seen_while_backing_off_does_not_lengthen_it() {
        let start = Instant::now();
        let mut health = Health::Up;
        health.failed(start);
        // Another training's call, begun before, fails a moment later.
        assert!(!health.failed(start + Duration::from_millis(300)));
        assert_eq!(health.retry_in(start), FIRST_BACKOFF);
    }

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn request() -> TrainingRequest {
        let strategy =
            StrategyConfig::from_file(&root().join("strategies/eurusd_mlp.yaml")).unwrap();
        let options = TrainingOptions {
            epochs: Some(1),
            ..TrainingOptions::default()
        };
        TrainingRequest::new(strategy, None, None, options).unwrap()
    }

    /// A loopback URL where nothing listens (bound, then released).
    fn nobody() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_every_host_down_a_training_waits_pending_until_cancelled() {
        let pool = HostPool::new(&[nobody(), nobody(), nobody()]);
        let operations = OperationsService::in_memory();
        let context = operations
            .create(OperationKind::Training, serde_json::json!({}), None)
            .unwrap();
        let (id, token) = (context.id.clone(), context.token.clone());
        let mut watch = operations.watch(&id).unwrap();
        let models = tempfile::tempdir().unwrap();
        let directories = Directories {
            data: root().join("data"),
            models: models.path().to_owned(),
        };
        let training = pool.train(TrainingJob::new(request(), directories, context));
        tokio::pin!(training);

        let waiting = loop {
            tokio::select! {
                trained = &mut training => panic!("ended while every host is down: {trained:?}"),
                Some(snapshot) = watch.next() => {
                    if snapshot.progress.message.ends_with("3 down") {
                        break snapshot;
                    }
                }
            }
        };
        assert_eq!(waiting.status, OperationStatus::Pending);
        assert_eq!(
            waiting.progress.message,
            "waiting for a free training host: 3 hosts, 0 busy, 3 down"
        );

        token.cancel(CancelReason::UserRequest(None));
        let error = training.await.unwrap_err();
        let stop = Cancelled::find_in(&error).expect("a stop, not a failure");
        assert_eq!(stop.stage, WAITING);
        let operation = operations.get(&id).unwrap();
        assert_eq!(operation.runs_on, None);
        let health = pool.health().await.unwrap_err().to_string();
        assert!(
            health.starts_with("no training host answers: training host at http://127.0.0.1:"),
            "{health}"
        );
        assert_eq!(health.matches("is not reachable").count(), 3, "{health}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_training_runs_on_the_host_that_answers_and_the_other_is_set_aside() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let host_models = tempfile::tempdir().unwrap();
        let options = host_service::HostOptions {
            data_dir: root().join("data"),
            models_dir: host_models.path().to_owned(),
            max_concurrent: 1,
            auth_token: None,
            backend: host_service::Backend::Flex,
        };
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(host_service::serve(listener, options, async {
            let _ = stopped.await;
        }));

        let down = nobody();
        let pool = HostPool::new(&[down.clone(), url.clone()]);
        pool.health().await.expect("one host answers");
        assert!(
            !pool.state()[0].health.due(Instant::now()),
            "{down} set aside"
        );

        let operations = OperationsService::in_memory();
        let context = operations
            .create(OperationKind::Training, serde_json::json!({}), None)
            .unwrap();
        let id = context.id.clone();
        let models = tempfile::tempdir().unwrap();
        let directories = Directories {
            data: PathBuf::from("/nonexistent"),
            models: models.path().to_owned(),
        };
        let summary = pool
            .train(TrainingJob::new(request(), directories, context))
            .await
            .unwrap();
        assert!(summary.model_path.starts_with(models.path()), "{summary:?}");
        let operation = operations.get(&id).unwrap();
        assert_eq!(operation.runs_on.as_deref(), Some(url.as_str()));
        assert_eq!(pool.state()[1].dispatched, 0, "the slot is given back");
    }
}
