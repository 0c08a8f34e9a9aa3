//! The async link: one task owns the port and the [`Digester`], keeps one
//! command in flight, enforces timeouts, performs the `> ` prompt
//! handshake and fans URCs out to subscribers.
//!
//! # Lag policy
//!
//! URCs go to a `tokio::sync::broadcast` channel of
//! [`LinkConfig::urc_capacity`] entries. The link never waits for a
//! subscriber: a subscriber that falls more than that many URCs behind
//! loses the oldest ones and its next `recv()` returns
//! `RecvError::Lagged(n)`. It must then resynchronise from the modem (list
//! the storage with `+CMGL`): with `+CNMI` routing to storage (`+CMTI`)
//! nothing is lost, the messages stay on the SIM until deleted.
//!
//! # Closing
//!
//! EOF or an I/O error on the port (EIO when a USB modem or a pty goes
//! away) ends the task: the command in flight and every queued command get
//! [`LinkError::Closed`], later calls get it immediately, and URC
//! subscribers see the channel closed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, trace, warn};

use super::commands::{AtCommand, ParseError};
use super::digest::{Digester, Event, InFlight};
use super::error::AtError;
use super::parse::after_prefix;
use super::urc::Urc;

/// Errors of the link layer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The port went away (EOF, EIO) or the link was shut down.
    #[error("modem port closed")]
    Closed,
    /// No final result code in time.
    #[error("{command}: no answer within {after:?}")]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The modem answered with an error result code.
    #[error("{command}: {error}")]
    At {
        /// The command line.
        command: String,
        /// The result code.
        error: AtError,
    },
    /// The modem said OK but the answer could not be read.
    #[error("{command}: {source}")]
    Parse {
        /// The command line.
        command: String,
        /// What was wrong.
        source: ParseError,
    },
}

/// Tuning of a link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The modem's id, logged as the `modem` field of every event.
    pub name: String,
    /// URCs a subscriber may fall behind before losing the oldest.
    pub urc_capacity: usize,
    /// Commands that may wait for their turn; `send` waits for room.
    pub queue: usize,
    /// Quiet time after which a command whose `OK` is optional (Wavecom
    /// `+CPIN?`) is taken as complete.
    pub ok_grace: Duration,
    /// How long a write to the port may block (a hung USB endpoint).
    pub write_timeout: Duration,
    /// Response lines kept per command; more are dropped with a warning.
    pub max_lines: usize,
    /// Pause between the `> ` prompt and writing the PDU, for modems that
    /// drop bytes written right after the prompt (a hardware profile quirk).
    pub prompt_delay: Duration,
}

impl LinkConfig {
    /// Defaults for a modem named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        LinkConfig {
            name: name.into(),
            urc_capacity: 256,
            queue: 32,
            ok_grace: Duration::from_millis(500),
            write_timeout: Duration::from_secs(5),
            max_lines: 4096,
            prompt_delay: Duration::ZERO,
        }
    }
}

struct Request {
    text: String,
    in_flight: InFlight,
    timeout: Duration,
    ok_optional: bool,
    reply: oneshot::Sender<Result<Vec<String>, LinkError>>,
    /// Set once the payload after the `> ` prompt was written (or its
    /// write timed out, so it may have reached the modem).
    written: Arc<AtomicBool>,
}

/// A command with a payload that did not end in a readable answer
/// ([`Link::send_payload`]).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PayloadError {
    /// What went wrong.
    pub error: LinkError,
    /// Whether the payload (the PDU after the `> ` prompt, TS 27.005
    /// §3.5.1) had been written in full before it went wrong: then the
    /// modem may have acted on it (an SMS may have left) although no final
    /// result code said so.
    pub written: bool,
}

/// A cheap-to-clone handle to one modem's AT port.
#[derive(Clone)]
pub struct Link {
    name: Arc<str>,
    tx: mpsc::Sender<Request>,
    /// Only the task and this slot hold the sender; the task empties the
    /// slot when it ends so that subscribers see the channel closed.
    urcs: Arc<Mutex<Option<broadcast::Sender<Urc>>>>,
    closed: watch::Receiver<bool>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("name", &self.name).finish()
    }
}

impl Link {
    /// Starts the link task on the current tokio runtime. The task ends
    /// when the port closes or every handle is dropped.
    pub fn spawn<P>(port: P, config: LinkConfig) -> Link
    where
        P: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let (urc_tx, _) = broadcast::channel(config.urc_capacity.max(1));
        let urcs = Arc::new(Mutex::new(Some(urc_tx.clone())));
        let (closed_tx, closed) = watch::channel(false);
        let name: Arc<str> = config.name.clone().into();
        let task = Task {
            config,
            digester: Digester::new(),
            urcs: urc_tx,
            active: None,
        };
        let slot = urcs.clone();
        tokio::spawn(async move {
            task.run(port, rx).await;
            if let Ok(mut s) = slot.lock() {
                s.take();
            }
            let _ = closed_tx.send(true);
        });
        Link {
            name,
            tx,
            urcs,
            closed,
        }
    }

    /// The modem id given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends a typed command and parses its answer.
    pub async fn send<C: AtCommand>(&self, cmd: &C) -> Result<C::Response, LinkError> {
        self.send_payload(cmd).await.map_err(|e| e.error)
    }

    /// [`send`](Self::send) for a command with a payload after the `> `
    /// prompt (`+CMGS`): an error also says whether the payload had been
    /// written, which decides between "not sent" and "outcome unknown".
    /// The request runs to its own timeout even when this future is
    /// dropped.
    pub async fn send_payload<C: AtCommand>(&self, cmd: &C) -> Result<C::Response, PayloadError> {
        let text = cmd.text();
        let written = Arc::new(AtomicBool::new(false));
        let lines = self
            .request(
                text.clone(),
                cmd.in_flight(),
                cmd.timeout(),
                cmd.ok_optional(),
                written.clone(),
            )
            .await;
        let written = written.load(Ordering::Acquire);
        let lines = lines.map_err(|error| PayloadError { error, written })?;
        cmd.parse(&lines).map_err(|source| PayloadError {
            error: LinkError::Parse {
                command: text,
                source,
            },
            written,
        })
    }

    async fn request(
        &self,
        text: String,
        in_flight: InFlight,
        timeout: Duration,
        ok_optional: bool,
        written: Arc<AtomicBool>,
    ) -> Result<Vec<String>, LinkError> {
        let (reply, rx) = oneshot::channel();
        let req = Request {
            text,
            in_flight,
            timeout,
            ok_optional,
            reply,
            written,
        };
        self.tx.send(req).await.map_err(|_| LinkError::Closed)?;
        rx.await.unwrap_or(Err(LinkError::Closed))
    }

    /// A new URC subscription (see the lag policy in the module docs). On
    /// a closed link the receiver reports closed at once.
    pub fn subscribe(&self) -> broadcast::Receiver<Urc> {
        match self.urcs.lock().ok().as_deref() {
            Some(Some(tx)) => tx.subscribe(),
            _ => broadcast::channel(1).1,
        }
    }

    /// Whether the port has gone away.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves when the port has gone away.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }
}

struct Active {
    req: Request,
    lines: Vec<String>,
    deadline: Instant,
    /// Set when an `ok_optional` command got its answer line.
    grace: Option<Instant>,
}

struct Task {
    config: LinkConfig,
    digester: Digester,
    urcs: broadcast::Sender<Urc>,
    active: Option<Active>,
}

/// Why the task stops.
struct Stop;

impl Task {
    async fn run<P>(mut self, port: P, mut rx: mpsc::Receiver<Request>)
    where
        P: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let modem = self.config.name.clone();
        info!(modem = %modem, "AT link started");
        let (mut rd, mut wr) = tokio::io::split(port);
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self
                .active
                .as_ref()
                .map(|a| a.grace.map_or(a.deadline, |g| g.min(a.deadline)));
            let step = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) => {
                        info!(modem = %modem, "port closed (EOF)");
                        Err(Stop)
                    }
                    Err(e) => {
                        info!(modem = %modem, error = %e, "port closed");
                        Err(Stop)
                    }
                    Ok(n) => {
                        trace!(modem = %modem, bytes = ?String::from_utf8_lossy(buf.get(..n).unwrap_or_default()), "read");
                        let events = self.digester.feed(buf.get(..n).unwrap_or_default());
                        self.handle(events, &mut wr).await
                    }
                },
                req = rx.recv(), if self.active.is_none() => match req {
                    None => Err(Stop),
                    Some(req) => self.start(req, &mut wr).await,
                },
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    self.expire(&mut wr).await
                }
            };
            if step.is_err() {
                break;
            }
        }
        if let Some(a) = self.active.take() {
            let _ = a.req.reply.send(Err(LinkError::Closed));
        }
        rx.close();
        while let Ok(req) = rx.try_recv() {
            let _ = req.reply.send(Err(LinkError::Closed));
        }
        info!(modem = %modem, "AT link stopped");
    }

    async fn write<W: AsyncWrite + Unpin>(
        &self,
        wr: &mut W,
        bytes: &[u8],
    ) -> Result<(), WriteFail> {
        match tokio::time::timeout(self.config.write_timeout, async {
            wr.write_all(bytes).await?;
            wr.flush().await
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                info!(modem = %self.config.name, error = %e, "write failed, port closed");
                Err(WriteFail::Closed)
            }
            Err(_) => Err(WriteFail::Timeout),
        }
    }

    async fn start<W: AsyncWrite + Unpin>(&mut self, req: Request, wr: &mut W) -> Result<(), Stop> {
        debug!(modem = %self.config.name, command = %loggable(&req.text), "send");
        let mut line = req.text.clone().into_bytes();
        line.push(b'\r');
        match self.write(wr, &line).await {
            Ok(()) => {}
            Err(WriteFail::Closed) => {
                let _ = req.reply.send(Err(LinkError::Closed));
                return Err(Stop);
            }
            Err(WriteFail::Timeout) => {
                let after = self.config.write_timeout;
                let _ = req.reply.send(Err(LinkError::Timeout {
                    command: req.text,
                    after,
                }));
                return Ok(());
            }
        }
        self.digester.start(req.in_flight.clone());
        self.active = Some(Active {
            deadline: Instant::now() + req.timeout,
            req,
            lines: Vec::new(),
            grace: None,
        });
        Ok(())
    }

    async fn handle<W: AsyncWrite + Unpin>(
        &mut self,
        events: Vec<Event>,
        wr: &mut W,
    ) -> Result<(), Stop> {
        let modem = self.config.name.clone();
        for ev in events {
            match ev {
                Event::Line(line) => {
                    let Some(a) = self.active.as_mut() else {
                        continue;
                    };
                    if a.req.ok_optional
                        && a.req
                            .in_flight
                            .prefixes
                            .iter()
                            .any(|p| after_prefix(&line, p).is_some())
                    {
                        a.grace = Some(Instant::now() + self.config.ok_grace);
                    }
                    if a.lines.len() < self.config.max_lines {
                        a.lines.push(line);
                    } else {
                        warn!(modem = %modem, command = %a.req.text, "too many response lines, dropping");
                    }
                }
                Event::Final(result) => {
                    let Some(a) = self.active.take() else {
                        continue;
                    };
                    debug!(modem = %modem, command = %loggable(&a.req.text), ?result, lines = a.lines.len(), "done");
                    let reply = match result {
                        Ok(()) => Ok(a.lines),
                        Err(error) => Err(LinkError::At {
                            command: a.req.text,
                            error,
                        }),
                    };
                    let _ = a.req.reply.send(reply);
                }
                Event::Prompt => {
                    let Some((payload, written)) = self.active.as_ref().and_then(|a| {
                        let p = a.req.in_flight.payload.clone()?;
                        Some((p, a.req.written.clone()))
                    }) else {
                        continue;
                    };
                    debug!(modem = %modem, "prompt, writing PDU");
                    if !self.config.prompt_delay.is_zero() {
                        tokio::time::sleep(self.config.prompt_delay).await;
                    }
                    let mut bytes = payload.into_bytes();
                    bytes.push(0x1A);
                    match self.write(wr, &bytes).await {
                        // A write that timed out may have reached the
                        // modem all the same: counted as written.
                        Ok(()) | Err(WriteFail::Timeout) => written.store(true, Ordering::Release),
                        Err(WriteFail::Closed) => return Err(Stop),
                    }
                }
                Event::Urc(urc) => {
                    debug!(modem = %modem, ?urc, "URC");
                    // No receivers is fine: nobody listens yet.
                    let _ = self.urcs.send(urc);
                }
                Event::Stray(line) => {
                    warn!(modem = %modem, %line, "result code with no command in flight");
                }
                Event::Overflow { len } => {
                    warn!(modem = %modem, len, "over-long line discarded");
                }
                Event::MissingPdu(header) => {
                    warn!(modem = %modem, %header, "message header without PDU");
                    let _ = self.urcs.send(Urc::Unknown(header));
                }
            }
        }
        Ok(())
    }

    async fn expire<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> Result<(), Stop> {
        let Some(a) = self.active.take() else {
            return Ok(());
        };
        let now = Instant::now();
        self.digester.abandon();
        if a.grace.is_some_and(|g| g <= now && g < a.deadline) {
            debug!(modem = %self.config.name, command = %loggable(&a.req.text), "no final OK; answer taken as complete");
            let _ = a.req.reply.send(Ok(a.lines));
            return Ok(());
        }
        warn!(modem = %self.config.name, command = %a.req.text, after = ?a.req.timeout, "command timed out");
        if a.req.in_flight.prompt {
            // 27.005 §3.5.1: ESC aborts the message being entered.
            if let Err(WriteFail::Closed) = self.write(wr, &[0x1B]).await {
                let _ = a.req.reply.send(Err(LinkError::Closed));
                return Err(Stop);
            }
        }
        let _ = a.req.reply.send(Err(LinkError::Timeout {
            command: a.req.text,
            after: a.req.timeout,
        }));
        Ok(())
    }
}

enum WriteFail {
    Closed,
    Timeout,
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The command as it may appear in a log: a PIN or PUK (`+CPIN=`, `+CPWD=`,
/// `+CLCK=`) is a secret and never reaches a log file, at any level.
fn loggable(command: &str) -> std::borrow::Cow<'_, str> {
    let upper = command.to_ascii_uppercase();
    for secret in ["+CPIN=", "+CPWD=", "+CLCK="] {
        if let Some(at) = upper.find(secret) {
            let keep = command.get(..at + secret.len()).unwrap_or("");
            return std::borrow::Cow::Owned(format!("{keep}<redacted>"));
        }
    }
    std::borrow::Cow::Borrowed(command)
}

#[cfg(test)]
mod loggable_tests {
    use super::loggable;

    #[test]
    fn pins_never_reach_the_log() {
        assert_eq!(loggable("AT+CPIN=\"1234\""), "AT+CPIN=<redacted>");
        assert_eq!(
            loggable("at+cpin=\"12345678\",\"1234\""),
            "at+cpin=<redacted>"
        );
        assert_eq!(loggable("AT+CPIN?"), "AT+CPIN?");
        assert_eq!(loggable("AT+CMGS=23"), "AT+CMGS=23");
    }
}
