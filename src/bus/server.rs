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
use tokio::sync::{mpsc, watch};
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

/// Connections served at once; more are answered `unavailable` and
/// closed, so the daemon's memory stays bounded.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a closing connection may take to flush its last lines.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

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

async fn accept_loop<B: Backend>(
    listener: UnixListener,
    backend: B,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if conns.len() >= MAX_CONNECTIONS => {
                    tracing::warn!(limit = MAX_CONNECTIONS, "bus: too many clients; refusing one");
                    tokio::spawn(async move {
                        refuse(stream, "unavailable", "too many bus clients; try again later").await;
                    });
                }
                Ok((stream, _)) => {
                    conns.spawn(connection(stream, backend.clone(), Arc::clone(&shared), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "bus accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
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
        tx,
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
        if conn.tx.send(Out::Line(reply)).await.is_err() || too_long {
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
            tokio::select! {
                _ = stop.changed() => {}
                _ = &mut sub => {}
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
    tx: mpsc::Sender<Out>,
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
        Ok(json!({
            "message": done.id.0,
            "created": done.created,
            "parts": status.as_ref().map(|s| s.parts.len()),
            "state": status.as_ref().map_or("queued", |s| s.state.as_str()),
        }))
    }

    fn start_pending(&mut self) {
        if let Some((mask, start)) = self.pending.take() {
            if let Some(old) = self.subscription.take() {
                old.abort();
            }
            self.subscription = Some(tokio::spawn(subscription(
                self.backend.clone(),
                self.tx.clone(),
                self.shared.feed.subscribe(),
                Arc::clone(&self.shared.catch_ups),
                mask,
                start,
                self.see,
            )));
        }
    }
}
