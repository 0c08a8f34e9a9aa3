//! The daemon entry: [`Daemon`] (store, engine, bus socket, modems from
//! the config and from discovery) and [`run`], which adds signals,
//! systemd notification and exit codes for `smsgate run`.
//!
//! Start order is the order of promises: the store opens first (nothing
//! is accepted before it can be committed), then the engine, then the
//! socket (clients connect only once sends can be queued), then the
//! modems. Shutdown runs the other way: stop accepting, stop dispatching
//! and let in-flight sends finish or go back to the queue within a grace
//! period, then close the store (which flushes and releases its lock).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::config::{port_name, Config, ConfigError, DEFAULT_PATH};
use super::discovery::{is_modem, Change, Watcher};
use super::engine::{Engine, EngineConfig, EngineError};
use super::notify::Notifier;
use super::privacy::Privacy;
use crate::bus::{BusConfig, BusError, Server};
use crate::modem::ModemConfig;
use crate::store::{Store, StoreError};

/// Exit code of an invalid configuration (`EX_CONFIG` of sysexits.h);
/// the unit's `RestartPreventExitStatus=78` stops systemd from retrying.
pub const EXIT_CONFIG: u8 = 78;
/// Exit code when the daemon could not start for another reason.
pub const EXIT_START: u8 = 1;
/// Exit code of a second SIGTERM/SIGINT during shutdown (128 + SIGTERM).
pub const EXIT_FORCED: i32 = 143;
/// How long in-flight sends get to finish at shutdown before they are
/// put back in the queue (flagged maybe-sent).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Main loop tick when systemd asks for no watchdog: the `STATUS=` period.
const STATUS_TICK: Duration = Duration::from_secs(5);
/// How long the main loop's store probe may take before the loop counts
/// as stuck (and `WATCHDOG=1` is withheld).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Capacity of the hotplug channel; the watcher waits when it is full.
const HOTPLUG_QUEUE: usize = 64;

/// Why the daemon could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is invalid (exit code 78).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The bus socket could not be set up.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The privacy gate could not start (its secret file).
    #[error("privacy: {0}")]
    Privacy(#[from] crate::privacy::PrivacyError),
    /// The engine refused a modem.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Setting up the runtime or signal handlers failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl DaemonError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) => EXIT_CONFIG,
            _ => EXIT_START,
        }
    }
}

/// What reload and hotplug share: the config in force, the watcher and
/// which ports came from where. A tokio mutex, because both hold it
/// across engine calls that wait for an actor to stop.
struct State {
    config: Config,
    /// Ports of `[[modem]]` entries with the actor settings they got
    /// (a changed entry is restarted at reload).
    configured: BTreeMap<PathBuf, ModemKey>,
    /// Ports started because discovery found them.
    discovered: BTreeSet<PathBuf>,
    watcher: Option<Watcher>,
}

/// The settings of a configured modem that need an actor restart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModemKey {
    name: String,
    pins: BTreeMap<String, String>,
    smsc: Option<String>,
    profile: Option<String>,
    probe: Duration,
    sweep: Duration,
}

impl ModemKey {
    fn of(c: &ModemConfig) -> ModemKey {
        ModemKey {
            name: c.name.clone(),
            pins: c.pins.clone(),
            smsc: c.smsc.clone(),
            profile: c.profile.clone(),
            probe: c.probe_interval,
            sweep: c.sweep_interval,
        }
    }
}

/// The running daemon: engine, socket, modems.
pub struct Daemon {
    engine: Engine,
    privacy: Privacy,
    server: Server,
    socket: PathBuf,
    config_path: Option<PathBuf>,
    state: Arc<Mutex<State>>,
    changes: mpsc::Sender<Change>,
    hotplug: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("socket", &self.socket)
            .field("config", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The engine settings.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            routing: self.routing.clone(),
            limits: self.limits.clone(),
            max_parts: self.bus.max_parts,
            ref16: self.bus.concat_ref_bits != 8,
            queue_limit: self.bus.queue_limit,
            unbind_after: Duration::from_secs(self.modems.unbind_after_secs),
            stranded_after: Duration::from_secs(self.modems.stranded_after_secs),
            rejected_pins: Some(
                super::privacy::state_dir(self).join(crate::modem::REJECTED_PINS_FILE),
            ),
            ..EngineConfig::default()
        }
    }

    /// The bus settings.
    pub fn bus_config(&self) -> BusConfig {
        BusConfig {
            socket: self.bus.socket.clone(),
            group: self.bus.group.clone(),
            allow_users: self.bus.allow_users.clone(),
            allow_groups: self.bus.allow_groups.clone(),
            see_numbers_users: self.privacy.see_numbers_users.clone(),
            see_numbers_groups: self.privacy.see_numbers_groups.clone(),
            ..BusConfig::default()
        }
    }
}

impl Daemon {
    /// Opens the store, starts the engine, binds the socket, then starts
    /// the `[[modem]]`s and the discovery watcher. `config_path` only
    /// names the file in logs.
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Daemon, DaemonError> {
        config.check()?;
        let store = Store::open_async(config.store_config()).await?;
        let report = store.open_report();
        tracing::info!(path = %config.store.path.display(), ?report, "store open");
        let engine = Engine::start(store.clone(), config.engine_config());
        // The gate before the socket: no client may see an undecided message.
        let privacy = match Privacy::start(&config, engine.clone()) {
            Ok(p) => p,
            Err(e) => {
                engine.shutdown(Duration::ZERO).await;
                store.close().await;
                return Err(e.into());
            }
        };
        let server = match Server::bind(config.bus_config(), privacy.backend()).await {
            Ok(s) => s,
            Err(e) => {
                privacy.stop().await;
                engine.shutdown(Duration::ZERO).await;
                store.close().await;
                return Err(e.into());
            }
        };
        let (changes, rx) = mpsc::channel(HOTPLUG_QUEUE);
        let state = Arc::new(Mutex::new(State {
            config: config.clone(),
            configured: BTreeMap::new(),
            discovered: BTreeSet::new(),
            watcher: None,
        }));
        let hotplug = tokio::spawn(hotplug(engine.clone(), Arc::clone(&state), rx));
        let daemon = Daemon {
            socket: config.bus.socket.clone(),
            engine,
            privacy,
            server,
            config_path,
            state,
            changes,
            hotplug,
        };
        daemon.apply(config).await;
        Ok(daemon)
    }

    /// The engine (for the demo and tests).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The bus socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// What SIGHUP does: applies a new configuration without dropping
    /// clients. Modems added, removed or changed in `[[modem]]` are
    /// started, stopped or restarted; a changed `[discovery]` restarts the
    /// watcher; limits, routing and access lists take effect at once.
    /// `[store]` and the socket path need a restart (logged). An invalid
    /// config changes nothing.
    pub async fn reload(&self, config: Config) -> Result<(), DaemonError> {
        let modems = self.begin_reload(config)?;
        let _ = modems.await;
        Ok(())
    }

    /// [`Daemon::reload`] without waiting for the modems: checks the
    /// config and applies limits, routing and access lists at once, then
    /// brings the modems in line in a spawned task (stopping a wedged
    /// modem can take [`ACTOR_STOP`](super::engine) seconds), so the main
    /// loop keeps its watchdog and its signals meanwhile.
    pub fn begin_reload(&self, config: Config) -> Result<JoinHandle<()>, DaemonError> {
        config.check()?;
        self.privacy.reconfigure(&config)?;
        self.engine.reconfigure(config.engine_config());
        self.server.reconfigure(config.bus_config());
        let (engine, state, changes) = (
            self.engine.clone(),
            Arc::clone(&self.state),
            self.changes.clone(),
        );
        let path = self.config_path.clone();
        Ok(tokio::spawn(async move {
            if state.lock().await.config.store != config.store {
                tracing::warn!("[store] changed: takes effect after a restart");
            }
            apply(&engine, &state, &changes, config).await;
            tracing::info!(config = ?path, "configuration reloaded");
        }))
    }

    /// Brings modems and discovery in line with `config`.
    async fn apply(&self, config: Config) {
        apply(&self.engine, &self.state, &self.changes, config).await;
    }

    /// What SIGTERM does: stop accepting clients, stop discovery, let
    /// in-flight sends finish within `grace` (the rest go back to the
    /// queue), stop the modems, close the store and remove the socket.
    pub async fn shutdown(self, grace: Duration) {
        let watcher = self.state.lock().await.watcher.take();
        if let Some(w) = watcher {
            w.stop().await;
        }
        self.hotplug.abort();
        self.server.shutdown().await;
        self.privacy.stop().await;
        self.engine.shutdown(grace).await;
        self.engine.store().clone().close().await;
        tracing::info!("daemon stopped");
    }

    /// One line for `systemctl status`, or `None` when the store did not
    /// answer in time (the main loop then withholds `WATCHDOG=1`).
    pub async fn status_line(&self) -> Option<String> {
        let stats = tokio::time::timeout(PROBE_TIMEOUT, self.engine.store().stats())
            .await
            .ok()?
            .ok()?;
        let modems = self.engine.modems();
        let ready = modems
            .iter()
            .filter(|m| m.snapshot.state == "ready")
            .count();
        Some(format!(
            "{ready}/{} modems ready, {} parts queued, {} sending, {} inbound unacked, {} held",
            modems.len(),
            stats.parts_queued,
            stats.parts_sending,
            stats.inbound_unacked,
            stats.inbound_held
        ))
    }
}

/// Stops the modems at `ports` all at once, each in its own task: one
/// wedged modem does not hold up the others, and a stop that has begun
/// finishes even if the reload that asked for it is cancelled (SIGTERM).
async fn remove_all(engine: &Engine, ports: Vec<PathBuf>) {
    let tasks: Vec<JoinHandle<()>> = ports
        .into_iter()
        .map(|port| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.remove_modem(&port).await })
        })
        .collect();
    futures::future::join_all(tasks).await;
}

/// Brings modems and discovery in line with `config`: removals first
/// (concurrently, [`remove_all`]), then additions on the freed ports.
async fn apply(
    engine: &Engine,
    state: &Mutex<State>,
    changes: &mpsc::Sender<Change>,
    config: Config,
) {
    let mut state = state.lock().await;
    // [[modem]]: stop what is gone or changed, start what is new.
    let wanted: BTreeMap<PathBuf, ModemConfig> = config
        .configured_modems()
        .into_iter()
        .map(|c| (c.port.clone(), c))
        .collect();
    let old = std::mem::take(&mut state.configured);
    let gone: Vec<PathBuf> = old
        .iter()
        .filter(|(port, key)| wanted.get(*port).map(ModemKey::of).as_ref() != Some(*key))
        .map(|(port, _)| port.clone())
        .collect();
    // A discovered port that is now configured gets its settings.
    let taken: Vec<PathBuf> = wanted
        .keys()
        .filter(|port| state.discovered.remove(*port))
        .cloned()
        .collect();
    remove_all(engine, gone.iter().chain(&taken).cloned().collect()).await;
    for port in &gone {
        // The watcher saw this port long ago and will not report it
        // again: if it is one of its entries, hand it over now.
        let d = &config.discovery;
        let watched = d.enabled && port.parent() == Some(d.dir.as_path());
        if watched && !wanted.contains_key(port) && is_modem(port) {
            let modem = config.modem_config(&port_name(port), port);
            if engine.add_modem(modem).is_ok() {
                state.discovered.insert(port.clone());
            }
        }
    }
    for (port, modem) in wanted {
        let key = ModemKey::of(&modem);
        if let Err(e) = engine.add_modem(modem) {
            tracing::error!(port = %port.display(), error = %e, "cannot start modem");
            continue;
        }
        state.configured.insert(port, key);
    }

    // [discovery]: restart the watcher when its settings changed.
    let d = &config.discovery;
    let same = state.watcher.as_ref().is_some_and(|w| {
        d.enabled && w.dir() == d.dir && state.config.discovery.rescan_secs == d.rescan_secs
    });
    if !same {
        if let Some(w) = state.watcher.take() {
            w.stop().await;
        }
        let discovered = std::mem::take(&mut state.discovered);
        remove_all(engine, discovered.into_iter().collect()).await;
        if d.enabled {
            state.watcher = Some(Watcher::spawn(
                d.dir.clone(),
                Duration::from_secs(d.rescan_secs),
                changes.clone(),
            ));
        }
    }
    state.config = config;
}

/// Applies hotplug changes from the watcher. Configured ports are left
/// to their `[[modem]]` entry.
async fn hotplug(engine: Engine, state: Arc<Mutex<State>>, mut rx: mpsc::Receiver<Change>) {
    while let Some(change) = rx.recv().await {
        let mut state = state.lock().await;
        match change {
            Change::Added(port) => {
                if state.configured.contains_key(&port) || state.discovered.contains(&port) {
                    continue;
                }
                let modem = state.config.modem_config(&port_name(&port), &port);
                match engine.add_modem(modem) {
                    Ok(()) => {
                        state.discovered.insert(port);
                    }
                    Err(e) => {
                        tracing::error!(port = %port.display(), error = %e, "cannot start modem")
                    }
                }
            }
            Change::Removed(port) => {
                if state.discovered.remove(&port) {
                    engine.remove_modem(&port).await;
                }
            }
        }
    }
}

/// Arguments of `smsgate run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Configuration file [default: /etc/smsgate/smsgate.toml; a missing default file means all defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only check the configuration: print problems, exit 0 or 78.
    #[arg(long)]
    pub check_config: bool,
}

/// `smsgate run`: the daemon until SIGTERM/SIGINT; SIGHUP reloads.
pub fn run(args: RunArgs) -> ExitCode {
    let (path, loaded) = match &args.config {
        Some(p) => (p.clone(), Config::load(p)),
        None => {
            let p = PathBuf::from(DEFAULT_PATH);
            let c = Config::load_default(&p);
            (p, c)
        }
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("smsgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check_config {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("smsgate")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("smsgate: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    match runtime.block_on(serve(config, path, args.config.is_some())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_stop(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Says once why the daemon stopped. Under journald (`JOURNAL_STREAM`)
/// stderr and the log are the same stream: the log line (which carries
/// the level) alone, unless logging is filtered off; elsewhere the plain
/// `smsgate: ...` line that people and scripts read.
fn report_stop(e: &DaemonError) {
    if std::env::var_os("JOURNAL_STREAM").is_some() && tracing::enabled!(tracing::Level::ERROR) {
        match e {
            // The store logs its own open failure with the cause.
            DaemonError::Store(_) => tracing::error!("smsgate stopped: the store did not open"),
            _ => tracing::error!(error = %e, "smsgate stopped"),
        }
    } else {
        eprintln!("smsgate: {e}");
    }
}

/// Reads the config again and starts applying it; `None` when it was
/// refused (the old configuration stays) or nothing is left to wait for.
fn start_reload(daemon: &Daemon, path: &Path, explicit: bool) -> Option<JoinHandle<()>> {
    let loaded = if explicit {
        Config::load(path)
    } else {
        Config::load_default(path)
    };
    match loaded
        .map_err(DaemonError::from)
        .and_then(|c| daemon.begin_reload(c))
    {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the old configuration stays");
            None
        }
    }
}

/// The main loop: signals, the watchdog tick and status.
async fn serve(config: Config, path: PathBuf, explicit: bool) -> Result<(), DaemonError> {
    // Signals first: a SIGTERM during start-up must not kill the process
    // with the default action while the store is half open.
    let mut signals =
        signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(|source| {
            DaemonError::Io {
                what: "signal handlers",
                source,
            }
        })?;
    let notifier = Notifier::from_env();
    let daemon = Daemon::start(config, Some(path.clone())).await?;
    tracing::info!(socket = %daemon.socket().display(), config = %path.display(), "smsgate running");
    notifier.ready(&daemon.status_line().await.unwrap_or_default());

    let period = notifier.watchdog_interval().unwrap_or(STATUS_TICK);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The modem part of a reload runs beside the loop, which keeps
    // ticking (WATCHDOG=1) and hearing SIGTERM; a SIGHUP during a reload
    // is applied once it is done.
    let mut reloading: Option<JoinHandle<()>> = None;
    let mut again = false;
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Some(SIGHUP) if reloading.is_some() => again = true,
                Some(SIGHUP) => {
                    notifier.reloading();
                    reloading = start_reload(&daemon, &path, explicit);
                    if reloading.is_none() {
                        notifier.ready(&daemon.status_line().await.unwrap_or_default());
                    }
                }
                Some(signal) => {
                    tracing::info!(signal, "shutting down");
                    break;
                }
                None => break,
            },
            _ = async {
                match reloading.as_mut() {
                    Some(h) => { let _ = h.await; }
                    None => std::future::pending::<()>().await,
                }
            }, if reloading.is_some() => {
                reloading = None;
                if std::mem::take(&mut again) {
                    reloading = start_reload(&daemon, &path, explicit);
                }
                if reloading.is_none() {
                    notifier.ready(&daemon.status_line().await.unwrap_or_default());
                }
            }
            _ = tick.tick() => {
                // The tick is this loop's heartbeat: WATCHDOG=1 only when
                // the loop runs and the store answers.
                if let Some(status) = daemon.status_line().await {
                    notifier.status(&status);
                    notifier.watchdog();
                } else {
                    tracing::warn!("store did not answer; withholding the watchdog");
                }
            }
        }
    }
    if let Some(r) = reloading {
        // Modem stops already begun finish on their own; the rest of the
        // reload is moot: shutdown stops every modem anyway.
        r.abort();
        let _ = r.await;
    }
    notifier.stopping();
    // A second SIGTERM/SIGINT exits at once: the store's commits are
    // durable, so nothing acknowledged is lost (in-flight parts are
    // requeued as maybe-sent at the next start).
    tokio::spawn(async move {
        while let Some(signal) = signals.next().await {
            if signal != SIGHUP {
                tracing::warn!(signal, "second stop signal: exiting at once");
                std::process::exit(EXIT_FORCED);
            }
        }
    });
    daemon.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}
