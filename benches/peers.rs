//! Side by side with the established SMS daemons (issue 7): smsgate,
//! gammu-smsd and SMSTools3, each in its default and a tuned configuration,
//! each on its own instant simulated modem of one `smsgate sim`, get the
//! same workload; a raw AT loop on another modem of the same simulator
//! measures what the pipe itself allows.
//!
//! `bash bench/peers.sh [--runs N]` (or `cargo bench --bench peers -- ...`).
//! Not a criterion benchmark: every figure is taken from outside, the way an
//! operator would see it (the simulator's outbox, the daemon's output, its
//! `/proc` entries). `docs/benchmarks.md` explains each column and holds the
//! latest table; every run's raw figures land in `bench/results/`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use smsgate::pdu::{encode_submit, Address, SubmitOptions};
use smsgate::sim::dte::Dte;

/// The outside number every outbound message goes to (the simulated
/// network records it in its outbox): a number of Ofcom's range for drama
/// (07700 900xxx), valid in the numbering plan as real recipients are (a
/// +1 555 number took smsgate's "unknown to the numbering plan" path, a
/// warning per message).
const TO: &str = "+447700900123";
/// The sender of every injected inbound message.
const FROM: &str = "+15557654321";
/// The smsgate binary the bench drives (built by cargo with the bench).
const BIN: &str = env!("CARGO_BIN_EXE_smsgate");

/// Command-line knobs; `--help` lists them.
#[derive(Debug, Clone)]
struct Args {
    runs: usize,
    outbound: usize,
    inbound: usize,
    /// Pause between two injected inbound messages.
    inject_every: Duration,
    /// Bus connections smsgate's messages are submitted over, in parallel.
    clients: usize,
    /// Most time one phase (outbound or inbound) of one daemon may take.
    phase_limit: Duration,
    only: Option<Vec<String>>,
    results: PathBuf,
    /// Attach `perf record -g` to the durable smsgate daemon of the first
    /// run (profile in the results directory).
    perf: bool,
    /// Attach `perf trace -s` instead: every system call's count and time.
    perf_trace: bool,
    /// The smsgate binary the smsgate rows run (default: the one cargo
    /// built with the bench), to compare two builds with the same bench.
    smsgate: PathBuf,
}

const USAGE: &str = "usage: cargo bench --bench peers -- [--runs N] [--outbound N] [--inbound N] \
[--inject-every-ms MS] [--clients N] [--phase-limit-secs S] [--only raw,smsgate,gammu,smstools] \
[--results DIR] [--perf | --perf-trace] [--smsgate PATH]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        runs: 3,
        outbound: 200,
        inbound: 100,
        inject_every: Duration::from_millis(50),
        clients: 4,
        phase_limit: Duration::from_secs(400),
        only: None,
        results: Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results"),
        perf: false,
        perf_trace: false,
        smsgate: PathBuf::from(BIN),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let num = |v: String, name: &str| -> Result<u64, String> {
            v.parse::<u64>().map_err(|e| format!("{name}: {v:?}: {e}"))
        };
        match flag.as_str() {
            // cargo bench passes --bench to every harness = false target.
            "--bench" => {}
            "--runs" => a.runs = num(value("--runs")?, "--runs")?.clamp(1, 99) as usize,
            "--outbound" => {
                a.outbound = num(value("--outbound")?, "--outbound")?.clamp(1, 10_000) as usize
            }
            "--inbound" => {
                a.inbound = num(value("--inbound")?, "--inbound")?.clamp(1, 10_000) as usize
            }
            "--inject-every-ms" => {
                a.inject_every = Duration::from_millis(num(value(&flag)?, &flag)?.min(10_000))
            }
            "--clients" => a.clients = num(value(&flag)?, &flag)?.clamp(1, 256) as usize,
            "--phase-limit-secs" => {
                a.phase_limit = Duration::from_secs(num(value(&flag)?, &flag)?.clamp(10, 3600))
            }
            "--only" => a.only = Some(value(&flag)?.split(',').map(str::to_string).collect()),
            "--results" => a.results = PathBuf::from(value(&flag)?),
            "--perf" => a.perf = true,
            "--perf-trace" => a.perf_trace = true,
            "--smsgate" => a.smsgate = PathBuf::from(value(&flag)?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // target without it, and must not start a quarter-hour benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "peers bench: skipped (run `bash bench/peers.sh` or `cargo bench --bench peers`)"
        );
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peers bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which daemons and configurations take part, in table order.
fn contestants(args: &Args) -> Vec<(Kind, Cfg)> {
    let all = [
        (Kind::Smsgate, Cfg::Default),
        (Kind::Smsgate, Cfg::Tuned),
        (Kind::Gammu, Cfg::Default),
        (Kind::Gammu, Cfg::Tuned),
        (Kind::Smstools, Cfg::Default),
        (Kind::Smstools, Cfg::Tuned),
    ];
    all.into_iter()
        .filter(|(k, _)| wanted(args, k.id()))
        .collect()
}

fn wanted(args: &Args, id: &str) -> bool {
    args.only
        .as_ref()
        .map_or(true, |o| o.iter().any(|w| w == id))
}

fn bench(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .map_err(|e| e.to_string())?;
    let out_dir = args.results.join(&stamp);
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let machine = machine();
    eprintln!(
        "peers bench: {} run(s), results in {}",
        args.runs,
        out_dir.display()
    );
    eprintln!("machine: {machine}");

    let who = contestants(args);
    let mut runs: Vec<Vec<Measure>> = Vec::new();
    let mut raws: Vec<Option<f64>> = Vec::new();
    for run in 0..args.runs {
        let work = tempfile::Builder::new()
            .prefix("smsgate-peersbench-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        // Modem 0: the raw AT loop; modem 1 + i: contestant i.
        let sim = Sim::start(work.path(), 1 + who.len())?;
        let raw = if wanted(args, "raw") {
            Some(raw_loop(&sim.link(0), args.outbound, &tag(run, "raw")))
        } else {
            None
        };
        let raw_rate = match &raw {
            Some(Ok(r)) => Some(*r),
            Some(Err(e)) => {
                eprintln!("run {run}: raw AT loop failed: {e}");
                None
            }
            None => None,
        };
        if let Some(r) = raw_rate {
            eprintln!("run {run}: raw AT loop {r:.0} msg/s");
        }
        raws.push(raw_rate);
        let mut measures: Vec<Option<Measure>> = vec![None; who.len()];
        // smsgate alone (it is the one that uses CPU); the peers together:
        // their pace is set by their own sleeps, not by the CPU.
        let (alone, together): (Vec<_>, Vec<_>) = who
            .iter()
            .enumerate()
            .partition(|(_, (k, _))| *k == Kind::Smsgate);
        for (i, (kind, cfg)) in alone {
            let m = contest(args, &sim, 1 + i, *kind, *cfg, work.path(), run, &out_dir);
            eprintln!("run {run}: {}", m.line());
            measures[i] = Some(m);
        }
        thread::scope(|s| {
            let handles: Vec<_> = together
                .iter()
                .map(|(i, (kind, cfg))| {
                    let sim = &sim;
                    let work = work.path();
                    let out_dir = &out_dir;
                    let (i, kind, cfg) = (*i, *kind, *cfg);
                    (
                        i,
                        s.spawn(move || contest(args, sim, 1 + i, kind, cfg, work, run, out_dir)),
                    )
                })
                .collect();
            for (i, h) in handles {
                let m = h.join().unwrap_or_else(|_| {
                    let (kind, cfg) = who[i];
                    Measure::failed(kind, cfg, "the bench thread panicked".into())
                });
                eprintln!("run {run}: {}", m.line());
                measures[i] = Some(m);
            }
        });
        drop(sim);
        let measures: Vec<Measure> = measures.into_iter().flatten().collect();
        let raw_json = json!({
            "run": run,
            "machine": machine,
            "workload": {"outbound": args.outbound, "inbound": args.inbound,
                         "inject_every_ms": args.inject_every.as_millis() as u64,
                         "smsgate_clients": args.clients},
            "raw_at_loop_msg_s": raw_rate,
            "raw_at_loop_error": raw.as_ref().and_then(|r| r.as_ref().err()),
            "daemons": measures.iter().map(Measure::to_json).collect::<Vec<_>>(),
        });
        let path = out_dir.join(format!("run-{run}.json"));
        let text = serde_json::to_string_pretty(&raw_json).map_err(|e| e.to_string())?;
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        runs.push(measures);
    }

    let table = render(args, &who, &runs, &raws, &machine, started.elapsed());
    println!("{table}");
    let path = out_dir.join("table.md");
    fs::write(&path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "peers bench: done in {:.0} s; table in {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}

/// A unique text prefix for one run and one daemon, so messages never mix.
fn tag(run: usize, who: &str) -> String {
    format!("r{run} {who} {:x}", std::process::id())
}

// ---------------------------------------------------------------------------
// The contestants

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Smsgate,
    Gammu,
    Smstools,
}

impl Kind {
    fn id(self) -> &'static str {
        match self {
            Kind::Smsgate => "smsgate",
            Kind::Gammu => "gammu",
            Kind::Smstools => "smstools",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Smsgate => "smsgate",
            Kind::Gammu => "gammu-smsd",
            Kind::Smstools => "SMSTools3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cfg {
    Default,
    Tuned,
}

impl Cfg {
    fn id(self) -> &'static str {
        match self {
            Cfg::Default => "default",
            Cfg::Tuned => "tuned",
        }
    }

    /// What the table calls it. smsgate has nothing to tune: its second
    /// row trades durability for speed, to show what the fsyncs cost.
    fn label(self, kind: Kind) -> &'static str {
        match (kind, self) {
            (Kind::Smsgate, Cfg::Tuned) => "synchronous=normal",
            _ => self.id(),
        }
    }
}

/// One daemon under test: how to start it, hand it messages, and see what
/// it delivered.
trait Daemon {
    /// Starts the daemon; returns once it accepts messages.
    fn spawn(&mut self) -> Result<(), String>;
    /// Hands over messages to `TO`; returns once every one is accepted
    /// (smsgate: the bus said `ok`; peers: the spool file is in place).
    fn submit(&mut self, texts: &[String]) -> Result<(), String>;
    /// Inbound messages delivered so far: text and when it was delivered.
    fn delivered(&mut self) -> Vec<(String, SystemTime)>;
    /// The daemon's process group (all its processes).
    fn pgid(&self) -> Option<i32>;
    /// Whether the daemon is still running (else why not).
    fn alive(&mut self) -> Result<(), String>;
}

/// The figures of one daemon in one run. `None`: not measured (see `note`).
#[derive(Debug, Clone, Default)]
struct Measure {
    daemon: &'static str,
    config: &'static str,
    outbound_msg_s: Option<f64>,
    inbound_p50_ms: Option<f64>,
    inbound_p99_ms: Option<f64>,
    cpu_ms_per_msg: Option<f64>,
    rss_mb: Option<f64>,
    first_send_s: Option<f64>,
    sent: usize,
    received: usize,
    latencies_ms: Vec<f64>,
    note: Option<String>,
}

impl Measure {
    fn failed(kind: Kind, cfg: Cfg, why: String) -> Measure {
        Measure {
            daemon: kind.label(),
            config: cfg.label(kind),
            note: Some(why),
            ..Measure::default()
        }
    }

    fn line(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        format!(
            "{} {}: {} msg/s, p50 {} ms, p99 {} ms, {} CPU ms/msg, {} MB, first send {} s{}",
            self.daemon,
            self.config,
            f(self.outbound_msg_s),
            f(self.inbound_p50_ms),
            f(self.inbound_p99_ms),
            f(self.cpu_ms_per_msg),
            f(self.rss_mb),
            f(self.first_send_s),
            self.note
                .as_ref()
                .map_or(String::new(), |n| format!(" ({n})"))
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "daemon": self.daemon, "config": self.config,
            "outbound_msg_s": self.outbound_msg_s,
            "inbound_p50_ms": self.inbound_p50_ms, "inbound_p99_ms": self.inbound_p99_ms,
            "cpu_ms_per_msg": self.cpu_ms_per_msg, "peak_rss_mb": self.rss_mb,
            "first_send_s": self.first_send_s,
            "sent": self.sent, "received": self.received,
            "inbound_latencies_ms": self.latencies_ms.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>(),
            "note": self.note,
        })
    }
}

/// Runs the whole workload against one daemon on modem `modem`.
#[allow(clippy::too_many_arguments)]
fn contest(
    args: &Args,
    sim: &Sim,
    modem: usize,
    kind: Kind,
    cfg: Cfg,
    work: &Path,
    run: usize,
    out_dir: &Path,
) -> Measure {
    let dir = work.join(format!("{}-{}", kind.id(), cfg.id()));
    let made: Result<Box<dyn Daemon>, String> = fs::create_dir_all(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|()| match kind {
            Kind::Smsgate => Smsgate::new(&dir, &sim.link(modem), cfg, args, run, out_dir)
                .map(|d| Box::new(d) as Box<dyn Daemon>),
            Kind::Gammu => {
                Gammu::new(&dir, &sim.link(modem), cfg).map(|d| Box::new(d) as Box<dyn Daemon>)
            }
            Kind::Smstools => {
                Smstools::new(&dir, &sim.link(modem), cfg).map(|d| Box::new(d) as Box<dyn Daemon>)
            }
        });
    let mut daemon = match made {
        Ok(d) => d,
        Err(e) => return Measure::failed(kind, cfg, e),
    };
    let mut m = Measure::failed(kind, cfg, String::new());
    m.note = None;
    if let Err(e) = workload(
        args,
        sim,
        modem,
        &mut *daemon,
        &tag(run, kind.id()),
        cfg,
        &mut m,
    ) {
        m.note = Some(e);
    }
    // Stopped by dropping the box (process group: SIGTERM, then SIGKILL).
    drop(daemon);
    m
}

/// Time to first send, then the outbound burst, then the inbound series;
/// fills `m` as it goes so that a failure late keeps the early figures.
fn workload(
    args: &Args,
    sim: &Sim,
    modem: usize,
    daemon: &mut dyn Daemon,
    tag: &str,
    cfg: Cfg,
    m: &mut Measure,
) -> Result<(), String> {
    let tag = format!("{tag} {}", cfg.id());
    let mut ctl = SimCtl::connect(&sim.socket())?;
    let t_spawn = unix_now();
    daemon.spawn()?;
    let first = format!("first {tag}");
    daemon.submit(std::slice::from_ref(&first))?;
    let deadline = Instant::now() + args.phase_limit;
    let sent_first = wait(
        deadline,
        "the first message to leave the modem",
        daemon,
        |_| Ok(outbox_times(&mut ctl, modem, &first)?.first().copied()),
    )?;
    m.first_send_s = Some(sent_first - t_spawn);

    // Outbound: accepted (from the first submission) -> all left the modem,
    // as the simulated network timestamps each message it receives.
    let prefix = format!("out {tag} ");
    let texts: Vec<String> = (0..args.outbound).map(|i| format!("{prefix}{i}")).collect();
    let t0 = unix_now();
    daemon.submit(&texts)?;
    let deadline = Instant::now() + args.phase_limit;
    let mut got = 0;
    let times = wait(
        deadline,
        "every outbound message to leave the modem",
        daemon,
        |_| {
            let t = outbox_times(&mut ctl, modem, &prefix)?;
            got = t.len();
            Ok((t.len() >= texts.len()).then_some(t))
        },
    )
    .map_err(|e| format!("{e} ({got}/{} left)", texts.len()))?;
    m.sent = times.len();
    let last = times.iter().copied().fold(f64::MIN, f64::max);
    m.outbound_msg_s = Some(texts.len() as f64 / (last - t0).max(1e-6));

    // Inbound: injected one by one at a steady pace, latency to delivery.
    let mut injected: BTreeMap<String, f64> = BTreeMap::new();
    for i in 0..args.inbound {
        let text = format!("in {tag} {i}");
        let at = unix_now();
        ctl.request(&json!({"op":"inject","modem":modem,"from":FROM,"text":text}))?;
        injected.insert(text, at);
        thread::sleep(args.inject_every);
    }
    let deadline = Instant::now() + args.phase_limit;
    let mut latencies: BTreeMap<String, f64> = BTreeMap::new();
    let done = wait(
        deadline,
        "every inbound message to be delivered",
        daemon,
        |d| {
            for (text, when) in d.delivered() {
                if let Some(at) = injected.get(&text) {
                    latencies.insert(text, (secs(when) - at) * 1000.0);
                }
            }
            Ok((latencies.len() >= injected.len()).then_some(()))
        },
    );
    m.received = latencies.len();
    let mut l: Vec<f64> = latencies.into_values().collect();
    l.sort_by(f64::total_cmp);
    // Percentiles only over a complete series: a lost message is no latency.
    if done.is_ok() {
        m.inbound_p50_ms = percentile(&l, 50.0);
        m.inbound_p99_ms = percentile(&l, 99.0);
    }
    m.latencies_ms = l;

    // Resources over the daemon's whole life so far, per message handled.
    if let Some(pgid) = daemon.pgid() {
        let u = group_usage(pgid);
        let handled = (1 + m.sent + m.received) as f64;
        m.cpu_ms_per_msg = Some(u.cpu_s * 1000.0 / handled);
        m.rss_mb = Some(u.hwm_kb as f64 / 1024.0);
    }
    done.map_err(|e| format!("{e} ({}/{} delivered)", m.received, args.inbound))
}

/// Polls `probe` every 100 ms until it yields a value, the daemon dies or
/// `deadline` passes.
fn wait<T>(
    deadline: Instant,
    what: &str,
    daemon: &mut dyn Daemon,
    mut probe: impl FnMut(&mut dyn Daemon) -> Result<Option<T>, String>,
) -> Result<T, String> {
    loop {
        if let Some(v) = probe(daemon)? {
            return Ok(v);
        }
        daemon.alive()?;
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn unix_now() -> f64 {
    secs(SystemTime::now())
}

/// The network's receive times (unix seconds) of the messages modem
/// `modem` sent whose text starts with `prefix`.
fn outbox_times(ctl: &mut SimCtl, modem: usize, prefix: &str) -> Result<Vec<f64>, String> {
    let list = ctl.request(&json!({"op":"outbox"}))?;
    let mut out = Vec::new();
    for e in list.as_array().into_iter().flatten() {
        let mine = e.get("modem").and_then(Value::as_u64) == Some(modem as u64)
            && e.get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with(prefix));
        if !mine {
            continue;
        }
        let time = e.get("time").and_then(Value::as_str).unwrap_or_default();
        let t = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
            .map_err(|err| format!("outbox time {time:?}: {err}"))?;
        out.push(t.unix_timestamp_nanos() as f64 / 1e9);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Processes

/// A child in its own process group (SMSTools3 forks one process per
/// modem), stopped as a group on drop: SIGTERM, up to 10 s, then SIGKILL.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, String> {
        let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.into(),
            child,
        })
    }

    fn pgid(&self) -> Option<i32> {
        i32::try_from(self.child.id()).ok()
    }

    fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Err(format!("{} exited early ({st})", self.name)),
            _ => Ok(()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(pgid) = self.pgid() else { return };
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// CPU time and peak memory of every process of a group.
#[derive(Debug, Default)]
struct Usage {
    /// utime + stime (+ the reaped children's) of every live process, s.
    cpu_s: f64,
    /// Sum of VmHWM (peak resident set) of every live process, KiB.
    hwm_kb: u64,
}

/// Reads `/proc/<pid>/stat` (proc(5): fields 5 pgrp, 14-17 utime, stime,
/// cutime, cstime in clock ticks) and `/proc/<pid>/status` (VmHWM) of every
/// process whose group is `pgid`.
fn group_usage(pgid: i32) -> Usage {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let mut u = Usage::default();
    let Ok(entries) = fs::read_dir("/proc") else {
        return u;
    };
    for e in entries.flatten() {
        let pid = e.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields start
        // after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        if field(5) != Some(pgid as u64) {
            continue;
        }
        let ticks: u64 = [14, 15, 16, 17].iter().filter_map(|&n| field(n)).sum();
        u.cpu_s += ticks as f64 / tick;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        u.hwm_kb += status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    u
}

// ---------------------------------------------------------------------------
// The simulator

/// A running `smsgate sim --latency 0ms` (instant modems).
struct Sim {
    _proc: Proc,
    dir: PathBuf,
}

impl Sim {
    fn start(work: &Path, modems: usize) -> Result<Sim, String> {
        let dir = work.join("sim");
        let mut cmd = Command::new(BIN);
        cmd.arg("sim")
            .arg("--dir")
            .arg(&dir)
            .args(["--modems", &modems.to_string(), "--latency", "0ms"])
            .env_remove("SMSGATE_LOG");
        let log = work.join("sim.log");
        let errlog = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(errlog)
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start smsgate sim: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let proc = Proc {
            name: "smsgate sim".into(),
            child,
        };
        let (tx, rx) = mpsc::channel();
        // Drain stdout for the whole run: the simulator must never block.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains("\"ready\":true") => break,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!("smsgate sim exited; see {}", log.display()))
                }
            }
            if Instant::now() > deadline {
                return Err("smsgate sim printed no ready line in 30 s".into());
            }
        }
        Ok(Sim { _proc: proc, dir })
    }

    fn link(&self, k: usize) -> PathBuf {
        self.dir.join(format!("modem{k}"))
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("sim.sock")
    }
}

/// One connection to the simulator's control socket (JSON Lines).
struct SimCtl {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl SimCtl {
    fn connect(path: &Path) -> Result<SimCtl, String> {
        let s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let writer = s.try_clone().map_err(|e| e.to_string())?;
        Ok(SimCtl {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Sends one request, returns its `result`.
    fn request(&mut self, req: &Value) -> Result<Value, String> {
        writeln!(self.writer, "{req}").map_err(|e| format!("sim control: {e}"))?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("sim control: {e}"))?;
        let v: Value =
            serde_json::from_str(&line).map_err(|e| format!("sim control: {e}: {line:?}"))?;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(v.get("result").cloned().unwrap_or(Value::Null))
        } else {
            Err(format!("sim control {}: {}", req["op"], v["error"]))
        }
    }
}

// ---------------------------------------------------------------------------
// The raw AT loop: what the pipe itself allows

/// `AT+CMGS=<len>`, wait for `> `, PDU + Ctrl-Z, wait for `OK`, `n` times
/// (TS 27.005 §3.5.1): no store, no bus. Returns messages per second.
fn raw_loop(link: &Path, n: usize, tag: &str) -> Result<f64, String> {
    let wait = Duration::from_secs(10);
    let mut dte = Dte::open(link).map_err(|e| e.to_string())?;
    for cmd in ["ATE0", "AT+CMGF=0"] {
        let r = dte.at(cmd, wait).map_err(|e| format!("{cmd}: {e}"))?;
        if !r.contains("OK") {
            return Err(format!("{cmd}: {r:?}"));
        }
    }
    let to = Address::parse_number(TO)?;
    // Encoded beforehand: the loop measures the pipe, not the encoder.
    let pdus = (0..n)
        .map(|i| {
            let p = encode_submit(&to, &format!("raw {tag} {i}"), &SubmitOptions::default())
                .map_err(|e| e.to_string())?;
            p.into_iter().next().ok_or("no PDU".to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let start = Instant::now();
    for p in &pdus {
        let r = dte
            .cmgs(&p.hex(), p.tpdu_len, wait)
            .map_err(|e| e.to_string())?;
        if !r.contains("OK") {
            return Err(format!("AT+CMGS answered {r:?}"));
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64().max(1e-9))
}

// ---------------------------------------------------------------------------
// smsgate

/// `smsgate run` with one `[[modem]]` (the sim link), default settings
/// (`synchronous = "full"`: every accepted message is durable), driven over
/// the bus socket.
struct Smsgate {
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    clients: usize,
    proc: Option<Proc>,
    /// `perf record` or `perf trace` attached to the daemon, where its
    /// data goes, and which of the two.
    perf: Option<Proc>,
    perf_out: Option<PathBuf>,
    perf_trace: bool,
    /// The daemon binary (`--smsgate`).
    bin: PathBuf,
    inbound: Arc<Mutex<Vec<(String, SystemTime)>>>,
}

impl Smsgate {
    fn new(
        dir: &Path,
        link: &Path,
        cfg: Cfg,
        args: &Args,
        run: usize,
        out_dir: &Path,
    ) -> Result<Smsgate, String> {
        let socket = dir.join("smsgate.sock");
        let config = dir.join("smsgate.toml");
        // Default: `synchronous = "full"`, every accepted message survives
        // power loss. The other row: "normal" (survives a crash of the
        // process, not of the machine).
        let sync = match cfg {
            Cfg::Default => "full",
            Cfg::Tuned => "normal",
        };
        // `[privacy] policy = "open"`: the inbound phase measures the relay,
        // not the consent flow (under the default "opt-in" a stranger's
        // messages are held, never reach the bus, and the phase times out).
        let text = format!(
            "[bus]\nsocket = \"{}\"\n[store]\npath = \"{}\"\nsynchronous = \"{sync}\"\n\
             [privacy]\npolicy = \"open\"\n\
             [discovery]\nenabled = false\n[[modem]]\nport = \"{}\"\nname = \"bench\"\n",
            socket.display(),
            dir.join("db/smsgate.db").display(),
            link.display()
        );
        fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        Ok(Smsgate {
            dir: dir.to_path_buf(),
            config,
            socket,
            clients: args.clients,
            proc: None,
            perf: None,
            perf_trace: args.perf_trace,
            bin: args.smsgate.clone(),
            // One profile is enough: the first run's.
            perf_out: ((args.perf || args.perf_trace) && run == 0 && cfg == Cfg::Default)
                .then(|| out_dir.join("smsgate.perf.data")),
            inbound: Arc::default(),
        })
    }

    fn connect(&self) -> Result<(BufReader<UnixStream>, UnixStream), String> {
        let s = UnixStream::connect(&self.socket)
            .map_err(|e| format!("{}: {e}", self.socket.display()))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let w = s.try_clone().map_err(|e| e.to_string())?;
        Ok((BufReader::new(s), w))
    }
}

/// One request on the bus, its reply (protocol v1, docs/protocol.md).
fn bus_request(
    r: &mut BufReader<UnixStream>,
    w: &mut UnixStream,
    req: &Value,
) -> Result<Value, String> {
    writeln!(w, "{req}").map_err(|e| format!("bus: {e}"))?;
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("bus: {e}"))?;
    let v: Value = serde_json::from_str(&line).map_err(|e| format!("bus: {e}: {line:?}"))?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v)
    } else {
        Err(format!("bus {}: {}", req["op"], v["error"]))
    }
}

impl Daemon for Smsgate {
    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("SMSGATE_LOG");
        let proc = Proc::spawn("smsgate run", cmd, &self.dir.join("smsgate.log"))?;
        let pid = proc.pgid();
        self.proc = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut r, mut w) = loop {
            if let Ok(c) = self.connect() {
                break c;
            }
            self.alive()?;
            if Instant::now() > deadline {
                return Err("smsgate's socket did not come up in 30 s".into());
            }
            thread::sleep(Duration::from_millis(2));
        };
        if let (Some(out), Some(pid)) = (&self.perf_out, pid) {
            // On-CPU samples with call graphs, or every system call's count
            // and time (where the daemon waits: fsync, the tty). Not both:
            // tracing every call distorts the samples.
            let mut cmd = Command::new("perf");
            if self.perf_trace {
                cmd.args(["trace", "-s", "-o"])
                    .arg(out.with_extension("trace.txt"));
            } else {
                cmd.args(["record", "-g", "-F", "999", "-o"]).arg(out);
            }
            cmd.args(["-p", &pid.to_string()]);
            self.perf = Some(Proc::spawn("perf", cmd, &self.dir.join("perf.log"))?);
            // perf needs a moment to attach before the workload starts.
            thread::sleep(Duration::from_millis(500));
        }
        // Inbound messages arrive as `inbound` events on a subscription.
        bus_request(
            &mut r,
            &mut w,
            &json!({"op":"subscribe","events":["inbound"]}),
        )?;
        let _ = r.get_ref().set_read_timeout(None);
        let sink = self.inbound.clone();
        thread::spawn(move || {
            // Ends when the daemon closes the connection.
            let _keep_open = w;
            for line in r.lines() {
                let Ok(line) = line else { break };
                let now = SystemTime::now();
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v.get("event").and_then(Value::as_str) == Some("inbound") {
                    let text = v.get("text").and_then(Value::as_str).unwrap_or_default();
                    if let Ok(mut s) = sink.lock() {
                        s.push((text.to_string(), now));
                    }
                }
            }
        });
        Ok(())
    }

    fn submit(&mut self, texts: &[String]) -> Result<(), String> {
        let chunks: Vec<Vec<String>> = (0..self.clients)
            .map(|c| {
                texts
                    .iter()
                    .skip(c)
                    .step_by(self.clients)
                    .cloned()
                    .collect()
            })
            .filter(|c: &Vec<String>| !c.is_empty())
            .collect();
        let this = &*self;
        thread::scope(|s| {
            let hs: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    s.spawn(move || -> Result<(), String> {
                        let (mut r, mut w) = this.connect()?;
                        for text in chunk {
                            bus_request(&mut r, &mut w, &json!({"op":"send","to":TO,"text":text}))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("client thread panicked".into()))
                })
                .collect::<Result<Vec<()>, String>>()
        })?;
        Ok(())
    }

    fn delivered(&mut self) -> Vec<(String, SystemTime)> {
        self.inbound.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn pgid(&self) -> Option<i32> {
        self.proc.as_ref().and_then(Proc::pgid)
    }

    fn alive(&mut self) -> Result<(), String> {
        self.proc.as_mut().map_or(Ok(()), Proc::alive)
    }
}

impl Drop for Smsgate {
    fn drop(&mut self) {
        // perf first, with SIGINT (as Ctrl-C): only then does it write its
        // summary; the drop's SIGTERM follows.
        if let Some(mut perf) = self.perf.take() {
            if let Some(pgid) = perf.pgid() {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGINT);
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(10)
                    && matches!(perf.child.try_wait(), Ok(None))
                {
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
        self.proc.take();
    }
}

// ---------------------------------------------------------------------------
// The peers

/// The corpus, as tests/common/mod.rs finds it: `$SMSGATE_CORPUS`, else
/// `../shared/corpus` beside the crate.
fn corpus() -> Result<PathBuf, String> {
    let dir = std::env::var_os("SMSGATE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("peers/configs").is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "corpus not found at {} (set SMSGATE_CORPUS)",
            dir.display()
        ))
    }
}

/// A program in `PATH` or the sbin directories (Debian puts `smsd` in
/// `/usr/sbin`).
fn program(name: &str) -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{name}` is not installed (bash bench/peers.sh installs it)"))
}

/// A recorded configuration with its paths pointed at `work` and the modem
/// at `link`, with `set` keys replaced (or added) in `section` (`None`: the
/// global part before the first `[header]`), and the directories it names
/// created.
fn peer_config(
    name: &str,
    link: &Path,
    work: &Path,
    section: Option<&str>,
    set: &[(&str, &str)],
) -> Result<String, String> {
    let path = corpus()?.join("peers/configs").join(name);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text
        .replace("$WORKDIR/ttyFAKE2", &link.to_string_lossy())
        .replace("$WORKDIR", &work.to_string_lossy());
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut placed = false;
    let place = |out: &mut Vec<String>| out.extend(set.iter().map(|(k, v)| format!("{k} = {v}")));
    if section.is_none() {
        place(&mut out);
        placed = true;
    }
    for line in text.lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = Some(h.trim().to_string());
            out.push(line.to_string());
            if !placed && section.is_some_and(|s| s.eq_ignore_ascii_case(h.trim())) {
                place(&mut out);
                placed = true;
            }
            continue;
        }
        let key = t.split_once('=').map(|(k, _)| k.trim());
        let in_section = match (section, &current) {
            (None, None) => true,
            (Some(s), Some(c)) => s.eq_ignore_ascii_case(c),
            _ => false,
        };
        // Ours replace the recorded ones (placed at the top of the section).
        if in_section && key.is_some_and(|k| set.iter().any(|(s, _)| s.eq_ignore_ascii_case(k))) {
            continue;
        }
        // Spool directories (`...path = DIR/` and SMSTools3's bare names)
        // must exist; log and pid files need their parent.
        if let Some((k, v)) = t.split_once('=') {
            let (k, v) = (k.trim().to_ascii_lowercase(), Path::new(v.trim()));
            if v.starts_with(work) {
                let dir_keys = ["outgoing", "checked", "failed", "incoming", "sent"];
                let is_dir = k.ends_with("path") || dir_keys.contains(&k.as_str());
                let d = if is_dir { Some(v) } else { v.parent() };
                if let Some(d) = d {
                    fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
                }
            }
        }
        out.push(line.to_string());
    }
    if !placed {
        return Err(format!("{name}: no [{}] section", section.unwrap_or("")));
    }
    Ok(out.join("\n") + "\n")
}

/// Files under `dir` (not recursive) that appeared since the last call,
/// with their text and modification time: the moment the daemon wrote them.
struct SpoolWatch {
    dir: PathBuf,
    seen: HashSet<PathBuf>,
    found: Vec<(String, SystemTime)>,
}

impl SpoolWatch {
    fn new(dir: PathBuf) -> SpoolWatch {
        SpoolWatch {
            dir,
            seen: HashSet::new(),
            found: Vec::new(),
        }
    }

    fn poll(&mut self, body: impl Fn(&str) -> String) -> Vec<(String, SystemTime)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return self.found.clone();
        };
        for e in entries.flatten() {
            let path = e.path();
            if self.seen.contains(&path) {
                continue;
            }
            let (Ok(meta), Some(text)) = (e.metadata(), read_text(&path)) else {
                continue;
            };
            // A file still being written shows up again at the next poll.
            let text = body(&text);
            if text.is_empty() {
                continue;
            }
            let when = meta.modified().unwrap_or_else(|_| SystemTime::now());
            self.seen.insert(path);
            self.found.push((text, when));
        }
        self.found.clone()
    }
}

/// A file's text; UTF-16 when it starts with a byte-order mark (gammu's
/// files backend writes its inbox in "unicode" by default).
fn read_text(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let utf16 = |b: &[u8], le: bool| {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| {
                let pair = [c[0], c[1]];
                if le {
                    u16::from_le_bytes(pair)
                } else {
                    u16::from_be_bytes(pair)
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    Some(match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// A peer's command: `HOME` and the working directory in its own folder, so
/// nothing outside it is read or written.
fn peer_command(program: &Path, work: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("HOME", work).current_dir(work);
    cmd
}

/// gammu-smsd, files backend. Default: `configs/gammu-smsdrc` as recorded
/// (CommTimeout = 5, debuglevel 255). Tuned: `configs/gammu-smsdrc.tuned`
/// (status checks off) with the shortest intervals gammu-smsd takes:
/// `LoopSleep = 0`, `CommTimeout = 0`, `ReceiveFrequency = 0` (the recorded
/// 60 s favours sending but leaves inbound messages waiting up to a minute).
struct Gammu {
    work: PathBuf,
    rc: PathBuf,
    inject: PathBuf,
    smsd: PathBuf,
    proc: Option<Proc>,
    inbox: SpoolWatch,
}

impl Gammu {
    fn new(work: &Path, link: &Path, cfg: Cfg) -> Result<Gammu, String> {
        let smsd = program("gammu-smsd")?;
        let inject = program("gammu-smsd-inject")?;
        let rc = match cfg {
            Cfg::Default => peer_config("gammu-smsdrc", link, work, Some("smsd"), &[])?,
            Cfg::Tuned => peer_config(
                "gammu-smsdrc.tuned",
                link,
                work,
                Some("smsd"),
                &[
                    ("LoopSleep", "0"),
                    ("CommTimeout", "0"),
                    ("ReceiveFrequency", "0"),
                ],
            )?,
        };
        let inbox = rc
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("inboxpath")
                    .then(|| PathBuf::from(v.trim()))
            })
            .ok_or("no inboxpath in the gammu configuration")?;
        let path = work.join("smsdrc");
        fs::write(&path, rc).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Gammu {
            work: work.to_path_buf(),
            rc: path,
            inject,
            smsd,
            proc: None,
            inbox: SpoolWatch::new(inbox),
        })
    }
}

impl Daemon for Gammu {
    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = peer_command(&self.smsd, &self.work);
        cmd.arg("-c").arg(&self.rc);
        self.proc = Some(Proc::spawn(
            "gammu-smsd",
            cmd,
            &self.work.join("gammu-smsd.out"),
        )?);
        Ok(())
    }

    fn submit(&mut self, texts: &[String]) -> Result<(), String> {
        // gammu-smsd-inject writes the outbox file the daemon picks up.
        for text in texts {
            let out = peer_command(&self.inject, &self.work)
                .arg("-c")
                .arg(&self.rc)
                .args(["TEXT", TO, "-text", text])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("gammu-smsd-inject: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "gammu-smsd-inject failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(())
    }

    fn delivered(&mut self) -> Vec<(String, SystemTime)> {
        self.inbox
            .poll(|t| t.trim_end_matches(['\r', '\n', '\0']).to_string())
    }

    fn pgid(&self) -> Option<i32> {
        self.proc.as_ref().and_then(Proc::pgid)
    }

    fn alive(&mut self) -> Result<(), String> {
        self.proc.as_mut().map_or(Ok(()), Proc::alive)
    }
}

/// SMSTools3 (`smsd -t`). Default: `configs/smstools-smsd.conf` as recorded
/// (delaytime 10 s by default, `AT+CNMI=2,0,0,2,1`). Tuned:
/// `configs/smstools-smsd.conf.tuned` unchanged: it already holds the
/// shortest intervals SMSTools3 takes (`delaytime = 1`,
/// `delaytime_mainprocess = 0`, `poll_faster = 20`, `trust_outgoing`,
/// `check_network = 0`, `pre_init = no`).
struct Smstools {
    work: PathBuf,
    conf: PathBuf,
    outgoing: PathBuf,
    smsd: PathBuf,
    proc: Option<Proc>,
    incoming: SpoolWatch,
    count: usize,
}

impl Smstools {
    fn new(work: &Path, link: &Path, cfg: Cfg) -> Result<Smstools, String> {
        let smsd = program("smsd")?;
        let name = match cfg {
            Cfg::Default => "smstools-smsd.conf",
            Cfg::Tuned => "smstools-smsd.conf.tuned",
        };
        let conf = peer_config(name, link, work, None, &[])?;
        let key = |want: &str| {
            conf.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == want).then(|| PathBuf::from(v.trim()))
            })
        };
        let outgoing = key("outgoing").ok_or("no outgoing in the SMSTools3 configuration")?;
        let incoming = key("incoming").ok_or("no incoming in the SMSTools3 configuration")?;
        let path = work.join("smsd.conf");
        fs::write(&path, &conf).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Smstools {
            work: work.to_path_buf(),
            conf: path,
            outgoing,
            smsd,
            proc: None,
            incoming: SpoolWatch::new(incoming),
            count: 0,
        })
    }
}

impl Daemon for Smstools {
    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = peer_command(&self.smsd, &self.work);
        // -t: in the foreground, so the process group is ours to stop.
        cmd.arg("-t").arg("-c").arg(&self.conf);
        self.proc = Some(Proc::spawn("smsd", cmd, &self.work.join("smsd.out"))?);
        Ok(())
    }

    fn submit(&mut self, texts: &[String]) -> Result<(), String> {
        // A spool file written aside and renamed in: never read half-written.
        let digits: String = TO.chars().filter(char::is_ascii_digit).collect();
        for text in texts {
            self.count += 1;
            let staged = self.work.join("staged");
            fs::write(&staged, format!("To: {digits}\n\n{text}"))
                .map_err(|e| format!("{}: {e}", staged.display()))?;
            let to = self.outgoing.join(format!("bench.{}", self.count));
            fs::rename(&staged, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
        Ok(())
    }

    fn delivered(&mut self) -> Vec<(String, SystemTime)> {
        // Headers, a blank line, the text.
        self.incoming.poll(|t| {
            t.split_once("\n\n")
                .map(|(_, body)| body.trim_end().to_string())
                .unwrap_or_default()
        })
    }

    fn pgid(&self) -> Option<i32> {
        self.proc.as_ref().and_then(Proc::pgid)
    }

    fn alive(&mut self) -> Result<(), String> {
        self.proc.as_mut().map_or(Ok(()), Proc::alive)
    }
}

// ---------------------------------------------------------------------------
// Report

/// `nproc`, CPU model, kernel, load when the bench started, peer versions.
fn machine() -> String {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_string());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let version = |pkg: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", pkg])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or("not installed".into(), |o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
            })
    };
    format!(
        "{cpus} CPUs ({model}), Linux {}, load average at start {load}; gammu-smsd {}, smstools {}",
        kernel.trim(),
        version("gammu-smsd"),
        version("smstools")
    )
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The medians over runs of one contestant.
struct Row {
    daemon: &'static str,
    config: &'static str,
    m: [Option<f64>; 6],
    notes: Vec<String>,
}

fn rows(who: &[(Kind, Cfg)], runs: &[Vec<Measure>]) -> Vec<Row> {
    who.iter()
        .map(|(kind, cfg)| {
            let mine: Vec<&Measure> = runs
                .iter()
                .flatten()
                .filter(|m| m.daemon == kind.label() && m.config == cfg.label(*kind))
                .collect();
            let col =
                |f: fn(&Measure) -> Option<f64>| median(mine.iter().filter_map(|m| f(m)).collect());
            let mut notes: Vec<String> = Vec::new();
            for m in &mine {
                if let Some(n) = &m.note {
                    if !notes.contains(n) {
                        notes.push(n.clone());
                    }
                }
            }
            let failed = mine.iter().filter(|m| m.note.is_some()).count();
            if failed > 0 {
                notes.insert(0, format!("{failed} of {} runs incomplete:", mine.len()));
            }
            Row {
                daemon: kind.label(),
                config: cfg.label(*kind),
                m: [
                    col(|m| m.outbound_msg_s),
                    col(|m| m.inbound_p50_ms),
                    col(|m| m.inbound_p99_ms),
                    col(|m| m.cpu_ms_per_msg),
                    col(|m| m.rss_mb),
                    col(|m| m.first_send_s),
                ],
                notes,
            }
        })
        .collect()
}

/// Three significant digits, at most three decimals.
fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) if v >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn render(
    args: &Args,
    who: &[(Kind, Cfg)],
    runs: &[Vec<Measure>],
    raws: &[Option<f64>],
    machine: &str,
    took: Duration,
) -> String {
    let rows = rows(who, runs);
    let mut t = String::new();
    let mut line = |s: String| {
        t.push_str(&s);
        t.push('\n');
    };
    line(format!(
        "Workload per daemon: {} outbound messages (one burst), {} inbound injected one every {} ms; \
         medians of {} runs; each daemon on its own instant simulated modem (`smsgate sim --latency 0ms`).",
        args.outbound,
        args.inbound,
        args.inject_every.as_millis(),
        runs.len()
    ));
    line(String::new());
    line("| daemon | config | outbound msg/s | inbound p50 ms | inbound p99 ms | CPU ms/msg | peak RSS MB | first send s | notes |".into());
    line("|---|---|---:|---:|---:|---:|---:|---:|---|".into());
    for r in &rows {
        line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.daemon,
            r.config,
            fmt(r.m[0]),
            fmt(r.m[1]),
            fmt(r.m[2]),
            fmt(r.m[3]),
            fmt(r.m[4]),
            fmt(r.m[5]),
            r.notes.join(" ")
        ));
    }
    // The durable smsgate (its default) is the one compared.
    let gate = rows
        .iter()
        .find(|r| r.daemon == Kind::Smsgate.label() && r.config == Cfg::Default.id());
    if let Some(g) = gate {
        line(String::new());
        line(
            "smsgate's advantage over each peer (how many times better; > 1: smsgate is better):"
                .into(),
        );
        line(String::new());
        line("| peer | config | outbound msg/s | inbound p50 | inbound p99 | CPU per msg | peak RSS | first send |".into());
        line("|---|---|---:|---:|---:|---:|---:|---:|".into());
        for r in rows.iter().filter(|r| r.daemon != Kind::Smsgate.label()) {
            // Throughput: more is better; every other column: less is better.
            let ratio = |i: usize| match (g.m[i], r.m[i]) {
                (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
                    let x = if i == 0 { a / b } else { b / a };
                    format!("{}×", fmt(Some(x)))
                }
                _ => "–".into(),
            };
            line(format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.daemon,
                r.config,
                ratio(0),
                ratio(1),
                ratio(2),
                ratio(3),
                ratio(4),
                ratio(5)
            ));
        }
    }
    let raw = median(raws.iter().flatten().copied().collect());
    if let Some(raw) = raw {
        line(String::new());
        let per_run: Vec<String> = raws.iter().map(|r| fmt(*r)).collect();
        line(format!(
            "Raw AT loop (AT+CMGS, prompt, PDU + Ctrl-Z, OK; no store, no bus) on the same simulator: \
             {} msg/s (runs: {}).",
            fmt(Some(raw)),
            per_run.join(", ")
        ));
        if let Some(sg) = gate.and_then(|g| g.m[0]) {
            line(format!(
                "smsgate's durable outbound throughput: {} msg/s = {:.0} % of the raw AT loop.",
                fmt(Some(sg)),
                sg / raw * 100.0
            ));
        }
    }
    line(String::new());
    line(format!(
        "Machine: {machine}. Whole bench: {:.0} s.",
        took.as_secs_f64()
    ));
    t
}
