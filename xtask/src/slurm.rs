//! `cargo xtask slurm up|down|status [--dir DIR]`: a one-node Slurm cluster on
//! this machine, for the trainings dispatched as Slurm jobs and their tests.
//!
//! `up` installs Debian's `slurmctld slurmd slurm-client munge` with apt-get
//! when a binary is missing (nothing from elsewhere), writes `slurm.conf` for
//! one node (this host, all its CPUs, partition `debug`) under the state
//! directory, starts munged, slurmctld and slurmd there and waits until the
//! node answers. Its one line on stdout is `export SLURM_CONF=DIR/slurm.conf`
//! (so `eval "$(cargo xtask slurm up)"` works); every Slurm command needs it.
//! Already up, it says so and succeeds. `down` cancels the cluster's jobs and
//! stops the daemons by their PID files (TERM, then KILL after 10 s);
//! `status` says what runs and exits 1 unless all of it does. The state
//! directory is `--dir`, else `$TRDR_SLURM_DIR`, else `target/slurm`; it
//! holds the config, the daemons' state, spool, logs (`log/`) and PID
//! files. [`up`] is what a CI step calls: it returns the `SLURM_CONF` path.
//!
//! Needs root: the daemons run as root (`SlurmUser=root`), and slurmd runs
//! each job as its submitter. munged has its own socket under the state
//! directory (`AuthInfo=socket=…`) and uses the system key,
//! `/etc/munge/munge.key` (created with `mungekey` when missing); it runs
//! with `--force` because Debian's key belongs to the `munge` user, which
//! munged refuses as root otherwise. Cgroups do not work in the VMs this
//! runs in, hence `proctrack/pgid`, `task/none` and no accounting; jobs of
//! one CPU share the node (`select/cons_tres`, `CR_Core`). Ports are chosen
//! free when the config is written, not Slurm's 6817/6818, so a system
//! Slurm does not clash.
//!
//! Observed with Debian 12's Slurm 22.05.8 on a 2-CPU VM:
//! - A job starts 0.35 to 0.7 s after `sbatch` returns. Slurm's default
//!   `batch_sched_delay=3` made that 2.2 to 2.7 s, hence
//!   `SchedulerParameters=batch_sched_delay=0`. Two 1-CPU jobs run side by
//!   side; a third waits `PENDING` with `Reason=Resources`.
//! - `scancel --full --signal=INT JOB` reaches the batch script and its
//!   children (with `proctrack/pgid`, the script's process group) within
//!   ~20 ms. It does not cancel the job: a script that traps INT and exits
//!   130 ends `FAILED` with `ExitCode=130:0`; a plain `sleep` dies of the
//!   signal and the job ends `FAILED`, `Reason=JobLaunchFailure`,
//!   `ExitCode=0:2`. A pending job cannot be signalled: scancel retries
//!   for 95 s, then exits 228 with `Job can not be altered now, try again
//!   later`; with `--state=RUNNING` it skips the job at once (exit 0;
//!   `--verbose` says `No active jobs match ALL job filters`). A
//!   completing or ended job: `Invalid job id specified`, exit 1.
//! - Plain `scancel JOB` sends TERM to the script's process group at once;
//!   the job shows `COMPLETING` until its processes are gone, then
//!   `CANCELLED` (`ExitCode=0:15` for a `sleep`). A script that ignores TERM
//!   gets KILL `KillWait` (5 s) later and ends `CANCELLED`, `ExitCode=0:9`.
//!   Plain `scancel` of an ended or unknown job prints nothing and exits 0.
//! - `scontrol show job` keeps showing an ended job for `MinJobAge` (300 s)
//!   and up to a minute more, then answers `Invalid job id specified`
//!   (exit 1). Job ids carry on across `down`/`up` (the state is kept).
//!   A cancelled job shows `COMPLETING` until its processes are gone. A
//!   job past its `--time` limit ends `TIMEOUT`, `Reason=TimeLimit`,
//!   `ExitCode=0:15`, up to ~30 s late (the limit is checked periodically).
//!   Taking the node down (`scontrol update … state=down`) ends its jobs
//!   `NODE_FAIL`, `Reason=NodeDown` (with `--no-requeue`; else requeued).
//! - With slurmctld down, `sbatch` and `scancel` fail after ~9 s and
//!   `scontrol show job` after ~18 s with `MessageTimeout=10`;
//!   `MessageTimeout=5` here halves that.

use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

/// The environment variable naming the state directory.
pub(crate) const DIR_VAR: &str = "TRDR_SLURM_DIR";

/// Debian's packages, and a binary of each that says it is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("slurmctld", "slurmctld"),
    ("slurmd", "slurmd"),
    ("slurm-client", "sbatch"),
    ("munge", "munged"),
];

/// The system's munge key, shared with any other munged on this machine.
const MUNGE_KEY: &str = "/etc/munge/munge.key";

/// How long `up` waits for the node to answer.
const UP_DEADLINE: Duration = Duration::from_secs(60);
/// How long a daemon has to stop after TERM before it gets KILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How long `down` waits for the cancelled jobs to end (`KillWait` + margin).
const JOBS_DEADLINE: Duration = Duration::from_secs(15);
/// The bound on each Slurm or munge command this module runs.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// A Unix socket path is at most 107 bytes; slurmd's step sockets live in the
/// spool directory with names of up to ~30 bytes.
const MAX_SOCKET_DIR: usize = 70;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Up,
    Down,
    Status,
}

pub(crate) fn run(root: &Path, args: &[&str]) -> Result<(), Error> {
    let (action, dir) = parse(args)?;
    let dir = state_dir(root, dir)?;
    match action {
        Action::Up => {
            let conf = up(&dir)?;
            println!("export SLURM_CONF={}", conf.display());
            Ok(())
        }
        Action::Down => down(&dir),
        Action::Status => status(&dir),
    }
}

fn parse<'a>(args: &[&'a str]) -> Result<(Action, Option<&'a str>), Error> {
    let (action, flags) = match args {
        ["up", flags @ ..] => (Action::Up, flags),
        ["down", flags @ ..] => (Action::Down, flags),
        ["status", flags @ ..] => (Action::Status, flags),
        [] => return Err(Error::usage("`slurm` needs `up`, `down` or `status`")),
        [other, ..] => {
            return Err(Error::usage(format!(
                "unknown slurm command `{other}`; commands: up, down, status"
            )));
        }
    };
    match flags {
        [] => Ok((action, None)),
        ["--dir", dir] => Ok((action, Some(*dir))),
        [flag, ..] => Err(Error::usage(format!(
            "unexpected `{flag}`; the only flag is --dir DIR"
        ))),
    }
}

/// The state directory: `dir` when given, else `$TRDR_SLURM_DIR`, else
/// `target/slurm` of the workspace; made absolute, since slurm.conf names
/// its paths.
pub(crate) fn state_dir(root: &Path, dir: Option<&str>) -> Result<PathBuf, Error> {
    let dir = match dir {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os(DIR_VAR) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => root.join("target/slurm"),
        },
    };
    std::path::absolute(&dir)
        .map_err(|err| failed(format!("cannot make {} absolute: {err}", dir.display())))
}

fn failed(message: impl Into<String>) -> Error {
    Error::Failed {
        message: message.into(),
        code: None,
    }
}

// ---------------------------------------------------------------------------
// The cluster's files and daemons.
// ---------------------------------------------------------------------------

/// The paths of one cluster, all under its state directory.
#[derive(Debug)]
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }
    fn munge_socket(&self) -> PathBuf {
        self.dir.join("munge/munge.socket")
    }
    fn log(&self, daemon: Daemon) -> PathBuf {
        self.dir.join("log").join(format!("{}.log", daemon.name()))
    }
    fn pid_file(&self, daemon: Daemon) -> PathBuf {
        self.dir.join("run").join(format!("{}.pid", daemon.name()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Munged,
    Slurmctld,
    Slurmd,
}

impl Daemon {
    /// In starting order.
    const ALL: [Daemon; 3] = [Daemon::Munged, Daemon::Slurmctld, Daemon::Slurmd];

    /// The binary's name, which is also its `/proc/PID/comm`.
    fn name(self) -> &'static str {
        match self {
            Daemon::Munged => "munged",
            Daemon::Slurmctld => "slurmctld",
            Daemon::Slurmd => "slurmd",
        }
    }

    /// The PID in its PID file, when that process is alive and is this daemon
    /// (a PID file left by a crash may name a reused PID).
    fn running(self, layout: &Layout) -> Option<u32> {
        let text = fs::read_to_string(layout.pid_file(self)).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        is_alive_as(pid, self.name()).then_some(pid)
    }
}

/// Whether `pid` is a live (not zombie) process whose command name is `name`.
fn is_alive_as(pid: u32, name: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `PID (COMM) STATE ...`; COMM may itself hold spaces or parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].trim_start().chars().next();
    comm == name && !matches!(state, Some('Z' | 'X'))
}

// ---------------------------------------------------------------------------
// up
// ---------------------------------------------------------------------------

/// Brings the cluster in `dir` up (or finds it up) and returns the path to
/// give Slurm's commands as `SLURM_CONF`. Messages go to stderr.
pub(crate) fn up(dir: &Path) -> Result<PathBuf, Error> {
    let layout = Layout {
        dir: dir.to_path_buf(),
    };
    eprintln!("slurm: state directory {}", dir.display());
    let running: Vec<Daemon> = Daemon::ALL
        .into_iter()
        .filter(|daemon| daemon.running(&layout).is_some())
        .collect();
    if running.len() == Daemon::ALL.len() && node_state(&layout).is_ok_and(|s| node_is_up(&s)) {
        eprintln!("slurm: already up");
        return Ok(layout.conf());
    }
    if !is_root() {
        return Err(failed(
            "`slurm up` must run as root: the daemons run as root and start \
             jobs as their users (try `sudo -E cargo xtask slurm up`)",
        ));
    }
    if !running.is_empty() {
        // Half a cluster (a daemon died, or a node that does not answer):
        // start again from a clean slate, with a freshly written config.
        eprintln!("slurm: partly up; stopping it to start again");
        stop_all(&layout)?;
    }
    install_packages()?;
    ensure_munge_key()?;

    let host = short_hostname()?;
    for sub in ["munge", "state", "spool", "log", "run"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path)
            .map_err(|err| failed(format!("cannot create {}: {err}", path.display())))?;
    }
    let spool = dir.join("spool");
    if spool.as_os_str().len() > MAX_SOCKET_DIR {
        return Err(failed(format!(
            "the state directory {} is too long for Unix sockets in it; choose a \
             shorter one with --dir or ${DIR_VAR}",
            dir.display()
        )));
    }
    let (ctld_port, slurmd_port) = free_ports()?;
    let config = Config {
        dir,
        host: &host,
        cpus: thread::available_parallelism().map_or(1, usize::from),
        memory_mb: real_memory_mb(),
        ctld_port,
        slurmd_port,
    };
    write_file(&layout.conf(), &config.slurm_conf())?;
    eprintln!(
        "slurm: wrote {} (node {host}, {} CPUs, ports {ctld_port} and {slurmd_port})",
        layout.conf().display(),
        config.cpus
    );

    if let Err(err) = start_daemons(&layout, &host) {
        // A failed start leaves nothing running; the logs stay.
        eprintln!("slurm: up failed; stopping what started");
        let _ = stop_all(&layout);
        return Err(err);
    }
    eprintln!("slurm: up; node {host} answers");
    Ok(layout.conf())
}

/// Starts munged (and checks it), slurmctld and slurmd, and waits for the node.
fn start_daemons(layout: &Layout, host: &str) -> Result<(), Error> {
    start_munged(layout)?;
    start(
        layout,
        Daemon::Slurmctld,
        &[OsArg::S("-f"), OsArg::P(layout.conf())],
    )?;
    start(
        layout,
        Daemon::Slurmd,
        &[
            OsArg::S("-f"),
            OsArg::P(layout.conf()),
            OsArg::S("-N"),
            OsArg::S(host),
        ],
    )?;
    wait_for_node(layout)?;
    Ok(())
}

/// Everything slurm.conf depends on.
#[derive(Debug)]
struct Config<'a> {
    dir: &'a Path,
    host: &'a str,
    cpus: usize,
    memory_mb: u64,
    ctld_port: u16,
    slurmd_port: u16,
}

impl Config<'_> {
    fn slurm_conf(&self) -> String {
        let dir = self.dir.display();
        let Config {
            host,
            cpus,
            memory_mb,
            ctld_port,
            slurmd_port,
            ..
        } = self;
        let mut conf = String::new();
        let mut line = |text: String| {
            conf.push_str(&text);
            conf.push('\n');
        };
        line("# Written by `cargo xtask slurm up`; rewritten at each start.".into());
        line("ClusterName=trdr".into());
        // The address in brackets: no name lookup needed, loopback only.
        line(format!("SlurmctldHost={host}(127.0.0.1)"));
        line(format!("SlurmctldPort={ctld_port}"));
        line(format!("SlurmdPort={slurmd_port}"));
        line("SlurmUser=root".into());
        line("SlurmdUser=root".into());
        line("AuthType=auth/munge".into());
        line("CredType=cred/munge".into());
        line(format!("AuthInfo=socket={dir}/munge/munge.socket"));
        line(format!("StateSaveLocation={dir}/state"));
        line(format!("SlurmdSpoolDir={dir}/spool"));
        line(format!("SlurmctldPidFile={dir}/run/slurmctld.pid"));
        line(format!("SlurmdPidFile={dir}/run/slurmd.pid"));
        line(format!("SlurmctldLogFile={dir}/log/slurmctld.log"));
        line(format!("SlurmdLogFile={dir}/log/slurmd.log"));
        // Cgroups do not work in the VMs this runs in.
        line("ProctrackType=proctrack/pgid".into());
        line("TaskPlugin=task/none".into());
        line("JobAcctGatherType=jobacct_gather/none".into());
        line("AccountingStorageType=accounting_storage/none".into());
        line("JobCompType=jobcomp/none".into());
        line("MpiDefault=none".into());
        // Jobs of one CPU share the node.
        line("SelectType=select/cons_tres".into());
        line("SelectTypeParameters=CR_Core".into());
        line("SchedulerType=sched/backfill".into());
        // Schedule a batch job when it is submitted, not up to 3 s later.
        line("SchedulerParameters=batch_sched_delay=0".into());
        // A controller that is down fails commands in seconds, not tens.
        line("MessageTimeout=5".into());
        // TERM, then KILL 5 s later.
        line("KillWait=5".into());
        // `scontrol show job` keeps ended jobs for 5 minutes.
        line("MinJobAge=300".into());
        line("ReturnToService=2".into());
        line(format!(
            "NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN"
        ));
        line("PartitionName=debug Default=YES Nodes=ALL MaxTime=INFINITE State=UP".into());
        conf
    }
}

/// An argument that is text or a path.
#[derive(Debug)]
enum OsArg<'a> {
    S(&'a str),
    P(PathBuf),
}

fn start_munged(layout: &Layout) -> Result<(), Error> {
    let dir = &layout.dir;
    let socket = layout.munge_socket();
    // A socket left by a munged that was killed would make this one refuse to start.
    let _ = fs::remove_file(&socket);
    let arg = |name: &str, path: PathBuf| format!("--{name}={}", path.display());
    start(
        layout,
        Daemon::Munged,
        &[
            OsArg::S("--force"),
            OsArg::S(&arg("socket", socket.clone())),
            OsArg::S(&arg("pid-file", layout.pid_file(Daemon::Munged))),
            OsArg::S(&arg("log-file", layout.log(Daemon::Munged))),
            OsArg::S(&arg("seed-file", dir.join("munge/munged.seed"))),
            OsArg::S(&arg("key-file", PathBuf::from(MUNGE_KEY))),
        ],
    )?;
    // `munge -n | unmunge` over our socket: a credential made and checked.
    let credential = binary("munge")
        .and_then(|munge| run_bounded(Command::new(munge).args(["-n", "-S"]).arg(&socket), None))
        .and_then(|out| checked("munge -n", out))
        .map_err(|err| failed(format!("munge does not work: {err}{}", tails(layout))))?;
    binary("unmunge")
        .and_then(|unmunge| {
            run_bounded(
                Command::new(unmunge).arg("-S").arg(&socket),
                Some(credential.stdout),
            )
        })
        .and_then(|out| checked("unmunge", out))
        .map_err(|err| failed(format!("munge does not work: {err}{}", tails(layout))))?;
    Ok(())
}

/// Starts a daemon (each forks into the background and writes its PID file)
/// and waits for its PID file.
fn start(layout: &Layout, daemon: Daemon, args: &[OsArg<'_>]) -> Result<(), Error> {
    let _ = fs::remove_file(layout.pid_file(daemon));
    let mut command = Command::new(binary(daemon.name()).map_err(failed)?);
    for arg in args {
        match arg {
            OsArg::S(text) => command.arg(text),
            OsArg::P(path) => command.arg(path),
        };
    }
    // Not pipes: a daemon keeping one open would keep us waiting. What it
    // says before it forks goes to its log.
    let log = layout.log(daemon);
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|err| failed(format!("cannot open {}: {err}", log.display())))
    };
    let status = command
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .env("SLURM_CONF", layout.conf())
        .status()
        .map_err(|err| failed(format!("cannot start {}: {err}", daemon.name())))?;
    if !status.success() {
        return Err(failed(format!(
            "{} exited with {status} at start{}",
            daemon.name(),
            tails(layout)
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = daemon.running(layout) {
            eprintln!("slurm: {} started (pid {pid})", daemon.name());
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(failed(format!(
                "{} wrote no PID file {} within 10 s{}",
                daemon.name(),
                layout.pid_file(daemon).display(),
                tails(layout)
            )));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `sinfo`'s state of the one node, e.g. `idle`, `mixed`, `down*`.
fn node_state(layout: &Layout) -> Result<String, String> {
    let out = run_bounded(
        Command::new(binary("sinfo")?)
            .args(["--noheader", "--Node", "--format=%T"])
            .env("SLURM_CONF", layout.conf()),
        None,
    )
    .and_then(|out| checked("sinfo", out))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether a node state means the node answers and takes jobs; a `*`
/// suffix means it does not answer.
fn node_is_up(state: &str) -> bool {
    matches!(state, "idle" | "mixed" | "allocated" | "completing")
}

fn wait_for_node(layout: &Layout) -> Result<(), Error> {
    let deadline = Instant::now() + UP_DEADLINE;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match node_state(layout) {
            Ok(state) if node_is_up(&state) => return Ok(()),
            Ok(state) => last = format!("node state `{state}`"),
            Err(err) => last = err,
        }
        thread::sleep(Duration::from_millis(200));
    }
    Err(failed(format!(
        "the node did not come up within {} s (last: {last}){}",
        UP_DEADLINE.as_secs(),
        tails(layout)
    )))
}

/// The last lines of the daemons' logs, for an error message.
fn tails(layout: &Layout) -> String {
    let mut text = String::new();
    for daemon in Daemon::ALL {
        let path = layout.log(daemon);
        let Ok(log) = fs::read_to_string(&path) else {
            continue;
        };
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        let _ = write!(text, "\n--- last lines of {} ---", path.display());
        for line in tail {
            let _ = write!(text, "\n{line}");
        }
    }
    text
}

/// Two TCP ports free now, for slurmctld and slurmd.
fn free_ports() -> Result<(u16, u16), Error> {
    let bind = || {
        TcpListener::bind(("0.0.0.0", 0))
            .and_then(|listener| Ok((listener.local_addr()?.port(), listener)))
            .map_err(|err| failed(format!("cannot find a free TCP port: {err}")))
    };
    // Both held at once, so the two differ.
    let (first, _a) = bind()?;
    let (second, _b) = bind()?;
    Ok((first, second))
}

fn short_hostname() -> Result<String, Error> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|err| failed(format!("cannot read this machine's hostname: {err}")))?;
    let short = name.trim().split('.').next().unwrap_or_default().to_owned();
    if short.is_empty() {
        return Err(failed("this machine has no hostname"));
    }
    Ok(short)
}

/// A small `RealMemory` (MiB): memory is not a consumable here, and a value
/// above what the machine has would drain the node.
fn real_memory_mb() -> u64 {
    let total_mb = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(1024, |kb| kb / 1024);
    total_mb.clamp(1, 1024)
}

fn is_root() -> bool {
    // The effective UID, the second field of `Uid:`.
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|uid| uid == "0"))
            .unwrap_or(false)
    })
}

/// Where a binary is: `PATH`, then the sbin folders a non-root `PATH` lacks.
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn binary(name: &str) -> Result<PathBuf, String> {
    find_binary(name).ok_or_else(|| {
        format!("`{name}` not found: `cargo xtask slurm up` installs Slurm and munge")
    })
}

fn install_packages() -> Result<(), Error> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, binary)| find_binary(binary).is_none())
        .map(|(package, _)| *package)
        .collect();
    let packages: Vec<&str> = PACKAGES.iter().map(|(package, _)| *package).collect();
    crate::apt::install("slurm", &packages, &missing)
}

fn ensure_munge_key() -> Result<(), Error> {
    if Path::new(MUNGE_KEY).exists() {
        return Ok(());
    }
    eprintln!("slurm: creating {MUNGE_KEY}");
    let mut command = match find_binary("mungekey") {
        Some(mungekey) => {
            let mut command = Command::new(mungekey);
            command.args(["--create", "--keyfile", MUNGE_KEY]);
            command
        }
        None => Command::new(binary("create-munge-key").map_err(failed)?),
    };
    let status = command
        .status()
        .map_err(|err| failed(format!("cannot create {MUNGE_KEY}: {err}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("creating {MUNGE_KEY} failed with {status}")))
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|err| failed(format!("cannot write {}: {err}", path.display())))
}

// ---------------------------------------------------------------------------
// down and status
// ---------------------------------------------------------------------------

fn down(dir: &Path) -> Result<(), Error> {
    let layout = Layout {
        dir: dir.to_path_buf(),
    };
    stop_all(&layout)?;
    eprintln!("slurm: down ({})", dir.display());
    Ok(())
}

/// Cancels the cluster's jobs (slurmd leaves running ones behind when it
/// stops), then stops slurmd, slurmctld and munged.
fn stop_all(layout: &Layout) -> Result<(), Error> {
    if Daemon::Slurmctld.running(layout).is_some() && Daemon::Slurmd.running(layout).is_some() {
        cancel_jobs(layout);
    }
    for daemon in Daemon::ALL.into_iter().rev() {
        stop(layout, daemon)?;
    }
    Ok(())
}

/// Best effort: a cluster that does not answer has its daemons stopped anyway.
fn cancel_jobs(layout: &Layout) {
    let slurm = |name: &str, args: &[&str]| -> Result<Output, String> {
        run_bounded(
            Command::new(binary(name)?)
                .args(args)
                .env("SLURM_CONF", layout.conf()),
            None,
        )
        .and_then(|out| checked(name, out))
    };
    let jobs = || -> Result<String, String> {
        let out = slurm("squeue", &["--noheader", "--format=%i"])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match jobs() {
        Ok(ids) if ids.is_empty() => return,
        Ok(ids) => eprintln!("slurm: cancelling jobs {}", ids.replace('\n', " ")),
        Err(err) => {
            eprintln!("slurm: cannot list jobs ({err}); stopping the daemons anyway");
            return;
        }
    }
    if let Err(err) = slurm("scancel", &["--partition=debug"]) {
        eprintln!("slurm: cancelling jobs failed ({err}); stopping the daemons anyway");
        return;
    }
    let deadline = Instant::now() + JOBS_DEADLINE;
    while Instant::now() < deadline {
        if jobs().is_ok_and(|ids| ids.is_empty()) {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "slurm: jobs still there after {} s; stopping the daemons anyway",
        JOBS_DEADLINE.as_secs()
    );
}

/// TERM, up to [`STOP_DEADLINE`] to exit, then KILL.
fn stop(layout: &Layout, daemon: Daemon) -> Result<(), Error> {
    let Some(pid) = daemon.running(layout) else {
        let _ = fs::remove_file(layout.pid_file(daemon));
        return Ok(());
    };
    let alive = || is_alive_as(pid, daemon.name());
    let signal = |name: &str| {
        let _ = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .stderr(Stdio::null())
            .status();
    };
    signal("TERM");
    let deadline = Instant::now() + STOP_DEADLINE;
    while alive() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        eprintln!(
            "slurm: {} (pid {pid}) still runs {} s after TERM; sending KILL",
            daemon.name(),
            STOP_DEADLINE.as_secs()
        );
        signal("KILL");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            return Err(failed(format!(
                "{} (pid {pid}) survived KILL",
                daemon.name()
            )));
        }
    }
    let _ = fs::remove_file(layout.pid_file(daemon));
    eprintln!("slurm: stopped {} (pid {pid})", daemon.name());
    Ok(())
}

fn status(dir: &Path) -> Result<(), Error> {
    let layout = Layout {
        dir: dir.to_path_buf(),
    };
    println!("state directory {}", dir.display());
    let mut all = true;
    for daemon in Daemon::ALL {
        match daemon.running(&layout) {
            Some(pid) => println!("{:<10} running (pid {pid})", daemon.name()),
            None => {
                all = false;
                println!("{:<10} not running", daemon.name());
            }
        }
    }
    if Daemon::Slurmctld.running(&layout).is_some() {
        match node_state(&layout) {
            Ok(state) => {
                all &= node_is_up(&state);
                println!("node       {state}");
            }
            Err(err) => {
                all = false;
                println!("node       unknown: {err}");
            }
        }
    }
    if all {
        println!("export SLURM_CONF={}", layout.conf().display());
        Ok(())
    } else {
        Err(Error::Failed {
            message: "the cluster is not up (`cargo xtask slurm up` starts it)".into(),
            code: Some(1),
        })
    }
}

// ---------------------------------------------------------------------------
// Commands under a deadline.
// ---------------------------------------------------------------------------

/// Runs `command` to its end, or kills it after [`COMMAND_TIMEOUT`]; `input`
/// is written to its stdin.
fn run_bounded(command: &mut Command, input: Option<Vec<u8>>) -> Result<Output, String> {
    let shown = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run {shown}: {err}"))?;
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        thread::spawn(move || {
            use std::io::Write as _;
            let _ = stdin.write_all(&input);
        });
    }
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut buffer = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buffer);
            }
            buffer
        })
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{shown} did not finish within {} s",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
            Err(err) => return Err(format!("waiting for {shown}: {err}")),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `out` when its command succeeded, else an error with its stderr.
fn checked(name: &str, out: Output) -> Result<Output, String> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{name}` exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_the_dir_flag_parse() {
        assert_eq!(parse(&["up"]).unwrap(), (Action::Up, None));
        assert_eq!(
            parse(&["down", "--dir", "/tmp/s"]).unwrap(),
            (Action::Down, Some("/tmp/s"))
        );
        assert_eq!(parse(&["status"]).unwrap(), (Action::Status, None));
        let message = |args: &[&str]| match parse(args) {
            Err(Error::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        };
        assert_eq!(message(&[]), "`slurm` needs `up`, `down` or `status`");
        assert_eq!(
            message(&["start"]),
            "unknown slurm command `start`; commands: up, down, status"
        );
        assert_eq!(
            message(&["up", "--port", "1"]),
            "unexpected `--port`; the only flag is --dir DIR"
        );
        assert!(matches!(parse(&["up", "--dir"]), Err(Error::Usage(_))));
    }

    #[test]
    fn the_dir_flag_wins_and_is_made_absolute() {
        let root = Path::new("/work/repo");
        assert_eq!(
            state_dir(root, Some("/srv/slurm")).unwrap(),
            Path::new("/srv/slurm")
        );
        let relative = state_dir(root, Some("s")).unwrap();
        assert!(relative.is_absolute() && relative.ends_with("s"));
    }

    #[test]
    fn the_config_keeps_everything_under_the_state_dir() {
        let config = Config {
            dir: Path::new("/w/target/slurm"),
            host: "box",
            cpus: 4,
            memory_mb: 1024,
            ctld_port: 40001,
            slurmd_port: 40002,
        };
        let conf = config.slurm_conf();
        for line in [
            "SlurmctldHost=box(127.0.0.1)",
            "SlurmctldPort=40001",
            "SlurmdPort=40002",
            "AuthInfo=socket=/w/target/slurm/munge/munge.socket",
            "StateSaveLocation=/w/target/slurm/state",
            "SlurmdSpoolDir=/w/target/slurm/spool",
            "SlurmctldPidFile=/w/target/slurm/run/slurmctld.pid",
            "SlurmdLogFile=/w/target/slurm/log/slurmd.log",
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "SelectTypeParameters=CR_Core",
            "KillWait=5",
            "MinJobAge=300",
            "NodeName=box NodeAddr=127.0.0.1 CPUs=4 RealMemory=1024 State=UNKNOWN",
            "PartitionName=debug Default=YES Nodes=ALL MaxTime=INFINITE State=UP",
        ] {
            assert!(
                conf.lines().any(|l| l == line),
                "missing `{line}` in\n{conf}"
            );
        }
        // The paths Layout uses are the ones the config names.
        let layout = Layout {
            dir: PathBuf::from("/w/target/slurm"),
        };
        for daemon in [Daemon::Slurmctld, Daemon::Slurmd] {
            assert!(conf.contains(&layout.pid_file(daemon).display().to_string()));
            assert!(conf.contains(&layout.log(daemon).display().to_string()));
        }
        assert!(conf.contains(&layout.munge_socket().display().to_string()));
    }

    #[test]
    fn node_states_that_take_jobs_are_up() {
        for state in ["idle", "mixed", "allocated", "completing"] {
            assert!(node_is_up(state), "{state}");
        }
        for state in ["idle*", "down*", "drained", "unknown", ""] {
            assert!(!node_is_up(state), "{state}");
        }
    }

    #[test]
    fn this_process_is_alive_under_its_own_name_only() {
        let pid = std::process::id();
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert!(is_alive_as(pid, comm.trim()));
        assert!(!is_alive_as(pid, "slurmctld"));
    }
}
