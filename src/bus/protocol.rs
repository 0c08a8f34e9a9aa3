//! Protocol version 1: one JSON object per line both ways.
//!
//! Pure code: [`parse_line`] turns one received line into a [`Request`] (or
//! a [`RequestError`] carrying the error code to answer with), and the
//! builders below turn results into reply and event lines. The server owns
//! the I/O. `docs/protocol.md` is the reference for clients.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{ConsentQuery, OutboundRequest};
use crate::modem::ModemView;
use crate::store::{now_ms, InboundMessage, MessageState, OutboundStatus, StoreError};

/// The protocol version `hello` announces.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line accepted by default (64 KiB); longer lines are
/// refused with `line_too_long` and the connection is closed.
pub const MAX_LINE: usize = 64 * 1024;

/// Longest validity a client may ask for. TS 23.040 §9.2.3.12.1: the
/// relative TP-VP reaches at most 63 weeks.
pub const MAX_VALIDITY: Duration = Duration::from_secs(63 * 7 * 24 * 3600);

/// How far ahead `send_at` may lie (366 days). A later time is almost
/// always a mistake (a year typed wrong, milliseconds given as seconds)
/// and would hold a queue slot for ever.
pub const SEND_AT_HORIZON: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest `hello.client` name, in characters: the name is logged and
/// stored with every message the connection sends.
pub const MAX_CLIENT_NAME: usize = 64;

/// A stable error code, the `error.code` of a failed reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The line is not a JSON object.
    BadJson,
    /// `op` names no known request.
    UnknownOp,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong type or an impossible value.
    InvalidField,
    /// `to` is not a phone number.
    InvalidNumber,
    /// The text needs more parts than the daemon allows.
    TextTooLong,
    /// The pinned modem is not known.
    UnknownModem,
    /// The outbound queue is full.
    QueueFull,
    /// The peer's credentials are not on the allow lists.
    NotAllowed,
    /// No such message.
    NotFound,
    /// The request contradicts the stored state (idempotency key reused
    /// with other content, cancelling a message already being sent).
    Conflict,
    /// The line is longer than the limit; the connection closes.
    LineTooLong,
    /// The daemon cannot serve this now (store closed, shutting down).
    Unavailable,
    /// A bug or an unexpected failure; see the daemon's log.
    Internal,
    /// The recipient sent STOP: smsgate no longer sends to them until
    /// they send JOIN/START again (docs/privacy.md).
    OptedOut,
    /// A code from a newer server, kept as sent.
    Unknown(String),
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidNumber => "invalid_number",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::UnknownModem => "unknown_modem",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::OptedOut => "opted_out",
            ErrorCode::Unknown(raw) => raw,
        }
    }

    /// Parses a wire code; anything unknown is kept as `Unknown`.
    pub fn parse(code: &str) -> ErrorCode {
        const KNOWN: [ErrorCode; 15] = [
            ErrorCode::BadJson,
            ErrorCode::UnknownOp,
            ErrorCode::MissingField,
            ErrorCode::InvalidField,
            ErrorCode::InvalidNumber,
            ErrorCode::TextTooLong,
            ErrorCode::UnknownModem,
            ErrorCode::QueueFull,
            ErrorCode::NotAllowed,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::LineTooLong,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
            ErrorCode::OptedOut,
        ];
        KNOWN
            .into_iter()
            .find(|k| k.as_str() == code)
            .unwrap_or_else(|| ErrorCode::Unknown(code.to_owned()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bus code for a store failure.
pub fn store_error_code(e: &StoreError) -> &'static str {
    match e {
        StoreError::NotFound { .. } => "not_found",
        StoreError::IdempotencyConflict { .. } | StoreError::NotCancellable { .. } => "conflict",
        StoreError::Invalid(_) => "invalid_field",
        StoreError::Closed
        | StoreError::Full { .. }
        | StoreError::ReadOnly { .. }
        | StoreError::NotCommitted(_) => "unavailable",
        _ => "internal",
    }
}

/// Which event kinds a subscription wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMask {
    /// `inbound` events.
    pub inbound: bool,
    /// `status` events.
    pub status: bool,
    /// `modem` events.
    pub modem: bool,
}

impl Default for EventMask {
    /// All kinds.
    fn default() -> Self {
        EventMask {
            inbound: true,
            status: true,
            modem: true,
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Greeting; names the client for logs and audit.
    Hello {
        /// Client name.
        client: Option<String>,
    },
    /// Queue an SMS.
    /// `client` is left empty: the connection fills it in from `hello`.
    Send(OutboundRequest),
    /// State of an outbound message.
    Status {
        /// Message id.
        message: i64,
    },
    /// Cancel a queued outbound message.
    Cancel {
        /// Message id.
        message: i64,
    },
    /// Acknowledge an inbound message.
    Ack {
        /// Inbound message id.
        message: i64,
    },
    /// Start (or replace) this connection's event subscription.
    Subscribe {
        /// Wanted kinds.
        events: EventMask,
        /// Replay the log after this cursor.
        since: Option<u64>,
    },
    /// List modems.
    Modems,
    /// Counters.
    Stats,
    /// Erase everything about a person (admin: peers that see numbers).
    Forget {
        /// A phone number or an `sms:` handle.
        who: String,
    },
    /// Consent records (admin: peers that see numbers).
    Consent(ConsentQuery),
}

impl Request {
    /// The `op` name.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Send(_) => "send",
            Request::Status { .. } => "status",
            Request::Cancel { .. } => "cancel",
            Request::Ack { .. } => "ack",
            Request::Subscribe { .. } => "subscribe",
            Request::Modems => "modems",
            Request::Stats => "stats",
            Request::Forget { .. } => "forget",
            Request::Consent(_) => "consent",
        }
    }
}

/// A request with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The client's `id`, echoed in the reply.
    pub id: Option<Value>,
    /// What it asks.
    pub request: Request,
}

/// A line that cannot be served, with what to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The client's `id`, when it could be read.
    pub id: Option<Value>,
    /// The `op`, when it could be read.
    pub op: Option<String>,
    /// The error code.
    pub code: ErrorCode,
    /// A human explanation.
    pub message: String,
}

impl RequestError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RequestError {
            id: None,
            op: None,
            code,
            message: message.into(),
        }
    }

    /// The reply line for this error.
    pub fn reply(&self) -> String {
        error_reply(
            self.id.as_ref(),
            self.op.as_deref(),
            self.code.as_str(),
            &self.message,
        )
    }
}

/// Parses one request line (without its newline). Never panics; the
/// length is checked before anything is parsed.
pub fn parse_line(line: &[u8], max_line: usize) -> Result<Envelope, RequestError> {
    if line.len() > max_line {
        return Err(RequestError::new(
            ErrorCode::LineTooLong,
            format!("request line longer than {max_line} bytes"),
        ));
    }
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| RequestError::new(ErrorCode::BadJson, format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(RequestError::new(
            ErrorCode::BadJson,
            "a request must be a JSON object",
        ));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Number(_) | Value::String(_))) => Some(v.clone()),
        Some(_) => {
            return Err(RequestError::new(
                ErrorCode::InvalidField,
                "field \"id\" must be a number or a string",
            ))
        }
    };
    let fields = Fields(&obj);
    let with_ctx = |mut e: RequestError, op: Option<&str>| {
        e.id = id.clone();
        e.op = op.map(str::to_owned);
        e
    };
    let op = match obj.get("op") {
        None => {
            return Err(with_ctx(
                RequestError::new(ErrorCode::MissingField, "field \"op\" is required"),
                None,
            ))
        }
        Some(Value::String(op)) => op.as_str(),
        Some(_) => {
            return Err(with_ctx(
                RequestError::new(ErrorCode::InvalidField, "field \"op\" must be a string"),
                None,
            ))
        }
    };
    let request = parse_op(op, &fields).map_err(|e| with_ctx(e, Some(op)))?;
    Ok(Envelope { id, request })
}

fn parse_op(op: &str, f: &Fields<'_>) -> Result<Request, RequestError> {
    Ok(match op {
        "hello" => Request::Hello {
            client: f.client_name("client")?,
        },
        "send" => Request::Send(OutboundRequest {
            to: f.req_str("to")?,
            text: f.req_str("text")?,
            key: f.opt_str("key")?,
            modem: f.opt_str("modem")?,
            report: f.opt_bool("report")?.unwrap_or(false),
            flash: f.opt_bool("flash")?.unwrap_or(false),
            validity: f.validity("validity")?,
            send_at_ms: f.send_at("send_at", now_ms())?,
            client: None,
        }),
        "status" => Request::Status {
            message: f.req_id("message")?,
        },
        "cancel" => Request::Cancel {
            message: f.req_id("message")?,
        },
        "ack" => Request::Ack {
            message: f.req_id("message")?,
        },
        "subscribe" => Request::Subscribe {
            events: f.events("events")?,
            since: f.opt_u64("since")?,
        },
        "modems" => Request::Modems,
        "stats" => Request::Stats,
        "forget" => Request::Forget {
            who: f.req_str("who")?,
        },
        "consent" => Request::Consent(f.consent_query()?),
        other => {
            return Err(RequestError::new(
                ErrorCode::UnknownOp,
                format!("unknown op {:?}", truncate(other, 64)),
            ))
        }
    })
}

/// Typed access to a request's fields; a present `null` counts as absent.
struct Fields<'a>(&'a Map<String, Value>);

fn invalid(name: &str, what: &str) -> RequestError {
    RequestError::new(
        ErrorCode::InvalidField,
        format!("field {name:?} must be {what}"),
    )
}

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&Value, RequestError> {
        self.get(name).ok_or_else(|| {
            RequestError::new(
                ErrorCode::MissingField,
                format!("field {name:?} is required"),
            )
        })
    }

    fn opt_str(&self, name: &str) -> Result<Option<String>, RequestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(name, "a string")),
        }
    }

    fn req_str(&self, name: &str) -> Result<String, RequestError> {
        match self.required(name)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(invalid(name, "a string")),
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, RequestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(name, "true or false")),
        }
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, RequestError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(name, "a non-negative integer")),
        }
    }

    /// The `consent` op's fields: `who`, `limit` (1 to 1000, default
    /// 100), `after` (a handle, the previous page's `next`).
    fn consent_query(&self) -> Result<ConsentQuery, RequestError> {
        use crate::privacy::gate::{CONSENT_LIMIT, MAX_CONSENT_LIMIT};
        let limit = match self.opt_u64("limit")? {
            None => CONSENT_LIMIT,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=MAX_CONSENT_LIMIT).contains(n))
                .ok_or_else(|| invalid("limit", "an integer from 1 to 1000"))?,
        };
        let after = self.opt_str("after")?;
        if after
            .as_deref()
            .is_some_and(|a| !crate::privacy::handle::is_handle(a))
        {
            return Err(invalid(
                "after",
                "an sms: handle (the previous reply's next)",
            ));
        }
        Ok(ConsentQuery {
            who: self.opt_str("who")?,
            limit,
            after,
        })
    }

    fn req_id(&self, name: &str) -> Result<i64, RequestError> {
        self.required(name)?
            .as_i64()
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid(name, "a positive integer (a message id)"))
    }

    fn validity(&self, name: &str) -> Result<Option<Duration>, RequestError> {
        let what = "a number of seconds between 1 and 38102400 (63 weeks)";
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Duration::from_secs)
                .filter(|d| !d.is_zero() && *d <= MAX_VALIDITY)
                .map(Some)
                .ok_or_else(|| invalid(name, what)),
        }
    }

    /// `hello.client`: at most [`MAX_CLIENT_NAME`] characters and no
    /// control characters (it goes into log lines as it is).
    fn client_name(&self, name: &str) -> Result<Option<String>, RequestError> {
        let client = self.opt_str(name)?;
        if let Some(c) = &client {
            if c.chars().count() > MAX_CLIENT_NAME || c.chars().any(char::is_control) {
                return Err(invalid(
                    name,
                    "a name of at most 64 characters without control characters",
                ));
            }
        }
        Ok(client)
    }

    /// `send_at` as unix ms; no later than [`SEND_AT_HORIZON`] after `now_ms`.
    fn send_at(&self, name: &str, now_ms: i64) -> Result<Option<i64>, RequestError> {
        let what = "an RFC 3339 time or unix seconds, at most 366 days ahead";
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let ms = match v {
            Value::Number(n) => n.as_i64().and_then(|s| s.checked_mul(1000)).or_else(|| {
                // Fractional seconds are fine; beyond i64 ms is not.
                n.as_f64()
                    .filter(|s| s.is_finite() && s.abs() < 9.0e15)
                    .map(|s| (s * 1000.0) as i64)
            }),
            Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
                .ok()
                .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()),
            _ => None,
        };
        let horizon = now_ms.saturating_add(SEND_AT_HORIZON.as_millis() as i64);
        ms.filter(|ms| (0..=horizon).contains(ms))
            .map(Some)
            .ok_or_else(|| invalid(name, what))
    }

    fn events(&self, name: &str) -> Result<EventMask, RequestError> {
        let what = "a non-empty list of \"inbound\", \"status\", \"modem\"";
        let Some(v) = self.get(name) else {
            return Ok(EventMask::default());
        };
        // An empty list would subscribe to nothing and wait for ever.
        let Value::Array(items) = v else {
            return Err(invalid(name, what));
        };
        if items.is_empty() {
            return Err(invalid(name, what));
        }
        let mut mask = EventMask {
            inbound: false,
            status: false,
            modem: false,
        };
        for item in items {
            match item.as_str() {
                Some("inbound") => mask.inbound = true,
                Some("status") => mask.status = true,
                Some("modem") => mask.modem = true,
                _ => return Err(invalid(name, what)),
            }
        }
        Ok(mask)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

fn envelope(id: Option<&Value>, op: Option<&str>, ok: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), id.clone());
    }
    m.insert("ok".into(), Value::Bool(ok));
    if let Some(op) = op {
        m.insert("op".into(), Value::String(op.into()));
    }
    m
}

/// A successful reply line: the envelope plus `fields` (an object).
pub fn ok_reply(id: Option<&Value>, op: &str, fields: Value) -> String {
    let mut m = envelope(id, Some(op), true);
    if let Value::Object(fields) = fields {
        m.extend(fields);
    }
    Value::Object(m).to_string()
}

/// A failed reply line.
pub fn error_reply(id: Option<&Value>, op: Option<&str>, code: &str, message: &str) -> String {
    let mut m = envelope(id, op, false);
    m.insert("error".into(), json!({ "code": code, "message": message }));
    Value::Object(m).to_string()
}

/// Unix ms as RFC 3339 in UTC (`2026-11-26T10:00:00Z`), `null` when out of
/// range.
pub fn rfc3339_ms(ms: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// The `inbound` event for a stored message. `time` is the SMSC time
/// stamp (TS 23.040 §9.2.3.11), when the sender's network took it.
pub fn inbound_event(cursor: u64, m: &InboundMessage) -> Value {
    let mut v = json!({
        "event": "inbound",
        "cursor": cursor,
        "id": m.id.0,
        "from": m.sender,
        "text": m.text,
        "time": rfc3339_ms(m.scts_ms),
        "received": rfc3339_ms(m.received_ms),
        "modem": m.modem,
        "parts": m.parts_received,
        "partial": m.partial,
        "transport": "sms",
        "e2e": false,
    });
    if let Value::Object(o) = &mut v {
        if let Some(data) = &m.data {
            o.insert("data".into(), Value::String(hex::encode(data)));
        }
        if m.partial {
            o.insert("parts_total".into(), json!(m.parts_total));
            o.insert("missing".into(), json!(m.missing));
        }
    }
    v
}

/// Per-part detail as `status` replies and events show it.
pub fn parts_json(s: &OutboundStatus) -> Value {
    Value::Array(
        s.parts
            .iter()
            .map(|p| {
                json!({
                    "seq": p.seq,
                    "state": p.state.as_str(),
                    "modem": p.modem,
                    "mr": p.mr,
                    "reason": p.reason,
                    "attempts": p.attempts,
                })
            })
            .collect(),
    )
}

/// The `status` reply fields for a message.
pub fn status_fields(s: &OutboundStatus) -> Value {
    json!({
        "message": s.id.0,
        "key": s.idempotency_key,
        "to": s.recipient,
        "state": s.state.as_str(),
        "error": s.reason,
        "modem": s.modem,
        "parts": parts_json(s),
    })
}

/// The `status` event: the state and reason the event logged (so a replay
/// shows the history in order), parts as they are now.
pub fn status_event(
    cursor: u64,
    state: &MessageState,
    reason: Option<&str>,
    s: &OutboundStatus,
) -> Value {
    json!({
        "event": "status",
        "cursor": cursor,
        "message": s.id.0,
        "key": s.idempotency_key,
        "state": state.as_str(),
        "error": reason,
        "parts": parts_json(s),
    })
}

/// The `modem` event: the logged state, joined with what the actor shows
/// now (`null`s when the modem is gone).
pub fn modem_event(cursor: u64, modem: &str, state: &str, view: Option<&ModemView>) -> Value {
    let snap = view.map(|v| &v.snapshot);
    json!({
        "event": "modem",
        "cursor": cursor,
        "modem": modem,
        "name": snap.map(|s| s.name.as_str()),
        "state": state,
        "operator": snap.and_then(|s| s.operator.as_deref()),
        "signal": snap.and_then(|s| s.signal),
        "registration": snap.and_then(|s| s.registration.as_deref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Envelope, RequestError> {
        parse_line(s.as_bytes(), MAX_LINE)
    }

    fn code(s: &str) -> String {
        parse(s).unwrap_err().code.to_string()
    }

    #[test]
    fn send_with_every_field() {
        let e = parse(
            r#"{"op":"send","id":7,"to":"+49301","text":"hi","key":"k","modem":"left",
                "report":true,"flash":false,"validity":3600,"send_at":"2026-11-26T10:00:00Z",
                "future_field":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(e.id, Some(json!(7)));
        let Request::Send(f) = e.request else {
            panic!("not a send")
        };
        assert_eq!(f.to, "+49301");
        assert_eq!(f.key.as_deref(), Some("k"));
        assert!(f.report && !f.flash);
        assert_eq!(f.validity, Some(Duration::from_secs(3600)));
        assert_eq!(f.send_at_ms, Some(1_795_687_200_000));
    }

    #[test]
    fn consent_query_defaults_and_bounds() {
        let q = |s: &str| match parse(s).unwrap().request {
            Request::Consent(q) => q,
            other => panic!("{other:?}"),
        };
        assert_eq!(q(r#"{"op":"consent"}"#), ConsentQuery::default());
        assert_eq!(q(r#"{"op":"consent"}"#).limit, 100);
        let one = q(r#"{"op":"consent","who":"+491711234567","limit":1000,
            "after":"sms:aaaaaaaaaaaaaaaa"}"#);
        assert_eq!(one.who.as_deref(), Some("+491711234567"));
        assert_eq!(one.limit, 1000);
        assert_eq!(one.after.as_deref(), Some("sms:aaaaaaaaaaaaaaaa"));
        for bad in [
            r#"{"op":"consent","limit":0}"#,
            r#"{"op":"consent","limit":1001}"#,
            r#"{"op":"consent","limit":-1}"#,
            r#"{"op":"consent","limit":"5"}"#,
            r#"{"op":"consent","after":"+491711234567"}"#,
            r#"{"op":"consent","who":7}"#,
        ] {
            assert_eq!(code(bad), "invalid_field", "{bad}");
        }
    }

    #[test]
    fn send_at_accepts_unix_seconds() {
        let e = parse(r#"{"op":"send","to":"1","text":"x","send_at":1795687200}"#).unwrap();
        let Request::Send(f) = e.request else {
            panic!()
        };
        assert_eq!(f.send_at_ms, Some(1_795_687_200_000));
    }

    #[test]
    fn errors_carry_codes_and_context() {
        assert_eq!(code("{"), "bad_json");
        assert_eq!(code("[1]"), "bad_json");
        assert_eq!(code(r#"{"id":1}"#), "missing_field");
        assert_eq!(code(r#"{"op":5}"#), "invalid_field");
        assert_eq!(code(r#"{"op":"fly"}"#), "unknown_op");
        assert_eq!(code(r#"{"op":"send","text":"x"}"#), "missing_field");
        assert_eq!(code(r#"{"op":"send","to":1,"text":"x"}"#), "invalid_field");
        assert_eq!(
            code(r#"{"op":"send","to":"1","text":"x","report":"yes"}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"op":"send","to":"1","text":"x","send_at":"tomorrow"}"#),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"op":"send","to":"1","text":"x","validity":0}"#),
            "invalid_field"
        );
        assert_eq!(code(r#"{"op":"status","message":-1}"#), "invalid_field");
        assert_eq!(
            code(r#"{"op":"subscribe","events":["weather"]}"#),
            "invalid_field"
        );
        let e = parse(r#"{"op":"status","id":"a","message":"x"}"#).unwrap_err();
        assert_eq!(e.id, Some(json!("a")));
        assert_eq!(e.op.as_deref(), Some("status"));
        assert!(e.message.contains("\"message\""), "{}", e.message);
    }

    #[test]
    fn questionable_values_are_refused() {
        // Subscribing to nothing would wait for ever.
        assert_eq!(code(r#"{"op":"subscribe","events":[]}"#), "invalid_field");
        // Year 9999, and milliseconds given as seconds, are far beyond the
        // horizon; a year ahead minus a day is not.
        assert_eq!(
            code(r#"{"op":"send","to":"1","text":"x","send_at":"9999-12-31T00:00:00Z"}"#),
            "invalid_field"
        );
        let ms = now_ms();
        assert_eq!(
            code(&format!(
                r#"{{"op":"send","to":"1","text":"x","send_at":{ms}}}"#
            )),
            "invalid_field"
        );
        let soon = ms / 1000 + 365 * 24 * 3600;
        let e = parse(&format!(
            r#"{{"op":"send","to":"1","text":"x","send_at":{soon}}}"#
        ));
        assert!(e.is_ok(), "{e:?}");
        // TS 23.040 §9.2.3.12.1: the relative TP-VP ends at 63 weeks.
        let max = MAX_VALIDITY.as_secs();
        assert!(parse(&format!(
            r#"{{"op":"send","to":"1","text":"x","validity":{max}}}"#
        ))
        .is_ok());
        for bad in [
            format!("{}", max + 1),
            "-1".into(),
            "1.5".into(),
            r#""60""#.into(),
        ] {
            assert_eq!(
                code(&format!(
                    r#"{{"op":"send","to":"1","text":"x","validity":{bad}}}"#
                )),
                "invalid_field",
                "{bad}"
            );
        }
        // The client name is logged and stored with every message.
        let name = "n".repeat(MAX_CLIENT_NAME);
        assert!(parse(&format!(r#"{{"op":"hello","client":"{name}"}}"#)).is_ok());
        let long = "é".repeat(MAX_CLIENT_NAME + 1);
        assert_eq!(
            code(&format!(r#"{{"op":"hello","client":"{long}"}}"#)),
            "invalid_field"
        );
        assert_eq!(
            code(r#"{"op":"hello","client":"a\nforged log line"}"#),
            "invalid_field"
        );
    }

    #[test]
    fn length_is_capped_before_parsing() {
        let line = vec![b'x'; 100];
        let e = parse_line(&line, 99).unwrap_err();
        assert_eq!(e.code, ErrorCode::LineTooLong);
    }

    #[test]
    fn error_codes_round_trip() {
        for c in ["bad_json", "not_allowed", "line_too_long", "internal"] {
            assert_eq!(ErrorCode::parse(c).as_str(), c);
        }
        assert_eq!(ErrorCode::parse("new"), ErrorCode::Unknown("new".into()));
    }

    #[test]
    fn replies_echo_id_and_op() {
        let r: Value =
            serde_json::from_str(&ok_reply(Some(&json!(3)), "ack", json!({"message": 5}))).unwrap();
        assert_eq!(r, json!({"id":3,"ok":true,"op":"ack","message":5}));
        let r: Value =
            serde_json::from_str(&error_reply(None, Some("send"), "queue_full", "full")).unwrap();
        assert_eq!(
            r,
            json!({"ok":false,"op":"send","error":{"code":"queue_full","message":"full"}})
        );
    }

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(rfc3339_ms(1_795_687_200_500), json!("2026-11-26T10:00:00Z"));
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_give_a_request_or_an_error_reply(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            match parse_line(&bytes, 256) {
                Ok(env) => { ok_reply(env.id.as_ref(), env.request.op(), json!({})); }
                Err(e) => {
                    let v: Value = serde_json::from_str(&e.reply()).unwrap();
                    prop_assert_eq!(&v["ok"], &json!(false));
                }
            }
        }

        #[test]
        fn any_json_object_with_an_op_is_handled(op in "(hello|send|status|cancel|ack|subscribe|modems|stats|x)",
                                                  field in "(to|text|message|since|events|send_at|validity|key)",
                                                  value in prop_oneof![
                                                      any::<i64>().prop_map(Value::from),
                                                      any::<f64>().prop_map(Value::from),
                                                      ".{0,20}".prop_map(Value::from),
                                                      any::<bool>().prop_map(Value::from),
                                                      Just(json!([1, "inbound"])),
                                                  ]) {
            let line = json!({"op": op, field: value}).to_string();
            let _ = parse_line(line.as_bytes(), MAX_LINE);
        }
    }
}
