//! The listener and the connections.
//!
//! Each connection runs as one task reading requests in order, plus a
//! writer task fed by a bounded queue ([`OUT_QUEUE`] lines). Requests are
//! answered one at a time, so a client that does not read its replies only
//! stalls itself. A subscription is a third task fed by the server's one
//! reader of the event log ([`super::fanout`]): when the client reads slowly
//! the queue fills, the subscription waits and falls behind the feed, and
//! then reads what it missed from the store (the log *is* the buffer), so
//! the daemon's memory per client is bounded and other clients are never
//! slowed.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nix::unistd::{chown, Group};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::{JoinHandle, JoinSet};

use super::access::{Access, Peer};
use super::fanout::{self, subscription};
use super::protocol::{
    self, error_reply, ok_reply, parse_line, status_fields, store_error_code, EventMask, Request,
};
use super::{Backend, BusConfig, BusError, OutboundRequest};
use crate::store::{now_ms, InboundId, MessageId, Store, StoreError};

/// Lines queued for one client's socket before producers wait.
pub const OUT_QUEUE: usize = 64;

/// Connections served at once at most; more are answered `unavailable`
/// and closed, so the daemon's memory stays bounded. The file-descriptor
/// limit may lower it ([`connection_cap`]).
pub const MAX_CONNECTIONS: usize = 1024;

/// File descriptors kept free of bus clients: modems' ttys, the SQLite
/// database and its journal, inotify, signals, the log, refusals in flight.
pub const FD_RESERVE: u64 = 64;

/// Clients being answered `unavailable` at once; past that an excess
/// client is closed without a word, so refusing cannot run out of file
/// descriptors either.
const MAX_REFUSING: usize = 16;

/// How long accepting pauses after a failure (out of file descriptors),
/// at first and at most: it doubles while failures go on.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));

/// At most one log line per this period about failing accepts.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a closing connection may take to flush its last lines.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// How often a half-closed subscriber's socket is checked for a hang-up.
const HANGUP_PROBE: Duration = Duration::from_secs(1);

/// How long the whole server waits for its connections at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Settings that `reconfigure` may change while clients stay connected.
struct Shared {
    access: RwLock<Access>,
    /// Who sees numbers instead of handles.
    see: RwLock<Access>,
    max_line: AtomicUsize,
    clients: AtomicUsize,
    /// The log's lines, built once for every subscriber.
    feed: fanout::Sender,
    /// Gaps subscribers read from the store.
    catch_ups: Arc<AtomicU64>,
}

impl Shared {
    fn allows(&self, peer: &Peer) -> bool {
        match self.access.read() {
            Ok(a) => a.allows(peer),
            Err(poisoned) => poisoned.into_inner().allows(peer),
        }
    }

    fn sees_numbers(&self, peer: &Peer) -> bool {
        match self.see.read() {
            Ok(a) => a.allows(peer),
            Err(poisoned) => poisoned.into_inner().allows(peer),
        }
    }
}

/// The running bus socket.
pub struct Server {
    path: PathBuf,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    feed: JoinHandle<()>,
}

impl Server {
    /// Creates the socket (its directory too, mode 0755), replacing a stale
    /// socket file, sets mode 0660 and the configured group, and starts
    /// accepting on the current tokio runtime.
    pub async fn bind<B: Backend>(config: BusConfig, backend: B) -> Result<Server, BusError> {
        let listener = create_socket(&config)?;
        let shared = Arc::new(Shared {
            access: RwLock::new(Access::from_config(&config)),
            see: RwLock::new(Access::see_numbers(&config)),
            max_line: AtomicUsize::new(config.max_line.max(1)),
            clients: AtomicUsize::new(0),
            feed: fanout::channel(),
            catch_ups: Arc::new(AtomicU64::new(0)),
        });
        let (stop, stop_rx) = watch::channel(false);
        let feed = tokio::spawn(fanout::feed(
            backend.clone(),
            shared.feed.clone(),
            stop_rx.clone(),
        ));
        let task = tokio::spawn(accept_loop(listener, backend, Arc::clone(&shared), stop_rx));
        tracing::info!(socket = %config.socket.display(), "bus listening");
        Ok(Server {
            path: config.socket,
            shared,
            stop,
            task,
            feed,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the fan-out holds now and how often subscribers fell behind.
    pub fn fanout(&self) -> fanout::FanoutStats {
        fanout::FanoutStats {
            held: self.shared.feed.len(),
            subscribers: self.shared.feed.receiver_count(),
            catch_ups: self.shared.catch_ups.load(Ordering::Relaxed),
        }
    }

    /// Applies new access lists and line limit; connected clients stay.
    /// A changed socket path or group takes effect at the next start.
    pub fn reconfigure(&self, config: BusConfig) {
        let access = Access::from_config(&config);
        match self.shared.access.write() {
            Ok(mut a) => *a = access,
            Err(poisoned) => *poisoned.into_inner() = access,
        }
        let see = Access::see_numbers(&config);
        match self.shared.see.write() {
            Ok(mut a) => *a = see,
            Err(poisoned) => *poisoned.into_inner() = see,
        }
        self.shared
            .max_line
            .store(config.max_line.max(1), Ordering::Relaxed);
        if config.socket != self.path {
            tracing::warn!(socket = %self.path.display(), wanted = %config.socket.display(),
                "bus socket path changed: takes effect after a restart");
        }
        tracing::info!("bus access lists reloaded");
    }

    /// Stops accepting, closes the clients (after their last lines are
    /// flushed, within a bound) and removes the socket file.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let _ = self.feed.await;
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(socket = %self.path.display(), error = %e, "cannot remove the bus socket");
            }
        }
        tracing::info!(socket = %self.path.display(), "bus stopped");
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> BusError + '_ {
    move |source| BusError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create_socket(config: &BusConfig) -> Result<UnixListener, BusError> {
    let path = &config.socket;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io_err(dir))?;
            tracing::info!(dir = %dir.display(), "created the bus socket directory");
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket nobody answers on is left by a crash: replace it.
            // One that answers belongs to a live daemon: keep it.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BusError::InUse(path.clone()));
            }
            std::fs::remove_file(path).map_err(io_err(path))?;
            tracing::info!(socket = %path.display(), "replaced a stale bus socket");
        }
        Ok(_) => return Err(BusError::NotASocket(path.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err(path))?;
    if let Some(name) = &config.group {
        match Group::from_name(name) {
            Ok(Some(g)) => {
                if let Err(e) = chown(path, None, Some(g.gid)) {
                    tracing::warn!(socket = %path.display(), group = %name, error = %e,
                        "cannot give the bus socket to its group");
                }
            }
            Ok(None) => tracing::info!(socket = %path.display(), group = %name,
                "bus socket group does not exist: the socket keeps the daemon's group"),
            Err(e) => {
                tracing::warn!(group = %name, error = %e, "cannot look up the bus socket group")
            }
        }
    }
    Ok(listener)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (systemd starts
/// services with a soft limit of 1024 whatever `LimitNOFILE=` allows as
/// hard) and returns the soft limit in force. A failure (a seccomp filter
/// without `@resources`, say) keeps the limit as it is.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Linux refuses a soft limit above fs.nr_open (1 Mi by default), and
    // an unlimited hard limit is not a number of descriptors.
    const CEILING: u64 = 1 << 20;
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the file-descriptor limit");
            return MAX_CONNECTIONS as u64 + FD_RESERVE;
        }
    };
    let want = hard.min(CEILING);
    if soft >= want {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
        Ok(()) => {
            tracing::debug!(from = soft, to = want, "raised the file-descriptor limit");
            want
        }
        Err(e) => {
            tracing::info!(soft, hard, error = %e, "cannot raise the file-descriptor limit");
            soft
        }
    }
}

/// Bus clients served at once under a soft file-descriptor limit `nofile`:
/// [`MAX_CONNECTIONS`] or fewer, so that [`FD_RESERVE`] descriptors stay
/// for everything else; at least one.
pub fn connection_cap(nofile: u64) -> usize {
    let free = usize::try_from(nofile.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    free.clamp(1, MAX_CONNECTIONS)
}

/// Failing accepts: paced and logged at most once per [`ACCEPT_LOG_EVERY`].
struct AcceptFailures {
    backoff: Duration,
    last_log: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl AcceptFailures {
    fn new() -> Self {
        AcceptFailures {
            backoff: ACCEPT_BACKOFF.0,
            last_log: None,
            unlogged: 0,
        }
    }

    /// Records a failure; returns how long to pause.
    fn failed(&mut self, e: &std::io::Error, clients: usize) -> Duration {
        self.unlogged += 1;
        let now = tokio::time::Instant::now();
        let due = match self.last_log {
            None => true,
            Some(t) => now.duration_since(t) >= ACCEPT_LOG_EVERY,
        };
        if due {
            tracing::warn!(error = %e, failures = self.unlogged, clients,
                "bus accept failed (out of file descriptors?); pausing accepts");
            self.last_log = Some(now);
            self.unlogged = 0;
        }
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF.1);
        pause
    }

    fn succeeded(&mut self) {
        self.backoff = ACCEPT_BACKOFF.0;
    }
}

async fn accept_loop<B: Backend>(
    listener: UnixListener,
    backend: B,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let cap = connection_cap(raise_nofile());
    tracing::info!(max_clients = cap, "bus client limit");
    let mut conns = JoinSet::new();
    let mut refusing = JoinSet::new();
    let mut failures = AcceptFailures::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            Some(_) = refusing.join_next(), if !refusing.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if conns.len() >= cap => {
                    failures.succeeded();
                    if refusing.len() >= MAX_REFUSING {
                        drop(stream);
                        continue;
                    }
                    tracing::warn!(limit = cap, "bus: too many clients; refusing one");
                    refusing.spawn(async move {
                        refuse(stream, "unavailable", "too many bus clients; try again later").await;
                    });
                }
                Ok((stream, _)) => {
                    failures.succeeded();
                    conns.spawn(connection(stream, backend.clone(), Arc::clone(&shared), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: the pending
                    // client stays in the backlog; pause (a closing
                    // connection frees a descriptor sooner), then go on.
                    let pause = failures.failed(&e, conns.len());
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
            },
        }
    }
    refusing.abort_all();
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.shutdown().await;
    }
}

/// What the writer task sends.
#[derive(Debug)]
pub(super) enum Out {
    /// A reply line.
    Line(String),
    /// An event line, shared with the other subscribers' queues.
    Event(Arc<str>),
    /// An inbound event: once written, the message is marked delivered
    /// (once per live line: the flag is shared by the subscribers).
    Inbound(Arc<str>, InboundId, Option<Arc<AtomicBool>>),
}

/// A connection's way to its writer. The request loop holds the turn from
/// reading a request until its reply is queued, and events wait for the
/// turn, so the reply to a request is queued before any event that request
/// caused (a `send`'s reply before its `queued` status): a client reading
/// by hand, or one that matches replies by order, is never shown the
/// consequence before the answer.
#[derive(Clone)]
pub(super) struct Outbox {
    tx: mpsc::Sender<Out>,
    turn: Arc<Mutex<()>>,
}

impl Outbox {
    /// Queues an event line; `Err` once the connection's writer is gone.
    pub(super) async fn event(&self, out: Out) -> Result<(), ()> {
        let _turn = self.turn.lock().await;
        self.tx.send(out).await.map_err(drop)
    }
}

async fn writer(wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Out>, store: Store) {
    let mut w = BufWriter::new(wr);
    while let Some(out) = rx.recv().await {
        let (line, inbound): (&str, _) = match &out {
            Out::Line(l) => (l, None),
            Out::Event(l) => (l, None),
            Out::Inbound(l, id, flag) => (l, Some((*id, flag.as_deref()))),
        };
        let written = async {
            w.write_all(line.as_bytes()).await?;
            w.write_all(b"\n").await?;
            if inbound.is_some() || rx.is_empty() {
                w.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        }
        .await;
        if let Err(e) = written {
            tracing::debug!(error = %e, "bus client went away while writing");
            return;
        }
        if let Some((id, flag)) = inbound {
            if !fanout::first_delivery(flag) {
                continue;
            }
            if let Err(e) = store.inbound_delivered(id, now_ms()).await {
                tracing::warn!(inbound = %id, error = %e, "cannot record bus delivery");
            }
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// Outcome of reading one line.
enum Read {
    Line,
    TooLong,
    Eof,
}

/// Reads one line into `line` (without the newline), never holding more
/// than `max` bytes of it.
async fn read_line(
    r: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Read> {
    line.clear();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Read::Eof
            } else {
                Read::Line
            });
        }
        let (chunk, used, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if line.len() + chunk.len() > max {
            return Ok(Read::TooLong);
        }
        line.extend_from_slice(chunk);
        r.consume(used);
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Read::Line);
        }
    }
}

/// Reads and drops what the client still sends, briefly, so closing does
/// not reset the connection before it read our last line.
async fn drain(r: &mut BufReader<OwnedReadHalf>) {
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut total = 0usize;
        while total < 16 << 20 {
            match r.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// Whether the peer closed its socket entirely (not only its writing
/// side): POLLHUP. Without this a half-closed subscriber that went away
/// would hold its slot until the next event fails to be written.
fn hung_up(stream: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds
            .iter()
            .filter_map(|f| f.revents())
            .any(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Answers one error line and closes.
async fn refuse(stream: UnixStream, code: &str, message: &str) {
    let (rd, mut wr) = stream.into_split();
    let mut line = error_reply(None, None, code, message);
    line.push('\n');
    let _ = tokio::time::timeout(FLUSH_GRACE, async {
        let _ = wr.write_all(line.as_bytes()).await;
        let _ = wr.shutdown().await;
    })
    .await;
    drain(&mut BufReader::new(rd)).await;
}

async fn connection<B: Backend>(
    stream: UnixStream,
    backend: B,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "bus: cannot read peer credentials; closing");
            return;
        }
    };
    if !shared.allows(&peer) {
        let user = peer.user_name();
        tracing::warn!(uid = peer.uid, gid = peer.gid, pid = ?peer.pid, user = %user, "bus: refused peer");
        let msg = format!("user {user} (uid {}) may not use this socket", peer.uid);
        refuse(stream, "not_allowed", &msg).await;
        return;
    }
    let (rd, wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(8192, rd);
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(writer(wr, rx, backend.store().clone()));

    shared.clients.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(uid = peer.uid, pid = ?peer.pid, "bus client connected");
    // Decided once per connection: a reload that grants the right applies
    // to the next connection.
    let see = shared.sees_numbers(&peer);
    let mut conn = Conn {
        backend,
        shared: Arc::clone(&shared),
        out: Outbox {
            tx,
            turn: Arc::new(Mutex::new(())),
        },
        peer,
        see,
        client: None,
        subscription: None,
        pending: None,
    };
    let mut line = Vec::new();
    let mut too_long = false;
    let mut eof = false;
    loop {
        let max = shared.max_line.load(Ordering::Relaxed);
        let read = tokio::select! {
            _ = stop.changed() => break,
            r = read_line(&mut reader, &mut line, max) => r,
        };
        // Held until the reply is queued: events the request causes (or
        // that arrive meanwhile) follow the reply.
        let _turn = Arc::clone(&conn.out.turn).lock_owned().await;
        let reply = match read {
            Ok(Read::Eof) => {
                eof = true;
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "bus client read failed");
                break;
            }
            Ok(Read::TooLong) => {
                too_long = true;
                let msg = format!("request line longer than {max} bytes; closing");
                error_reply(None, None, "line_too_long", &msg)
            }
            Ok(Read::Line) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Read::Line) => conn.handle(&line).await,
        };
        if conn.out.tx.send(Out::Line(reply)).await.is_err() || too_long {
            break;
        }
        conn.start_pending();
    }
    if let Some(mut sub) = conn.subscription.take() {
        if eof {
            // A half-close (`echo '{"op":"subscribe"}' | socat - UNIX-CONNECT:…`)
            // ends the requests, not the subscription: it is served until
            // a write fails (the subscription then ends) or the server stops.
            tracing::debug!(
                uid = peer.uid,
                "bus client closed its side; its subscription goes on"
            );
            let mut probe = tokio::time::interval(HANGUP_PROBE);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = &mut sub => break,
                    _ = probe.tick() => {
                        if hung_up(reader.get_ref().as_ref()) {
                            break;
                        }
                    }
                }
            }
        }
        sub.abort();
    }
    let client = conn.client.take();
    drop(conn);
    if tokio::time::timeout(FLUSH_GRACE, writer).await.is_err() {
        tracing::debug!("bus client does not read; dropped");
    }
    if too_long {
        drain(&mut reader).await;
    }
    shared.clients.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(uid = peer.uid, client = ?client, "bus client disconnected");
}

/// One connection's request state.
struct Conn<B: Backend> {
    backend: B,
    shared: Arc<Shared>,
    out: Outbox,
    peer: Peer,
    /// This peer sees phone numbers (else `sms:` handles).
    see: bool,
    client: Option<String>,
    subscription: Option<JoinHandle<()>>,
    /// A subscription to start once its reply is queued (so the reply
    /// precedes its events).
    pending: Option<(EventMask, u64)>,
}

type Failure = (&'static str, String);

fn store_failure(e: StoreError) -> Failure {
    let code = store_error_code(&e);
    if code == "internal" {
        tracing::error!(error = %e, "bus request failed in the store");
    }
    (code, e.to_string())
}

impl<B: Backend> Conn<B> {
    async fn handle(&mut self, line: &[u8]) -> String {
        let max = self.shared.max_line.load(Ordering::Relaxed);
        let env = match parse_line(line, max) {
            Ok(env) => env,
            Err(e) => return e.reply(),
        };
        let op = env.request.op();
        match self.serve(env.request).await {
            Ok(fields) => ok_reply(env.id.as_ref(), op, fields),
            Err((code, message)) => error_reply(env.id.as_ref(), Some(op), code, &message),
        }
    }

    fn store(&self) -> &Store {
        self.backend.store()
    }

    async fn serve(&mut self, req: Request) -> Result<Value, Failure> {
        match req {
            Request::Hello { client } => {
                self.client = client;
                Ok(json!({
                    "version": protocol::PROTOCOL_VERSION,
                    "server": concat!("smsgate ", env!("CARGO_PKG_VERSION")),
                    "user": self.peer.user_name(),
                    "see_numbers": self.see,
                }))
            }
            Request::Send(fields) => self.send(fields).await,
            Request::Status { message } => {
                let s = self
                    .store()
                    .outbound_status(MessageId(message))
                    .await
                    .map_err(store_failure)?;
                let mut v = status_fields(&s);
                if let Some(to) = v.get_mut("to") {
                    *to = Value::String(self.backend.show(&s.recipient, self.see));
                }
                Ok(v)
            }
            Request::Cancel { message } => {
                let id = MessageId(message);
                self.store()
                    .cancel(id, now_ms())
                    .await
                    .map_err(store_failure)?;
                let s = self
                    .store()
                    .outbound_status(id)
                    .await
                    .map_err(store_failure)?;
                tracing::info!(message = %id, client = ?self.client, "bus: cancelled");
                Ok(json!({ "message": message, "state": s.state.as_str() }))
            }
            Request::Ack { message } => {
                self.store()
                    .ack_inbound(InboundId(message), now_ms())
                    .await
                    .map_err(store_failure)?;
                Ok(json!({ "message": message }))
            }
            Request::Subscribe { events, since } => {
                // A cursor beyond the log (the database was replaced) would
                // wait silently for events that long exist: start at the end.
                let last = *self.store().subscribe().borrow();
                let start = since.map_or(last, |s| s.min(last));
                self.pending = Some((events, start));
                Ok(json!({ "cursor": start }))
            }
            Request::Modems => Ok(json!({ "modems": self.backend.modems() })),
            Request::Forget { who } => {
                if !self.see {
                    return Err((
                        "not_allowed",
                        "forget needs the see-numbers right (root, the daemon's user, \
                         [privacy] see_numbers_users/groups)"
                            .to_owned(),
                    ));
                }
                let erased = self.backend.forget(who).await?;
                tracing::info!(client = ?self.client, "bus: forget done");
                Ok(erased)
            }
            Request::Consent(query) => {
                // Admins are the peers with the see-numbers right (as for
                // `forget`); the number is shown by that right as well.
                if !self.see {
                    return Err((
                        "not_allowed",
                        "consent records need the see-numbers right (root, the daemon's user, \
                         [privacy] see_numbers_users/groups)"
                            .to_owned(),
                    ));
                }
                self.backend.consent(query, self.see).await
            }
            Request::Stats => {
                let stats = self.store().stats().await.map_err(store_failure)?;
                let mut v = serde_json::to_value(stats).unwrap_or_else(|_| json!({}));
                if let Value::Object(o) = &mut v {
                    o.insert(
                        "bus_clients".into(),
                        json!(self.shared.clients.load(Ordering::Relaxed)),
                    );
                }
                Ok(json!({ "stats": v }))
            }
        }
    }

    async fn send(&mut self, mut req: OutboundRequest) -> Result<Value, Failure> {
        req.to = self.backend.recipient(req.to).await?;
        req.client = self.client.clone();
        let done = self
            .backend
            .send(req)
            .await
            .map_err(|e| (e.code(), e.to_string()))?;
        tracing::info!(message = %done.id, created = done.created, client = ?self.client, "bus: send accepted");
        // The message is durable already; its status only adds detail.
        let status = self.store().outbound_status(done.id).await.ok();
        let mut reply = json!({
            "message": done.id.0,
            "created": done.created,
            "parts": status.as_ref().map(|s| s.parts.len()),
            "state": status.as_ref().map_or("queued", |s| s.state.as_str()),
        });
        // The recipient as the daemon stored it (E.164, or the handle for
        // a peer without the see-numbers right), so a client need not ask
        // `status` for it.
        if let Some(s) = &status {
            reply["to"] = Value::String(self.backend.show(&s.recipient, self.see));
        }
        Ok(reply)
    }

    fn start_pending(&mut self) {
        if let Some((mask, start)) = self.pending.take() {
            if let Some(old) = self.subscription.take() {
                old.abort();
            }
            self.subscription = Some(tokio::spawn(subscription(
                self.backend.clone(),
                self.out.clone(),
                self.shared.feed.subscribe(),
                Arc::clone(&self.shared.catch_ups),
                mask,
                start,
                self.see,
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        // systemd's default soft limit: 1024 descriptors are not 1024 clients.
        assert_eq!(connection_cap(1024), 1024 - FD_RESERVE as usize);
        assert_eq!(connection_cap(65536), MAX_CONNECTIONS);
        assert_eq!(connection_cap(100), 36);
        assert_eq!(connection_cap(10), 1);
        assert_eq!(connection_cap(u64::MAX), MAX_CONNECTIONS);
    }

    #[tokio::test]
    async fn failing_accepts_back_off_and_log_rarely() {
        let mut f = AcceptFailures::new();
        let e = std::io::Error::from_raw_os_error(24);
        let pauses: Vec<_> = (0..7).map(|_| f.failed(&e, 3)).collect();
        assert_eq!(pauses[0], ACCEPT_BACKOFF.0);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(pauses[6], ACCEPT_BACKOFF.1);
        // Logged once; the six since wait for the next period.
        assert_eq!(f.unlogged, 6);
        f.last_log = tokio::time::Instant::now().checked_sub(ACCEPT_LOG_EVERY);
        f.failed(&e, 3);
        assert_eq!(f.unlogged, 0);
        f.succeeded();
        assert_eq!(f.failed(&e, 3), ACCEPT_BACKOFF.0);
    }
}
