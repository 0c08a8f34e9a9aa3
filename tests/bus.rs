//! The bus through a real Unix socket, against a real store in a temporary
//! directory. The backend below does the engine's job for real: it parses
//! the number, encodes SMS-SUBMIT PDUs and queues them in the store.

mod common;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use smsgate::bus::{Backend, BusConfig, BusError, EngineError, OutboundRequest, Server};
use smsgate::modem::{ModemView, Snapshot};
use smsgate::pdu::{encode_submit, Address, MessageClass, SubmitOptions};
use smsgate::store::{
    now_ms, BusState, Enqueued, InboundBody, InboundId, InboundPart, NewOutbound, Store,
    StoreConfig,
};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

const MODEM: &str = "860000000000001";

/// The engine's send path over a real store.
#[derive(Clone)]
struct TestBackend {
    store: Store,
    modems: Arc<Mutex<Vec<ModemView>>>,
    max_parts: u32,
    queue_limit: Arc<AtomicU64>,
}

impl TestBackend {
    async fn send_real(self, req: OutboundRequest) -> Result<Enqueued, EngineError> {
        let to = Address::parse_number(&req.to).map_err(EngineError::InvalidNumber)?;
        let modem = match req.modem {
            None => None,
            Some(pin) => Some(
                self.modems()
                    .into_iter()
                    .find(|v| v.id == pin || v.snapshot.name == pin)
                    .map(|v| v.id)
                    .ok_or(EngineError::UnknownModem(pin))?,
            ),
        };
        let opts = SubmitOptions {
            status_report: req.report,
            class: req.flash.then_some(MessageClass::Class0),
            ..SubmitOptions::default()
        };
        let pdus = encode_submit(&to, &req.text, &opts).map_err(|_| EngineError::TextTooLong {
            parts: 256,
            max: self.max_parts,
        })?;
        let parts = u32::try_from(pdus.len()).unwrap_or(u32::MAX);
        if parts > self.max_parts {
            return Err(EngineError::TextTooLong {
                parts,
                max: self.max_parts,
            });
        }
        let queued = self.store.stats().await?.parts_queued;
        if queued + u64::from(parts) > self.queue_limit.load(Ordering::Relaxed) {
            return Err(EngineError::QueueFull);
        }
        let now = now_ms();
        let validity_ms = req.validity.map(|v| v.as_millis() as i64);
        let new = NewOutbound {
            idempotency_key: req.key,
            recipient: req.to,
            text: Some(req.text),
            parts: pdus.into_iter().map(|p| p.octets).collect(),
            send_at_ms: req.send_at_ms,
            valid_until_ms: validity_ms.map(|v| req.send_at_ms.unwrap_or(now) + v),
            modem,
            client: req.client,
        };
        // The engine's conversion: a reused key is a conflict.
        self.store
            .enqueue(new, now)
            .await
            .map_err(EngineError::from)
    }
}

impl Backend for TestBackend {
    fn store(&self) -> &Store {
        &self.store
    }
    fn send(
        &self,
        req: OutboundRequest,
    ) -> impl Future<Output = Result<Enqueued, EngineError>> + Send {
        self.clone().send_real(req)
    }
    fn modems(&self) -> Vec<ModemView> {
        self.modems.lock().unwrap().clone()
    }
}

struct Bus {
    dir: TempDir,
    socket: PathBuf,
    backend: TestBackend,
    server: Option<Server>,
}

impl Bus {
    async fn start() -> Bus {
        Bus::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut BusConfig)) -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_async(StoreConfig::at(dir.path().join("smsgate.db")))
            .await
            .unwrap();
        let view = ModemView {
            id: MODEM.into(),
            snapshot: Snapshot {
                name: "left".into(),
                port: "/dev/smsgate/left".into(),
                state: "ready".into(),
                operator: Some("Testnet".into()),
                signal: Some(20),
                registration: Some("home".into()),
                ..Snapshot::default()
            },
            ..ModemView::default()
        };
        let backend = TestBackend {
            store,
            modems: Arc::new(Mutex::new(vec![view])),
            max_parts: 3,
            queue_limit: Arc::new(AtomicU64::new(100_000)),
        };
        // A directory that does not exist yet: the server creates it.
        let socket = dir.path().join("run/smsgate/smsgate.sock");
        let mut config = BusConfig {
            socket: socket.clone(),
            group: None,
            ..BusConfig::default()
        };
        tweak(&mut config);
        let server = Server::bind(config, backend.clone()).await.unwrap();
        Bus {
            dir,
            socket,
            backend,
            server: Some(server),
        }
    }

    fn store(&self) -> &Store {
        &self.backend.store
    }

    async fn connect(&self) -> Client {
        Client::connect(&self.socket).await
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    w: OwnedWriteHalf,
}

const WAIT: Duration = Duration::from_secs(20);

impl Client {
    async fn connect(path: &Path) -> Client {
        let s = UnixStream::connect(path).await.unwrap();
        let (r, w) = s.into_split();
        Client {
            lines: BufReader::new(r).lines(),
            w,
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("no line within the deadline")
            .unwrap()
            .expect("connection closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
    }

    async fn maybe_next(&mut self, wait: Duration) -> Option<Value> {
        match tokio::time::timeout(wait, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Some(serde_json::from_str(&line).unwrap()),
            _ => None,
        }
    }

    async fn is_closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(WAIT, self.lines.next_line()).await,
            Ok(Ok(None)) | Ok(Err(_))
        )
    }

    async fn req(&mut self, v: Value) -> Value {
        let mut line = v.to_string();
        line.push('\n');
        self.write_raw(line.as_bytes()).await;
        self.next().await
    }

    async fn ok(&mut self, v: Value) -> Value {
        let r = self.req(v.clone()).await;
        assert_eq!(r["ok"], true, "{v} -> {r}");
        r
    }

    async fn err(&mut self, v: Value) -> Value {
        let r = self.req(v.clone()).await;
        assert_eq!(r["ok"], false, "{v} -> {r}");
        r
    }

    /// The next event, skipping none.
    async fn event(&mut self) -> Value {
        let e = self.next().await;
        assert!(e.get("event").is_some(), "not an event: {e}");
        e
    }
}

fn inbound_part(sender: &str, text: &str, scts_ms: i64) -> InboundPart {
    // A stand-in PDU whose bytes differ whenever sender, time or text do,
    // as a real SMS-DELIVER's would (the de-duplication key).
    let mut pdu = sender.as_bytes().to_vec();
    pdu.extend_from_slice(&scts_ms.to_be_bytes());
    pdu.extend_from_slice(text.as_bytes());
    InboundPart {
        modem: MODEM.into(),
        sim: Some("8944100000000000001".into()),
        sender: sender.into(),
        scts_ms,
        concat: None,
        body: InboundBody::Text(text.into()),
        pdu,
        storage_index: Some(1),
        received_ms: scts_ms + 1000,
    }
}

async fn receive(store: &Store, sender: &str, text: &str, scts_ms: i64) -> InboundId {
    let c = store
        .commit_inbound(inbound_part(sender, text, scts_ms))
        .await
        .unwrap();
    c.completed.expect("a single part completes a message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_gets_its_mode_its_directory_and_replaces_a_stale_file() {
    let bus = Bus::start().await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&bus.socket), 0o660);
    assert_eq!(mode(bus.socket.parent().unwrap()), 0o755);

    // A second server on a live socket must not steal it.
    let again = BusConfig {
        socket: bus.socket.clone(),
        group: None,
        ..BusConfig::default()
    };
    let err = Server::bind(again.clone(), bus.backend.clone()).await;
    assert!(matches!(err, Err(BusError::InUse(_))), "{:?}", err.err());

    let mut bus = bus;
    let backend = bus.backend.clone();
    let socket = bus.socket.clone();
    bus.server.take().unwrap().shutdown().await;
    assert!(!socket.exists(), "shutdown removes the socket");
    // A stale socket file, as a crash leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let server = Server::bind(again.clone(), backend.clone()).await.unwrap();
    let mut c = Client::connect(&socket).await;
    c.ok(json!({"op": "hello"})).await;
    server.shutdown().await;

    // A regular file is never deleted.
    std::fs::write(&socket, b"precious").unwrap();
    let err = Server::bind(again, backend).await;
    assert!(
        matches!(err, Err(BusError::NotASocket(_))),
        "{:?}",
        err.err()
    );
    assert_eq!(std::fs::read(&socket).unwrap(), b"precious");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_answers_and_echoes_its_id() {
    let bus = Bus::start().await;
    let mut c = bus.connect().await;

    let r = c
        .ok(json!({"op": "hello", "id": 1, "client": "test"}))
        .await;
    assert_eq!(r["id"], 1);
    assert_eq!(r["op"], "hello");
    assert_eq!(r["version"], 1);
    assert!(r["server"].as_str().unwrap().starts_with("smsgate "));
    assert!(r["user"].is_string());

    // 30 days ahead, whole seconds: within the 366-day horizon.
    let at_s = now_ms() / 1000 + 30 * 24 * 3600;
    let r = c
        .ok(
            json!({"op": "send", "id": "s1", "to": "+4930123456", "text": "hello world",
                   "report": true, "validity": 3600, "send_at": at_s,
                   "some_future_field": [1, 2]}),
        )
        .await;
    assert_eq!(r["id"], "s1");
    assert_eq!(r["created"], true);
    assert_eq!(r["parts"], 1);
    assert_eq!(r["state"], "queued");
    let id = r["message"].as_i64().unwrap();

    let s = c.ok(json!({"op": "status", "message": id})).await;
    assert_eq!(s["message"], id);
    assert_eq!(s["to"], "+4930123456");
    assert_eq!(s["state"], "queued");
    assert_eq!(s["parts"][0]["seq"], 1);
    assert_eq!(s["parts"][0]["state"], "queued");
    // The stored part is a real SMS-SUBMIT with TP-SRR set (TS 23.040 §9.2.2.2).
    let st = bus
        .store()
        .outbound_status(smsgate::store::MessageId(id))
        .await
        .unwrap();
    assert_eq!(st.send_at_ms, at_s * 1000);
    assert_eq!(st.valid_until_ms, Some(at_s * 1000 + 3_600_000));

    let r = c.ok(json!({"op": "cancel", "message": id})).await;
    assert_eq!(r["state"], "cancelled");

    let r = c.ok(json!({"op": "modems"})).await;
    assert_eq!(r["modems"][0]["id"], MODEM);
    assert_eq!(r["modems"][0]["name"], "left");
    assert_eq!(r["modems"][0]["operator"], "Testnet");

    let r = c.ok(json!({"op": "stats"})).await;
    assert_eq!(r["stats"]["bus_clients"], 1);
    assert!(r["stats"]["last_event"].as_u64().unwrap() >= 2);

    let inbound = receive(bus.store(), "+4917000001", "hi there", 1_795_687_200_000).await;
    let r = c.ok(json!({"op": "subscribe", "id": 9})).await;
    assert_eq!(r["id"], 9);
    let cursor = r["cursor"].as_u64().unwrap();
    let e = c.event().await;
    assert_eq!(e["event"], "inbound");
    assert_eq!(e["id"], inbound.0);
    assert_eq!(e["from"], "+4917000001");
    assert_eq!(e["text"], "hi there");
    assert_eq!(e["time"], "2026-11-26T10:00:00Z");
    assert_eq!(e["modem"], MODEM);
    assert_eq!(e["parts"], 1);
    assert_eq!(e["partial"], false);
    assert_eq!(e["cursor"], cursor);

    // Modem and status events, joined with the modem list and the status.
    bus.store()
        .set_modem_state(MODEM, "ready", now_ms())
        .await
        .unwrap();
    let e = c.event().await;
    assert_eq!(e["event"], "modem");
    assert_eq!(e["modem"], MODEM);
    assert_eq!(e["name"], "left");
    assert_eq!(e["state"], "ready");
    assert_eq!(e["operator"], "Testnet");
    assert_eq!(e["signal"], 20);
    assert_eq!(e["registration"], "home");
    assert!(e["cursor"].as_u64().unwrap() > cursor);

    let r = c
        .ok(json!({"op": "send", "to": "+4930999", "text": "x", "key": "k1"}))
        .await;
    let sent = r["message"].as_i64().unwrap();
    let e = c.event().await;
    assert_eq!(e["event"], "status");
    assert_eq!(e["message"], sent);
    assert_eq!(e["key"], "k1");
    assert_eq!(e["state"], "queued");
    assert_eq!(e["parts"][0]["seq"], 1);

    let r = c
        .ok(json!({"op": "ack", "id": 10, "message": inbound.0}))
        .await;
    assert_eq!(r["message"], inbound.0);
    let m = bus.store().inbound(inbound).await.unwrap();
    assert_eq!(m.bus_state, BusState::Acked);
    bus.stop().await;
}

/// The reply to a request comes before the events it caused, every time:
/// the `queued` status of a send is committed (and fanned out) before the
/// send's reply is written, so only the connection's turn keeps them in
/// order. Many rounds, because losing the race is a matter of timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_precedes_the_events_its_request_caused() {
    let bus = Bus::start().await;
    let mut c = bus.connect().await;
    c.ok(json!({"op": "subscribe", "events": ["status"]})).await;
    for n in 0..300 {
        let r = c
            .ok(json!({"op": "send", "id": n, "to": "+4930999", "text": format!("m{n}")}))
            .await;
        assert_eq!(r["op"], "send", "round {n}: {r}");
        assert_eq!(r["id"], n, "round {n}: {r}");
        let e = c.event().await;
        assert_eq!(e["message"], r["message"], "round {n}: {e}");
        assert_eq!(e["state"], "queued", "round {n}: {e}");
    }
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_its_code_and_the_connection_survives() {
    let bus = Bus::start().await;
    let mut c = bus.connect().await;
    let existing = c
        .ok(json!({"op": "send", "to": "+4930123", "text": "a", "key": "dup"}))
        .await["message"]
        .as_i64()
        .unwrap();
    c.ok(json!({"op": "send", "to": "+4930124", "text": "b", "modem": "left"}))
        .await;
    let long = "x".repeat(160 * 4);
    let cases: Vec<(&[u8], &str, Option<&str>)> = vec![
        (b"{not json", "bad_json", None),
        (b"[1,2]", "bad_json", None),
        (b"\xff\xfe", "bad_json", None),
        (br#"{"op":"teleport","id":1}"#, "unknown_op", None),
        (br#"{"id":1}"#, "missing_field", Some("op")),
        (br#"{"op":"send","text":"hi"}"#, "missing_field", Some("to")),
        (
            br#"{"op":"send","to":"+491","text":7}"#,
            "invalid_field",
            Some("text"),
        ),
        (
            br#"{"op":"send","to":"+491","text":"x","flash":"no"}"#,
            "invalid_field",
            Some("flash"),
        ),
        (
            br#"{"op":"send","to":"+491","text":"x","send_at":"soon"}"#,
            "invalid_field",
            Some("send_at"),
        ),
        (
            br#"{"op":"send","to":"+491","text":"x","send_at":"9999-01-01T00:00:00Z"}"#,
            "invalid_field",
            Some("send_at"),
        ),
        (
            br#"{"op":"send","to":"+491","text":"x","validity":38102401}"#,
            "invalid_field",
            Some("validity"),
        ),
        (
            br#"{"op":"subscribe","events":[]}"#,
            "invalid_field",
            Some("events"),
        ),
        (
            br#"{"op":"status","message":"seven"}"#,
            "invalid_field",
            Some("message"),
        ),
        (
            br#"{"op":"subscribe","since":-3}"#,
            "invalid_field",
            Some("since"),
        ),
        (
            br#"{"op":"send","to":"+49 30 12x","text":"x"}"#,
            "invalid_number",
            None,
        ),
        (
            br#"{"op":"send","to":"+491","text":"x","modem":"right"}"#,
            "unknown_modem",
            None,
        ),
        (br#"{"op":"status","message":999999}"#, "not_found", None),
        (br#"{"op":"cancel","message":999999}"#, "not_found", None),
        (br#"{"op":"ack","message":999999}"#, "not_found", None),
        (
            br#"{"op":"send","to":"+4930123","text":"other","key":"dup"}"#,
            "conflict",
            None,
        ),
    ];
    for (line, code, field) in cases {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        c.write_raw(&bytes).await;
        let r = c.next().await;
        let shown = String::from_utf8_lossy(line);
        assert_eq!(r["ok"], false, "{shown} -> {r}");
        assert_eq!(r["error"]["code"], code, "{shown} -> {r}");
        assert!(r["error"]["message"].as_str().unwrap().len() > 3);
        if let Some(f) = field {
            let msg = r["error"]["message"].as_str().unwrap();
            assert!(msg.contains(&format!("\"{f}\"")), "{shown}: {msg}");
        }
        c.ok(json!({"op": "hello"})).await;
    }
    let r = c
        .err(json!({"op": "send", "id": 4, "to": "+491", "text": long}))
        .await;
    assert_eq!(r["error"]["code"], "text_too_long");
    assert_eq!(r["id"], 4);
    assert_eq!(r["op"], "send");

    bus.backend.queue_limit.store(1, Ordering::Relaxed);
    let r = c
        .err(json!({"op": "send", "to": "+491", "text": "x"}))
        .await;
    assert_eq!(r["error"]["code"], "queue_full");
    c.ok(json!({"op": "hello"})).await;

    // A message already handed to a modem cannot be cancelled.
    bus.store().claim_due(MODEM, now_ms(), 10).await.unwrap();
    let r = c.err(json!({"op": "cancel", "message": existing})).await;
    assert_eq!(r["error"]["code"], "conflict");

    // The store going away makes requests unavailable, not the connection.
    bus.store().clone().close().await;
    let r = c.err(json!({"op": "status", "message": existing})).await;
    assert_eq!(r["error"]["code"], "unavailable");
    c.ok(json!({"op": "hello"})).await;
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_line_is_refused_and_the_connection_closed() {
    let bus = Bus::start().await;
    let mut c = bus.connect().await;
    c.ok(json!({"op": "hello"})).await;
    // Exactly at the limit is accepted (and fails later as bad JSON).
    let mut at_limit = vec![b' '; 65536 - 2];
    at_limit.splice(0..0, b"{}".iter().copied());
    at_limit.push(b'\n');
    c.write_raw(&at_limit).await;
    assert_eq!(c.next().await["error"]["code"], "missing_field");

    let mut big = br#"{"op":"send","to":"+491","text":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"\"}\n");
    c.write_raw(&big).await;
    let r = c.next().await;
    assert_eq!(r["error"]["code"], "line_too_long");
    assert!(c.is_closed().await);
    assert_eq!(bus.store().stats().await.unwrap().parts_queued, 0);
    // Other clients are unaffected.
    bus.connect().await.ok(json!({"op": "hello"})).await;
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_with_the_same_key_is_the_same_message() {
    let bus = Bus::start().await;
    let mut c = bus.connect().await;
    let req = json!({"op": "send", "to": "+4930123", "text": "once", "key": "order-17"});
    let first = c.ok(req.clone()).await;
    assert_eq!(first["created"], true);
    // A client that lost the reply reconnects and retries.
    drop(c);
    let mut c = bus.connect().await;
    let again = c.ok(req).await;
    assert_eq!(again["created"], false);
    assert_eq!(again["message"], first["message"]);
    assert_eq!(bus.store().stats().await.unwrap().parts_queued, 1);
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_a_cursor_replays_what_was_missed() {
    let bus = Bus::start().await;
    let mut c = bus.connect().await;
    c.ok(json!({"op": "subscribe", "events": ["status"]})).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = c
            .req(json!({"op": "send", "to": "+4930123", "text": format!("m{i}")}))
            .await;
        // The event may come before or after the reply: collect both.
        let (reply, event) = if r.get("event").is_some() {
            (c.next().await, r)
        } else {
            (r, c.event().await)
        };
        assert_eq!(reply["ok"], true);
        assert_eq!(event["message"], reply["message"]);
        ids.push((reply["message"].clone(), event["cursor"].as_u64().unwrap()));
    }
    drop(c);
    // Missed while away: two more messages and a cancel.
    let mut other = bus.connect().await;
    let m4 = other
        .ok(json!({"op": "send", "to": "+4930123", "text": "m3"}))
        .await["message"]
        .clone();
    other.ok(json!({"op": "cancel", "message": m4})).await;
    receive(bus.store(), "+4917000002", "ignored by the filter", 1).await;

    let mut c = bus.connect().await;
    let since = ids[0].1;
    let r = c
        .ok(json!({"op": "subscribe", "events": ["status"], "since": since}))
        .await;
    assert_eq!(r["cursor"], since);
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = c.event().await;
        assert_eq!(e["event"], "status");
        got.push((
            e["message"].clone(),
            e["state"].clone(),
            e["cursor"].as_u64().unwrap(),
        ));
    }
    assert_eq!(got[0].0, ids[1].0);
    assert_eq!(got[1].0, ids[2].0);
    assert_eq!(got[2], (m4.clone(), json!("queued"), got[2].2));
    assert_eq!(got[3].0, m4);
    assert_eq!(got[3].1, "cancelled");
    assert!(got.windows(2).all(|w| w[0].2 < w[1].2), "cursors grow");
    assert!(c.maybe_next(Duration::from_millis(300)).await.is_none());

    // A cursor from a database that no longer exists starts at the end.
    let mut c = bus.connect().await;
    let last = bus.store().stats().await.unwrap().last_event;
    let r = c
        .ok(json!({"op": "subscribe", "events": ["status"], "since": last + 1000}))
        .await;
    assert_eq!(r["cursor"], last);
    let r = c
        .req(json!({"op": "send", "to": "+4930123", "text": "after"}))
        .await;
    let e = if r.get("event").is_some() {
        r
    } else {
        c.event().await
    };
    assert_eq!(e["cursor"], last + 1);
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_inbound_is_delivered_again_until_acked() {
    let bus = Bus::start().await;
    let a = receive(bus.store(), "+4917000003", "first", 1_000_000).await;
    let b = receive(bus.store(), "+4917000004", "second", 2_000_000).await;

    let mut c = bus.connect().await;
    c.ok(json!({"op": "subscribe", "events": ["inbound"]}))
        .await;
    let e1 = c.event().await;
    let e2 = c.event().await;
    assert_eq!(
        (e1["id"].as_i64(), e2["id"].as_i64()),
        (Some(a.0), Some(b.0))
    );
    // Written to the socket, so recorded as delivered (not acked).
    c.ok(json!({"op": "hello"})).await;
    assert_eq!(
        bus.store().inbound(a).await.unwrap().bus_state,
        BusState::Delivered
    );
    c.ok(json!({"op": "ack", "message": a.0})).await;
    drop(c);

    // A new subscription gets what nobody acknowledged, once.
    let mut c = bus.connect().await;
    c.ok(json!({"op": "subscribe"})).await;
    let e = c.event().await;
    assert_eq!(e["id"], b.0);
    assert!(c.maybe_next(Duration::from_millis(300)).await.is_none());
    c.ok(json!({"op": "ack", "message": b.0})).await;
    c.ok(json!({"op": "ack", "message": b.0})).await; // repeating is fine
                                                      // Live messages still arrive.
    let d = receive(bus.store(), "+4917000005", "third", 3_000_000).await;
    let e = c.event().await;
    assert_eq!(e["id"], d.0);
    drop(c);

    let mut c = bus.connect().await;
    c.ok(json!({"op": "subscribe", "events": ["inbound"]}))
        .await;
    assert_eq!(c.event().await["id"], d.0);
    assert!(c.maybe_next(Duration::from_millis(300)).await.is_none());
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_back_the_others() {
    let bus = Bus::start().await;
    let mut slow = bus.connect().await;
    slow.ok(json!({"op": "subscribe", "events": ["inbound"]}))
        .await;
    let mut fast = bus.connect().await;
    fast.ok(json!({"op": "subscribe", "events": ["status"]}))
        .await;

    // Far more than the socket buffers and the per-client queue hold.
    const N: usize = 2000;
    let text = "y".repeat(400);
    let (store, backend) = (bus.store().clone(), bus.backend.clone());
    let producer = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..N {
            ids.push(receive(&store, "+4917000009", &format!("{i} {text}"), i as i64).await);
            if i % 10 == 0 {
                let req = OutboundRequest {
                    to: "+4930123".into(),
                    text: format!("{i}"),
                    ..OutboundRequest::default()
                };
                backend.send(req).await.unwrap();
            }
        }
        ids
    });
    for i in (0..N).step_by(10) {
        let e = fast.event().await;
        assert_eq!(e["state"], "queued");
        assert_eq!(e["message"], i / 10 + 1);
    }
    let ids = producer.await.unwrap();
    // The slow client's subscription stopped where its socket and its
    // queue were full: what was written is marked delivered, the rest is
    // still only in the store, not in the daemon's memory.
    let mut delivered = 0;
    let mut after = InboundId(0);
    loop {
        let page = bus.store().inbound_since(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        delivered += page
            .iter()
            .filter(|m| m.bus_state == BusState::Delivered)
            .count();
    }
    eprintln!("a client that never reads: {delivered} of {N} inbound written to its socket");
    assert!(
        delivered < N / 2,
        "{delivered} of {N} written to a client that never reads"
    );
    // Reading now, it gets everything, in order, replayed from the store.
    for id in &ids {
        assert_eq!(slow.event().await["id"], id.0);
    }
    bus.stop().await;
}

/// Child side of `a_refused_peer_gets_not_allowed`: runs after fork, as
/// `nobody`. Refused: exit status 0 when the server answered `not_allowed`
/// and closed. Allowed: exit status 0 when `hello` was answered.
fn peer_child(socket: &Path, refused: bool) -> i32 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return 2;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if !refused {
        if s.write_all(b"{\"op\":\"hello\"}\n").is_err() {
            return 6;
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return 3,
        }
    }
    let text = String::from_utf8_lossy(&buf[..n]);
    let want = if refused {
        "\"not_allowed\""
    } else {
        "\"ok\":true"
    };
    if text.contains(want) && text.ends_with('\n') {
        0
    } else {
        4
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_peer_gets_not_allowed() {
    use nix::sys::wait::WaitStatus;
    use nix::unistd::{Uid, User};
    if !Uid::effective().is_root() {
        eprintln!("SKIPPED: refused peer: needs root to run a client as another user");
        return;
    }
    let Ok(Some(nobody)) = User::from_name("nobody") else {
        eprintln!("SKIPPED: refused peer: no user `nobody`");
        return;
    };
    let bus = Bus::start().await;
    // Let `nobody` reach the socket through the file system, so the
    // credentials check is what refuses it.
    let mut p = bus.socket.clone();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    while p.pop() {
        if std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).is_err()
            || p == bus.dir.path()
        {
            break;
        }
    }
    let status = run_as(nobody.clone(), bus.socket.clone(), true).await;
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "refused child as nobody: {status:?} (2 connect failed, 3 read failed, 4 wrong answer)"
    );
    // Allowed after a reload, without restarting the server or dropping
    // its clients.
    let mut kept = bus.connect().await;
    kept.ok(json!({"op": "hello"})).await;
    if let Some(server) = &bus.server {
        server.reconfigure(BusConfig {
            socket: bus.socket.clone(),
            group: None,
            allow_users: vec!["nobody".into()],
            ..BusConfig::default()
        });
    }
    let status = run_as(nobody, bus.socket.clone(), false).await;
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "allowed child as nobody: {status:?}"
    );
    kept.ok(json!({"op": "stats"})).await;
    // Root is always allowed.
    bus.connect().await.ok(json!({"op": "hello"})).await;
    bus.stop().await;
}

/// Forks a client that drops to `user` and runs [`peer_child`].
async fn run_as(
    user: nix::unistd::User,
    socket: PathBuf,
    refused: bool,
) -> nix::sys::wait::WaitStatus {
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, setgid, setgroups, setuid, ForkResult};
    tokio::task::spawn_blocking(move || {
        // SAFETY: the child only makes system calls and leaves with _exit.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = if setgroups(&[]).is_ok()
                    && setgid(user.gid).is_ok()
                    && setuid(user.uid).is_ok()
                {
                    peer_child(&socket, refused)
                } else {
                    5
                };
                unsafe { nix::libc::_exit(code) }
            }
            ForkResult::Parent { child } => waitpid(child, None).unwrap(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socat_is_a_client() {
    if !common::have_program("socat", "the bus driven by socat") {
        return;
    }
    let bus = Bus::start().await;
    let input = concat!(
        r#"{"op":"hello","id":1,"client":"socat"}"#,
        "\n",
        r#"{"op":"send","id":2,"to":"+4930123456","text":"Hello from socat"}"#,
        "\n",
        "this is not json\r\n",
        r#"{"op":"status","id":3,"message":1}"#,
        "\n",
    );
    let socket = bus.socket.clone();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("socat")
            .args(["-t", "5", "-"])
            .arg(format!("UNIX-CONNECT:{}", socket.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["version"], 1);
    assert_eq!(lines[1]["message"], 1);
    assert_eq!(lines[2]["error"]["code"], "bad_json");
    assert_eq!(lines[3]["state"], "queued");
    assert_eq!(lines[3]["to"], "+4930123456");
    bus.stop().await;
}

/// The cursor of an event line and its message id, read without parsing
/// the (long) text.
fn cursor_and_id(line: &str) -> (u64, i64) {
    let num = |key: &str| -> i64 {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in {line:.200}"))
            + key.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    let id = if line.contains("\"event\":\"inbound\"") {
        num("\"id\":")
    } else {
        num("\"message\":")
    };
    (num("\"cursor\":") as u64, id)
}

/// Reads `n` event lines; (cursor, message id) each.
async fn events_of(c: &mut Client, n: usize) -> Vec<(u64, i64)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let line = tokio::time::timeout(WAIT * 3, c.lines.next_line())
            .await
            .expect("no line within the deadline")
            .unwrap()
            .expect("connection closed");
        if line.contains("\"event\"") {
            got.push(cursor_and_id(&line));
        }
    }
    got
}

/// The log's inbound and status entries after `since`: (cursor, message id).
async fn logged(store: &Store, since: u64, inbound: bool) -> Vec<(u64, i64)> {
    let mut out = Vec::new();
    let mut cursor = since;
    loop {
        let page = store.events_since(cursor, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.cursor;
        for e in page {
            match e.kind {
                smsgate::store::EventKind::InboundComplete { message, .. } if inbound => {
                    out.push((e.cursor, message.0))
                }
                smsgate::store::EventKind::MessageState { message, .. } => {
                    out.push((e.cursor, message.0))
                }
                _ => {}
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_subscribers_get_every_event_in_order_while_one_never_reads() {
    let bus = Bus::start().await;
    let mut stuck = bus.connect().await;
    stuck
        .ok(json!({"op": "subscribe", "events": ["inbound", "status"]}))
        .await;
    let mut readers = Vec::new();
    for _ in 0..50 {
        let mut c = bus.connect().await;
        c.ok(json!({"op": "subscribe", "events": ["inbound", "status"]}))
            .await;
        readers.push(c);
    }
    // One event every subscription sees proves all of them are live.
    let start = bus.store().stats().await.unwrap().last_event;
    let first = bus
        .backend
        .send(OutboundRequest {
            to: "+4930123".into(),
            text: "sync".into(),
            ..OutboundRequest::default()
        })
        .await
        .unwrap();
    for c in &mut readers {
        assert_eq!(c.event().await["message"], first.id.0);
    }
    assert_eq!(stuck.event().await["message"], first.id.0);
    let fanout = || bus.server.as_ref().unwrap().fanout();
    assert_eq!(fanout().subscribers, 51);
    let caught_up = fanout().catch_ups;

    // Many times the feed's capacity, with long lines: a daemon that kept
    // them for the client that does not read would grow by their size.
    const N: usize = 3000;
    let text = "z".repeat(1000);
    let (store, backend) = (bus.store().clone(), bus.backend.clone());
    let producer = tokio::spawn(async move {
        for i in 0..N {
            if i % 4 == 0 {
                let req = OutboundRequest {
                    to: "+4930123".into(),
                    text: format!("{i}"),
                    ..OutboundRequest::default()
                };
                backend.send(req).await.unwrap();
            } else {
                // A long text under a short stand-in PDU.
                let mut part = inbound_part("+4917000009", &format!("{i}"), i as i64);
                part.body = InboundBody::Text(format!("{i} {text}"));
                store.commit_inbound(part).await.unwrap();
            }
        }
    });
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|mut c| tokio::spawn(async move { events_of(&mut c, N).await }))
        .collect();
    producer.await.unwrap();
    let want = logged(bus.store(), start + 1, true).await;
    assert_eq!(want.len(), N);
    let mut held = fanout().held;
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            want,
            "a reader missed or reordered events"
        );
        held = held.max(fanout().held);
    }
    // The stuck client's lines were not kept for it: the feed holds at
    // most its capacity (the client's queue and socket a few more), and
    // the client fell behind the feed.
    assert!(held <= smsgate::bus::fanout::CAPACITY, "{held} lines held");
    const { assert!(N > 4 * smsgate::bus::fanout::CAPACITY) };
    // Reading now, it gets everything in order: what its queue and socket
    // held, then the rest from the store.
    assert_eq!(events_of(&mut stuck, N).await, want);
    assert!(
        fanout().catch_ups > caught_up,
        "the stuck client read the store"
    );
    assert!(stuck.maybe_next(Duration::from_millis(300)).await.is_none());
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_since_subscriber_replays_across_the_live_and_lagged_switch() {
    let bus = Bus::start().await;
    // Long keys make long status lines, so the socket and the queue hold
    // few of them.
    let send = |backend: TestBackend, i: usize| async move {
        let req = OutboundRequest {
            to: "+4930123".into(),
            text: format!("{i}"),
            key: Some(format!("{i:06}-{}", "k".repeat(180))),
            ..OutboundRequest::default()
        };
        backend.send(req).await.unwrap();
    };
    for i in 0..300 {
        send(bus.backend.clone(), i).await;
    }
    let since = 100;
    let mut c = bus.connect().await;
    let r = c
        .ok(json!({"op": "subscribe", "events": ["status"], "since": since}))
        .await;
    assert_eq!(r["cursor"], since);
    // More while the subscriber reads nothing (far more than its socket
    // and queue hold: it lags behind the feed), then while it reads (it
    // catches up from the store and rejoins the live feed), then once it
    // is live.
    const M: usize = 4000;
    let fanout = || bus.server.as_ref().unwrap().fanout();
    let caught_up = fanout().catch_ups;
    let (half, halfway) = tokio::sync::oneshot::channel();
    let backend = bus.backend.clone();
    let producer = tokio::spawn(async move {
        let mut half = Some(half);
        for i in 0..M {
            send(backend.clone(), 1000 + i).await;
            if i == M / 2 {
                let _ = half.take().map(|h| h.send(()));
            }
        }
    });
    halfway.await.unwrap();
    let mut got = events_of(&mut c, 300 - since as usize + M / 2).await;
    producer.await.unwrap();
    got.extend(events_of(&mut c, M / 2).await);
    let want = logged(bus.store(), since, false).await;
    assert_eq!(got, want);
    assert!(
        fanout().catch_ups > caught_up,
        "it never fell behind the feed"
    );
    // Live again: the next event comes from the feed.
    send(bus.backend.clone(), 9999).await;
    let last = events_of(&mut c, 1).await;
    assert_eq!(last[0].0, want.last().unwrap().0 + 1);
    assert!(c.maybe_next(Duration::from_millis(300)).await.is_none());
    bus.stop().await;
}

/// A client that writes its requests and closes its side (`echo … | socat`)
/// keeps its subscription: replay and live events go on; without a
/// subscription, the half-close ends the connection after the replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_keeps_the_subscription_and_ends_a_plain_connection() {
    let bus = Bus::start().await;
    let mut other = bus.connect().await;
    let first = other
        .ok(json!({"op": "send", "to": "+4930123", "text": "before"}))
        .await["message"]
        .clone();

    let mut c = bus.connect().await;
    c.write_raw(b"{\"op\":\"subscribe\",\"events\":[\"status\"],\"since\":0}\n")
        .await;
    c.w.shutdown().await.unwrap();
    let r = c.next().await;
    assert_eq!(r["ok"], true, "{r}");
    let replayed = c.event().await;
    assert_eq!(replayed["message"], first);
    // Live, after the half-close.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = other
        .ok(json!({"op": "send", "to": "+4930123", "text": "after"}))
        .await["message"]
        .clone();
    let live = c.event().await;
    assert_eq!(live["message"], second, "{live}");
    let stats = other.ok(json!({"op": "stats"})).await;
    assert_eq!(stats["stats"]["bus_clients"], 2);

    // No subscription: the pending replies, then the end.
    let mut plain = bus.connect().await;
    plain
        .write_raw(b"{\"op\":\"hello\",\"id\":1}\n{\"op\":\"stats\",\"id\":2}\n")
        .await;
    plain.w.shutdown().await.unwrap();
    assert_eq!(plain.next().await["id"], 1);
    assert_eq!(plain.next().await["id"], 2);
    assert!(plain.is_closed().await);

    // A half-closed subscriber that goes away frees its slot without
    // waiting for an event to fail.
    let mut gone = bus.connect().await;
    gone.write_raw(b"{\"op\":\"subscribe\",\"events\":[\"modem\"]}\n")
        .await;
    gone.w.shutdown().await.unwrap();
    assert_eq!(gone.next().await["ok"], true);
    assert_eq!(
        other.ok(json!({"op": "stats"})).await["stats"]["bus_clients"],
        3
    );
    drop(gone);
    let mut clients = 3;
    for _ in 0..100 {
        clients = other.ok(json!({"op": "stats"})).await["stats"]["bus_clients"]
            .as_u64()
            .unwrap();
        if clients == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(clients, 2, "the gone subscriber still counts");

    // The server's stop ends the half-closed subscriber too.
    drop(other);
    bus.stop().await;
    assert!(c.is_closed().await);
}
