//! The outbound queue: message -> parts -> attempts.
//!
//! All parts of a message leave through the same modem (a recipient's phone
//! reassembles parts by originating address, TS 23.040 §9.2.3.24.1), so the
//! first claim binds the message to the claiming modem. The binding is
//! dropped again while no part has left, which lets another modem take over
//! after a temporary failure.

use rusqlite::{params, Connection, OptionalExtension};

use super::config::RetryPolicy;
use super::error::{Result, StoreError};
use super::events::{self, EventKind};
use super::limits::{self, check_address, check_id, check_len, digits};
use super::registry::{self, Daily};
use super::routing;
use super::types::{
    AttemptId, ClaimedPart, Enqueued, FailureOutcome, MessageId, MessageState, NewOutbound,
    OutboundStatus, PartId, PartState, PartStatus, SendFailure,
};
use super::worker;

/// A part the modem accepted (`+CMGS: <mr>`), to be recorded as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentRecord {
    /// The attempt the part was claimed with.
    pub attempt: AttemptId,
    /// The TP-MR the modem answered; `None` when it answered `OK` without
    /// one (stored as unknown, see [`mark_sent`]).
    pub mr: Option<u8>,
}

/// What one [`Store::send_step`](super::Store::send_step) did.
#[derive(Debug)]
pub struct SendStep {
    /// Per record given, in order: `Ok` if it is recorded as sent.
    pub recorded: Vec<Result<()>>,
    /// The parts claimed for the modem, whole messages in due order, each
    /// message's parts in order.
    pub claimed: Vec<ClaimedPart>,
}

fn validate(req: &NewOutbound) -> Result<()> {
    check_address("recipient", &req.recipient)?;
    if req.parts.is_empty() || req.parts.len() > limits::MAX_PARTS {
        return Err(StoreError::Invalid(format!(
            "a message has 1 to {} parts, not {}",
            limits::MAX_PARTS,
            req.parts.len()
        )));
    }
    for (i, p) in req.parts.iter().enumerate() {
        limits::check_pdu(&format!("part {}", i + 1), p)?;
    }
    if let Some(k) = &req.idempotency_key {
        if k.is_empty() {
            return Err(StoreError::Invalid("idempotency key is empty".into()));
        }
        check_len("idempotency key", k, limits::MAX_KEY)?;
    }
    if let Some(t) = &req.text {
        check_len("text", t, limits::MAX_TEXT)?;
    }
    if let Some(m) = &req.modem {
        check_id("modem", m)?;
    }
    if let Some(c) = &req.client {
        check_id("client", c)?;
    }
    Ok(())
}

/// Queues a message, or returns the earlier one with the same key.
pub(crate) fn enqueue(conn: &Connection, req: &NewOutbound, now_ms: i64) -> Result<Enqueued> {
    validate(req)?;
    let op = "enqueue";
    if let Some(key) = &req.idempotency_key {
        if let Some(id) = find_by_key(conn, key)? {
            if same_content(conn, id, req)? {
                tracing::debug!(message_id = %id, "idempotent repeat of an enqueued message");
                return Ok(Enqueued { id, created: false });
            }
            return Err(StoreError::IdempotencyConflict {
                key: key.clone(),
                existing: id,
            });
        }
    }
    let send_at = req.send_at_ms.unwrap_or(now_ms);
    // Unbound even when pinned: the router binds it (to the pin), so the
    // pinned modem's limits and state apply too.
    let id = super::registry::next_id(conn, super::registry::Ids::Outbound)?;
    conn.prepare_cached(
        "INSERT INTO out_messages (idem_key, recipient, text, client, pin_modem, modem, state,
             parts_total, created_ms, updated_ms, send_at_ms, valid_until_ms, id)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL, 'queued', ?6, ?7, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut st| {
        st.execute(params![
            req.idempotency_key,
            req.recipient,
            req.text,
            req.client,
            req.modem,
            req.parts.len() as i64,
            now_ms,
            send_at,
            req.valid_until_ms,
            id,
        ])
    })
    .map_err(StoreError::sql(op))?;
    let id = MessageId(id);
    let rdigits = digits(&req.recipient);
    let mut st = conn
        .prepare_cached(
            "INSERT INTO out_parts (message_id, seq, payload, recipient_digits, state,
                 next_attempt_ms, bound_modem)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?5, NULL)",
        )
        .map_err(StoreError::sql(op))?;
    for (i, p) in req.parts.iter().enumerate() {
        st.execute(params![id.0, i as i64 + 1, p, rdigits, send_at])
            .map_err(StoreError::sql(op))?;
    }
    events::append(
        conn,
        now_ms,
        &EventKind::MessageState {
            message: id,
            state: MessageState::Queued,
            reason: None,
        },
    )?;
    tracing::debug!(message_id = %id, parts = req.parts.len(), "message queued");
    Ok(Enqueued { id, created: true })
}

/// The message that owns an idempotency key.
pub(crate) fn find_by_key(conn: &Connection, key: &str) -> Result<Option<MessageId>> {
    conn.prepare_cached("SELECT id FROM out_messages WHERE idem_key = ?1")
        .and_then(|mut st| st.query_row([key], |r| r.get::<_, i64>(0)).optional())
        .map(|v| v.map(MessageId))
        .map_err(StoreError::sql("find idempotency key"))
}

/// Whether a repeated request asks for exactly what the first one did.
fn same_content(conn: &Connection, id: MessageId, req: &NewOutbound) -> Result<bool> {
    let op = "compare idempotent request";
    type Row = (
        String,
        Option<String>,
        Option<String>,
        i64,
        i64,
        Option<i64>,
        i64,
    );
    let (recipient, text, pin, created, send_at, valid_until, total): Row = conn
        .prepare_cached(
            "SELECT recipient, text, pin_modem, created_ms, send_at_ms, valid_until_ms,
                    parts_total
             FROM out_messages WHERE id = ?1",
        )
        .and_then(|mut st| st.query_row([id.0], |r| Row::try_from(r)))
        .map_err(StoreError::sql(op))?;
    if recipient != req.recipient
        || text != req.text
        || pin != req.modem
        || send_at != req.send_at_ms.unwrap_or(created)
        || valid_until != req.valid_until_ms
        || total != req.parts.len() as i64
    {
        return Ok(false);
    }
    let mut st = conn
        .prepare_cached(
            "SELECT payload FROM out_parts WHERE message_id = ?1 ORDER BY seq LIMIT 256",
        )
        .map_err(StoreError::sql(op))?;
    let stored = st
        .query_map([id.0], |r| r.get::<_, Vec<u8>>(0))
        .map_err(StoreError::sql(op))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(StoreError::sql(op))?;
    // The stored parts carry the reference given at bind time.
    Ok(super::refs::same_parts(&stored, &req.parts))
}

/// Hands up to `limit` due parts to `modem`, marking them `sending` and
/// opening an attempt for each: first binds unbound due messages the modem
/// may send (unpinned, or pinned to it) to it, then claims parts bound to
/// it. For a single modem, or without a router; the engine routes with
/// [`routing::unbound_due`] + [`routing::bind`] and claims with
/// [`claim_bound`].
pub(crate) fn claim_due(
    conn: &Connection,
    modem: &str,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<ClaimedPart>> {
    check_id("modem", modem)?;
    for pending in routing::unbound_due(conn, now_ms, limit)? {
        if pending.pinned.as_deref().map_or(true, |p| p == modem) {
            routing::bind(conn, pending.id, modem)?;
        }
    }
    claim_bound(conn, modem, now_ms, limit)
}

/// Claims up to `limit` due parts already bound to `modem` (by
/// [`routing::bind`] or an earlier claim): marks them `sending` and opens
/// an attempt for each.
pub(crate) fn claim_bound(
    conn: &Connection,
    modem: &str,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<ClaimedPart>> {
    check_id("modem", modem)?;
    let op = "claim due parts";
    // Expired parts first, so they cannot crowd the due ones out of LIMIT.
    expire(conn, now_ms, 1000)?;
    // One index range scan over the parts bound to this modem, so a backlog
    // bound to another (perhaps vanished) modem is never walked through.
    let mut st = conn
        .prepare_cached(
            "SELECT p.id, p.message_id, p.seq, m.parts_total, m.recipient, p.payload,
                    p.attempts, p.maybe_sent
             FROM (
                 SELECT id, next_attempt_ms FROM out_parts
                 WHERE state = 'queued' AND bound_modem = ?2 AND next_attempt_ms <= ?1
                 ORDER BY next_attempt_ms, id LIMIT ?3
             ) due
             JOIN out_parts p ON p.id = due.id
             JOIN out_messages m ON m.id = p.message_id
             WHERE m.valid_until_ms IS NULL OR m.valid_until_ms > ?1
             ORDER BY due.next_attempt_ms, due.id
             LIMIT ?3",
        )
        .map_err(StoreError::sql(op))?;
    let rows = st
        .query_map(params![now_ms, modem, limits::limit(limit)], claimed_row)
        .map_err(StoreError::sql(op))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(StoreError::sql(op))?;
    open_attempts(conn, modem, now_ms, rows)
}

/// Claims the due parts of ONE message bound to `modem` (the message whose
/// part is due first), in part order: what the sender is about to hand to
/// the modem. Claiming no further ahead keeps the parts in `sending` (the
/// ones a crash requeues as maybe-sent) to the message actually in flight.
pub(crate) fn claim_next_message(
    conn: &Connection,
    modem: &str,
    now_ms: i64,
) -> Result<Vec<ClaimedPart>> {
    claim_messages(conn, modem, now_ms, 1)
}

/// Claims whole messages bound to `modem`, due first first, each in part
/// order, while their parts fit in `max_parts` (always at least one
/// message when one is due, however many parts it has).
pub(crate) fn claim_messages(
    conn: &Connection,
    modem: &str,
    now_ms: i64,
    max_parts: u32,
) -> Result<Vec<ClaimedPart>> {
    check_id("modem", modem)?;
    let op = "claim the next message";
    expire(conn, now_ms, 1000)?;
    let max_parts = max_parts.max(1) as usize;
    let mut claimed: Vec<ClaimedPart> = Vec::new();
    while claimed.len() < max_parts {
        // The head of this modem's due range of `out_parts_due` (parts
        // claimed in this loop are `sending` already, so it moves on).
        let first: Option<i64> = conn
            .prepare_cached(
                "SELECT p.message_id FROM out_parts p
                 JOIN out_messages m ON m.id = p.message_id
                 WHERE p.state = 'queued' AND p.bound_modem = ?2 AND p.next_attempt_ms <= ?1
                   AND (m.valid_until_ms IS NULL OR m.valid_until_ms > ?1)
                 ORDER BY p.next_attempt_ms, p.id LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![now_ms, modem], |r| r.get(0))
                    .optional()
            })
            .map_err(StoreError::sql(op))?;
        let Some(message) = first else {
            break;
        };
        let rows = conn
            .prepare_cached(
                "SELECT p.id, p.message_id, p.seq, m.parts_total, m.recipient, p.payload,
                        p.attempts, p.maybe_sent
                 FROM out_parts p JOIN out_messages m ON m.id = p.message_id
                 WHERE p.message_id = ?3 AND p.state = 'queued' AND p.bound_modem = ?2
                   AND p.next_attempt_ms <= ?1
                 ORDER BY p.seq",
            )
            .and_then(|mut st| {
                // At most MAX_PARTS rows: enqueue refuses longer messages.
                st.query_map(params![now_ms, modem, message], claimed_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql(op))?;
        if rows.is_empty() || (!claimed.is_empty() && claimed.len() + rows.len() > max_parts) {
            break;
        }
        claimed.extend(open_attempts(conn, modem, now_ms, rows)?);
    }
    Ok(claimed)
}

/// Records the parts the modem accepted (each alone: one that fails, say
/// an attempt requeued meanwhile, does not undo the others), then claims
/// up to `claim_parts` parts of whole messages for `modem`
/// ([`claim_messages`]; none when 0). One request, so one commit, for
/// what a sender did since its last step and what it sends next.
pub(crate) fn send_step(
    conn: &Connection,
    modem: &str,
    sent: &[SentRecord],
    claim_parts: u32,
    now_ms: i64,
) -> Result<SendStep> {
    check_id("modem", modem)?;
    let recorded = worker::each(conn, sent, |c, r| mark_sent(c, r.attempt, r.mr, now_ms))?;
    let claimed = if claim_parts > 0 {
        claim_messages(conn, modem, now_ms, claim_parts)?
    } else {
        Vec::new()
    };
    Ok(SendStep { recorded, claimed })
}

/// Gives back claimed parts that were never written to the modem (the
/// sender stopped, or the modem failed before their turn): the attempt is
/// dropped and the part is `queued` again as it was, not maybe-sent, and
/// its message unbound while none of it left (so another modem may take
/// it). Parts no longer in flight under that attempt are left alone.
/// Returns how many parts went back.
pub(crate) fn unclaim(conn: &Connection, attempts: &[AttemptId], now_ms: i64) -> Result<u64> {
    let op = "give back claimed parts";
    let mut back = 0;
    let mut messages = Vec::new();
    for attempt in attempts {
        let (part, message) = match open_attempt(conn, *attempt) {
            Ok((part, message, _)) => (part, message),
            Err(StoreError::NotFound { .. } | StoreError::StaleAttempt { .. }) => continue,
            Err(e) => return Err(e),
        };
        conn.prepare_cached("DELETE FROM out_attempts WHERE id = ?1")
            .and_then(|mut st| st.execute([attempt.0]))
            .map_err(StoreError::sql(op))?;
        conn.prepare_cached(
            "UPDATE out_parts SET state = 'queued', attempts = max(attempts - 1, 0),
                 current_attempt = NULL
             WHERE id = ?1 AND state = 'sending'",
        )
        .and_then(|mut st| st.execute([part.0]))
        .map_err(StoreError::sql(op))?;
        back += 1;
        if !messages.contains(&message) {
            messages.push(message);
        }
    }
    for m in messages {
        unbind_if_unsent(conn, m)?;
        refresh(conn, m, now_ms)?;
    }
    Ok(back)
}

/// A part row as [`claim_bound`] and [`claim_next_message`] select it.
fn claimed_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimedPart> {
    Ok(ClaimedPart {
        part: PartId(r.get(0)?),
        message: MessageId(r.get(1)?),
        attempt: AttemptId(0),
        seq: r.get(2)?,
        total: r.get(3)?,
        recipient: r.get(4)?,
        payload: r.get(5)?,
        attempt_no: r.get::<_, u32>(6)?.saturating_add(1),
        maybe_sent: r.get::<_, i64>(7)? > 0,
    })
}

/// Marks the selected parts `sending` on `modem` with an attempt each.
fn open_attempts(
    conn: &Connection,
    modem: &str,
    now_ms: i64,
    rows: Vec<ClaimedPart>,
) -> Result<Vec<ClaimedPart>> {
    let op = "claim due parts";
    let mut claimed = Vec::with_capacity(rows.len());
    let mut messages = Vec::new();
    for mut part in rows {
        conn.prepare_cached(
            "INSERT INTO out_attempts (part_id, modem, started_ms, outcome)
             VALUES (?1, ?2, ?3, 'sending')",
        )
        .and_then(|mut st| st.execute(params![part.part.0, modem, now_ms]))
        .map_err(StoreError::sql(op))?;
        part.attempt = AttemptId(conn.last_insert_rowid());
        conn.prepare_cached(
            "UPDATE out_parts SET state = 'sending', attempts = attempts + 1, modem = ?2,
                 current_attempt = ?3
             WHERE id = ?1",
        )
        .and_then(|mut st| st.execute(params![part.part.0, modem, part.attempt.0]))
        .map_err(StoreError::sql(op))?;
        tracing::debug!(modem, message_id = %part.message, part = part.seq,
            attempt = part.attempt_no, "part claimed");
        if !messages.contains(&part.message) {
            messages.push(part.message);
        }
        claimed.push(part);
    }
    for m in messages {
        refresh(conn, m, now_ms)?;
    }
    Ok(claimed)
}

/// The attempt and its part, checked to be still in flight.
fn open_attempt(conn: &Connection, attempt: AttemptId) -> Result<(PartId, MessageId, String)> {
    let op = "find attempt";
    let row = conn
        .prepare_cached(
            "SELECT a.part_id, p.message_id, a.modem, a.outcome
             FROM out_attempts a JOIN out_parts p ON p.id = a.part_id
             WHERE a.id = ?1",
        )
        .and_then(|mut st| {
            st.query_row([attempt.0], |r| {
                Ok((
                    PartId(r.get(0)?),
                    MessageId(r.get(1)?),
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .optional()
        })
        .map_err(StoreError::sql(op))?;
    match row {
        None => Err(StoreError::NotFound {
            what: "attempt",
            id: attempt.0,
        }),
        Some((part, message, modem, outcome)) if outcome == "sending" => Ok((part, message, modem)),
        Some((_, _, _, outcome)) => Err(StoreError::StaleAttempt {
            attempt: attempt.0,
            outcome,
        }),
    }
}

fn close_attempt(
    conn: &Connection,
    attempt: AttemptId,
    outcome: &str,
    mr: Option<u8>,
    error: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE out_attempts SET outcome = ?2, mr = ?3, error = ?4, finished_ms = ?5
         WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![attempt.0, outcome, mr, error, now_ms]))
    .map(|_| ())
    .map_err(StoreError::sql("close attempt"))
}

/// Records that the modem accepted the part with message reference `mr`;
/// `None` when the modem answered `OK` without `+CMGS: <mr>` (TS 27.005
/// §3.5.1 makes it mandatory): stored as NULL, so no status report is
/// ever matched to this part (a made-up 0 could match another part's).
pub(crate) fn mark_sent(
    conn: &Connection,
    attempt: AttemptId,
    mr: Option<u8>,
    now_ms: i64,
) -> Result<()> {
    let (part, message, modem) = open_attempt(conn, attempt)?;
    close_attempt(conn, attempt, "sent", mr, None, now_ms)?;
    conn.prepare_cached(
        "UPDATE out_parts SET state = 'sent', mr = ?2, sent_ms = ?3, current_attempt = NULL,
             reason = NULL
         WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![part.0, mr, now_ms]))
    .map_err(StoreError::sql("mark sent"))?;
    registry::bump_daily(conn, &modem, now_ms, Daily::Sent)?;
    super::refs::note_sent(conn, &modem, message, now_ms)?;
    tracing::debug!(modem, message_id = %message, part = %part, ?mr, "part sent");
    refresh(conn, message, now_ms)?;
    Ok(())
}

/// Records a failed attempt: back to the queue with a backoff, or failed.
pub(crate) fn mark_failed(
    conn: &Connection,
    retry: &RetryPolicy,
    attempt: AttemptId,
    failure: &SendFailure,
    now_ms: i64,
) -> Result<FailureOutcome> {
    let (part, message, modem) = open_attempt(conn, attempt)?;
    let op = "mark failed";
    let (attempts, valid_until): (u32, Option<i64>) = conn
        .prepare_cached(
            "SELECT p.attempts, m.valid_until_ms FROM out_parts p
             JOIN out_messages m ON m.id = p.message_id WHERE p.id = ?1",
        )
        .and_then(|mut st| st.query_row([part.0], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(StoreError::sql(op))?;
    let (kind, reason) = match failure {
        SendFailure::Temporary(r) => ("temporary", r),
        SendFailure::Permanent(r) => ("permanent", r),
        SendFailure::MaybeSent(r) => (UNCONFIRMED, r),
    };
    let reason: String = reason.chars().take(500).collect();
    close_attempt(conn, attempt, kind, None, Some(&reason), now_ms)?;
    let maybe_sent = matches!(failure, SendFailure::MaybeSent(_));
    if maybe_sent {
        conn.prepare_cached("UPDATE out_parts SET maybe_sent = maybe_sent + 1 WHERE id = ?1")
            .and_then(|mut st| st.execute([part.0]))
            .map_err(StoreError::sql(op))?;
        registry::bump(conn, registry::MAYBE_SENT, 1)?;
        tracing::warn!(modem, message_id = %message, part = %part,
            "outcome unknown: counted maybe-sent, kept on this modem");
    }
    let next = now_ms.saturating_add(retry.delay_ms(attempts));
    let retryable = !matches!(failure, SendFailure::Permanent(_));
    let outcome = match failure {
        _ if retryable && valid_until.is_some_and(|v| v <= next) => FailureOutcome::Expired,
        _ if retryable && attempts < retry.max_attempts => FailureOutcome::Retry {
            next_attempt_ms: next,
        },
        _ => FailureOutcome::Failed,
    };
    let (state, stored_reason) = match &outcome {
        FailureOutcome::Retry { .. } => (PartState::Queued, reason.clone()),
        FailureOutcome::Expired => (
            PartState::Expired,
            format!("expired while retrying: {reason}"),
        ),
        FailureOutcome::Failed if retryable => (
            PartState::Failed,
            format!("gave up after {attempts} attempts: {reason}"),
        ),
        FailureOutcome::Failed => (PartState::Failed, reason.clone()),
    };
    conn.prepare_cached(
        "UPDATE out_parts SET state = ?2, reason = ?3, next_attempt_ms = ?4,
             current_attempt = NULL
         WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![part.0, state.as_str(), stored_reason, next]))
    .map_err(StoreError::sql(op))?;
    if state == PartState::Failed {
        registry::bump_daily(conn, &modem, now_ms, Daily::Failed)?;
    }
    tracing::info!(modem, message_id = %message, part = %part, attempts, ?outcome,
        reason = %reason, "send attempt failed");
    unbind_if_unsent(conn, message)?;
    refresh(conn, message, now_ms)?;
    Ok(outcome)
}

/// Puts parts left `sending` (by a crash, or on a modem that vanished) back
/// in the queue, flagged maybe-sent: the modem may have sent them before
/// the outcome was recorded.
pub(crate) fn requeue_sending(
    conn: &Connection,
    modem: Option<&str>,
    now_ms: i64,
    why: &str,
) -> Result<u64> {
    let mut total = 0;
    // In chunks, so memory stays bounded however many parts were in flight.
    loop {
        let n = requeue_chunk(conn, modem, now_ms, why, 1000)?;
        total += n;
        if n < 1000 {
            return Ok(total);
        }
    }
}

fn requeue_chunk(
    conn: &Connection,
    modem: Option<&str>,
    now_ms: i64,
    why: &str,
    limit: u32,
) -> Result<u64> {
    let op = "requeue interrupted parts";
    let rows = conn
        .prepare_cached(
            "SELECT id, message_id, current_attempt, modem FROM out_parts
             WHERE state = 'sending' AND (?1 IS NULL OR modem = ?1)
             LIMIT ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![modem, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    MessageId(r.get(1)?),
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    let mut messages = std::collections::BTreeSet::new();
    for (part, message, attempt, part_modem) in &rows {
        if let Some(a) = attempt {
            close_attempt(conn, AttemptId(*a), "interrupted", None, Some(why), now_ms)?;
        }
        conn.prepare_cached(
            "UPDATE out_parts SET state = 'queued', maybe_sent = maybe_sent + 1,
                 current_attempt = NULL, reason = ?2
             WHERE id = ?1",
        )
        .and_then(|mut st| st.execute(params![part, why]))
        .map_err(StoreError::sql(op))?;
        tracing::warn!(modem = part_modem.as_deref().unwrap_or("?"), message_id = %message,
            part, "part was in flight, outcome unknown: requeued as maybe-sent");
        messages.insert(*message);
    }
    registry::bump(conn, registry::MAYBE_SENT, rows.len() as u64)?;
    for m in messages {
        unbind_if_unsent(conn, m)?;
        refresh(conn, m, now_ms)?;
    }
    Ok(rows.len() as u64)
}

/// The outcome of an attempt whose PDU the modem took without answering
/// ([`SendFailure::MaybeSent`]): the part may have left through that
/// attempt's modem.
pub(crate) const UNCONFIRMED: &str = "unconfirmed";

/// Drops the message's modem binding while no part is in flight or sent
/// and none may have left unconfirmed through its modem (an attempt
/// [`UNCONFIRMED`]), so another modem may take it. A pinned message keeps
/// the binding the router gave it (its pin, resolved to a modem id).
pub(crate) fn unbind_if_unsent(conn: &Connection, message: MessageId) -> Result<bool> {
    unbind_unstarted(conn, message, true)
}

/// Drops the message's modem binding while no part is in flight or
/// confirmed sent and it is not pinned; with `keep_unconfirmed`, also not
/// while a part may have left unconfirmed through its modem (only a
/// vanished modem gives those up, see `routing::unbind_vanished`).
pub(crate) fn unbind_unstarted(
    conn: &Connection,
    message: MessageId,
    keep_unconfirmed: bool,
) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE out_messages SET modem = NULL
             WHERE id = ?1 AND modem IS NOT NULL AND pin_modem IS NULL AND NOT EXISTS (
                 SELECT 1 FROM out_parts WHERE message_id = ?1
                 AND state IN ('sending', 'sent', 'delivered'))
             AND NOT (?2 AND EXISTS (
                 SELECT 1 FROM out_parts p JOIN out_attempts a ON a.part_id = p.id
                 WHERE p.message_id = ?1 AND a.outcome = 'unconfirmed'))",
        )
        .and_then(|mut st| st.execute(params![message.0, keep_unconfirmed]))
        .map_err(StoreError::sql("unbind message"))?;
    if changed > 0 {
        sync_binding(conn, message)?;
    }
    Ok(changed > 0)
}

/// Copies the message's modem binding onto its parts (what claiming
/// searches by).
pub(crate) fn sync_binding(conn: &Connection, message: MessageId) -> Result<()> {
    conn.prepare_cached(
        "UPDATE out_parts SET bound_modem = (SELECT modem FROM out_messages WHERE id = ?1)
         WHERE message_id = ?1",
    )
    .and_then(|mut st| st.execute([message.0]))
    .map(|_| ())
    .map_err(StoreError::sql("bind message"))
}

/// Cancels a message whose parts are all still queued.
pub(crate) fn cancel(conn: &Connection, id: MessageId, now_ms: i64) -> Result<()> {
    let state = message_state(conn, id)?;
    match state {
        MessageState::Cancelled => return Ok(()),
        MessageState::Queued => {}
        state => return Err(StoreError::NotCancellable { id, state }),
    }
    conn.prepare_cached(
        "UPDATE out_parts SET state = 'cancelled', reason = 'cancelled by client'
         WHERE message_id = ?1 AND state = 'queued'",
    )
    .and_then(|mut st| st.execute([id.0]))
    .map_err(StoreError::sql("cancel"))?;
    tracing::info!(message_id = %id, "message cancelled");
    refresh(conn, id, now_ms)?;
    Ok(())
}

fn message_state(conn: &Connection, id: MessageId) -> Result<MessageState> {
    conn.prepare_cached("SELECT state FROM out_messages WHERE id = ?1")
        .and_then(|mut st| st.query_row([id.0], |r| r.get::<_, String>(0)).optional())
        .map_err(StoreError::sql("read message state"))?
        .map(|s| MessageState::parse(&s))
        .ok_or(StoreError::NotFound {
            what: "message",
            id: id.0,
        })
}

/// Expires queued parts of messages whose `valid_until` has passed (at most
/// `limit` messages per call).
pub(crate) fn expire(conn: &Connection, now_ms: i64, limit: u32) -> Result<u64> {
    let op = "expire outbound";
    let ids = conn
        .prepare_cached(
            "SELECT id FROM out_messages
             WHERE valid_until_ms IS NOT NULL AND valid_until_ms <= ?1
               AND state IN ('queued', 'sending')
             ORDER BY valid_until_ms LIMIT ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![now_ms, limits::limit(limit)], |r| {
                r.get::<_, i64>(0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    let mut expired = 0;
    for id in ids {
        conn.prepare_cached(
            "UPDATE out_parts SET state = 'expired', reason = 'validity period ended before it was sent'
             WHERE message_id = ?1 AND state = 'queued'",
        )
        .and_then(|mut st| st.execute([id]))
        .map_err(StoreError::sql(op))?;
        if refresh(conn, MessageId(id), now_ms)? == Some(MessageState::Expired) {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Recomputes a message's state from its parts; on a change, stores it and
/// logs an event. Returns the new state if it changed.
pub(crate) fn refresh(
    conn: &Connection,
    id: MessageId,
    now_ms: i64,
) -> Result<Option<MessageState>> {
    let op = "update message state";
    let parts = conn
        .prepare_cached(
            "SELECT state, reason FROM out_parts WHERE message_id = ?1 ORDER BY seq LIMIT 256",
        )
        .and_then(|mut st| {
            st.query_map([id.0], |r| {
                Ok((
                    PartState::parse(&r.get::<_, String>(0)?),
                    r.get::<_, Option<String>>(1)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    let state = MessageState::combine(parts.iter().map(|(s, _)| s));
    let old = message_state(conn, id)?;
    if state == old {
        return Ok(None);
    }
    let reason = match state {
        MessageState::Failed | MessageState::Expired | MessageState::Cancelled => parts
            .iter()
            .filter(|(s, _)| s.is_final() && *s != PartState::Delivered)
            .find_map(|(_, r)| r.clone()),
        _ => None,
    };
    conn.prepare_cached(
        "UPDATE out_messages SET state = ?2, reason = ?3, updated_ms = ?4 WHERE id = ?1",
    )
    .and_then(|mut st| st.execute(params![id.0, state.as_str(), reason, now_ms]))
    .map_err(StoreError::sql(op))?;
    // A transition per state; the engine logs each outcome at info.
    tracing::debug!(message_id = %id, from = %old, to = %state, "message state");
    events::append(
        conn,
        now_ms,
        &EventKind::MessageState {
            message: id,
            state: state.clone(),
            reason,
        },
    )?;
    Ok(Some(state))
}

/// A message with its parts.
pub(crate) fn status(conn: &Connection, id: MessageId) -> Result<OutboundStatus> {
    let op = "read message";
    let mut msg = conn
        .prepare_cached(
            "SELECT idem_key, recipient, text, state, reason, modem, created_ms, updated_ms,
                    send_at_ms, valid_until_ms
             FROM out_messages WHERE id = ?1",
        )
        .and_then(|mut st| {
            st.query_row([id.0], |r| {
                Ok(OutboundStatus {
                    id,
                    idempotency_key: r.get(0)?,
                    recipient: r.get(1)?,
                    text: r.get(2)?,
                    state: MessageState::parse(&r.get::<_, String>(3)?),
                    reason: r.get(4)?,
                    modem: r.get(5)?,
                    created_ms: r.get(6)?,
                    updated_ms: r.get(7)?,
                    send_at_ms: r.get(8)?,
                    valid_until_ms: r.get(9)?,
                    parts: Vec::new(),
                })
            })
            .optional()
        })
        .map_err(StoreError::sql(op))?
        .ok_or(StoreError::NotFound {
            what: "message",
            id: id.0,
        })?;
    msg.parts = conn
        .prepare_cached(
            "SELECT id, seq, state, reason, attempts, modem, mr, sent_ms, delivered_ms,
                    next_attempt_ms, maybe_sent
             FROM out_parts WHERE message_id = ?1 ORDER BY seq LIMIT 255",
        )
        .and_then(|mut st| {
            st.query_map([id.0], |r| {
                Ok(PartStatus {
                    id: PartId(r.get(0)?),
                    seq: r.get(1)?,
                    state: PartState::parse(&r.get::<_, String>(2)?),
                    reason: r.get(3)?,
                    attempts: r.get(4)?,
                    modem: r.get(5)?,
                    mr: r.get(6)?,
                    sent_ms: r.get(7)?,
                    delivered_ms: r.get(8)?,
                    next_attempt_ms: r.get(9)?,
                    maybe_sent: r.get(10)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql(op))?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreConfig};

    const MODEM: &str = "356938035643809";
    const T0: i64 = 1_790_000_000_000;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::at(dir.path().join("s.db"))).unwrap();
        (dir, store)
    }

    fn msg(parts: usize) -> NewOutbound {
        NewOutbound {
            recipient: "+15551112222".into(),
            text: Some(format!("{parts} parts")),
            parts: (0..parts).map(|i| vec![0x00, 0x01, i as u8]).collect(),
            ..Default::default()
        }
    }

    /// Enqueues messages of the given part counts and binds them to MODEM.
    async fn bound(store: &Store, shape: &[usize]) -> Vec<MessageId> {
        let mut ids = Vec::new();
        for (i, n) in shape.iter().enumerate() {
            let id = store.enqueue(msg(*n), T0 + i as i64).await.unwrap().id;
            ids.push(id);
        }
        let bindings = ids.iter().map(|id| (*id, MODEM.to_owned())).collect();
        let bound = store.bind_many(bindings).await.unwrap();
        assert!(bound.iter().all(|b| matches!(b, Ok(true))), "{bound:?}");
        ids
    }

    #[tokio::test]
    async fn bind_many_answers_each_binding_alone() {
        let (_dir, store) = store();
        let a = store.enqueue(msg(1), T0).await.unwrap().id;
        let answers = store
            .bind_many(vec![
                (a, MODEM.into()),
                (MessageId(9999), MODEM.into()),
                (a, "862877030000001".into()),
                (a, String::new()),
            ])
            .await
            .unwrap();
        assert!(matches!(answers[0], Ok(true)));
        assert!(matches!(answers[1], Ok(false)), "unknown message");
        assert!(matches!(answers[2], Ok(false)), "bound already");
        assert!(answers[3].is_err(), "an empty modem id is refused");
        assert_eq!(
            store.outbound_status(a).await.unwrap().modem.as_deref(),
            Some(MODEM)
        );
    }

    #[tokio::test]
    async fn a_step_claims_whole_messages_within_its_window() {
        let (_dir, store) = store();
        let ids = bound(&store, &[2, 1, 3, 1]).await;
        // 4 parts: the 2-part and the 1-part message; the 3-part one does
        // not fit.
        let step = store.send_step(MODEM, vec![], 4, T0 + 10).await.unwrap();
        let got: Vec<(MessageId, u32)> = step.claimed.iter().map(|p| (p.message, p.seq)).collect();
        assert_eq!(got, vec![(ids[0], 1), (ids[0], 2), (ids[1], 1)]);
        // A window smaller than the next message still claims all of it.
        let step = store.send_step(MODEM, vec![], 1, T0 + 10).await.unwrap();
        assert_eq!(step.claimed.len(), 3);
        assert!(step.claimed.iter().all(|p| p.message == ids[2]));
        // 0 claims nothing.
        let step = store.send_step(MODEM, vec![], 0, T0 + 10).await.unwrap();
        assert!(step.claimed.is_empty());
    }

    #[tokio::test]
    async fn a_step_records_each_sent_part_alone_and_claims_in_the_same_commit() {
        let (_dir, store) = store();
        let ids = bound(&store, &[1, 1]).await;
        let first = store.send_step(MODEM, vec![], 1, T0 + 10).await.unwrap();
        let a = first.claimed[0].attempt;
        let records = vec![
            SentRecord {
                attempt: a,
                mr: Some(7),
            },
            // Recorded already by the one before: stale, fails alone.
            SentRecord {
                attempt: a,
                mr: Some(8),
            },
            SentRecord {
                attempt: AttemptId(424_242),
                mr: None,
            },
        ];
        let step = store.send_step(MODEM, records, 1, T0 + 20).await.unwrap();
        assert!(step.recorded[0].is_ok());
        assert!(matches!(
            step.recorded[1],
            Err(StoreError::StaleAttempt { .. })
        ));
        assert!(matches!(step.recorded[2], Err(StoreError::NotFound { .. })));
        assert_eq!(step.claimed.len(), 1);
        assert_eq!(step.claimed[0].message, ids[1]);
        let st = store.outbound_status(ids[0]).await.unwrap();
        assert_eq!(st.state, MessageState::Sent);
        assert_eq!(st.parts[0].mr, Some(7));
        let st = store.outbound_status(ids[1]).await.unwrap();
        assert_eq!(st.state, MessageState::Sending);
    }

    #[tokio::test]
    async fn unclaimed_parts_are_queued_again_unflagged_and_unbound() {
        let (_dir, store) = store();
        let ids = bound(&store, &[2]).await;
        let step = store.send_step(MODEM, vec![], 8, T0 + 10).await.unwrap();
        let attempts: Vec<AttemptId> = step.claimed.iter().map(|p| p.attempt).collect();
        assert_eq!(attempts.len(), 2);
        assert_eq!(store.unclaim(attempts.clone(), T0 + 20).await.unwrap(), 2);
        // A second give-back finds nothing in flight.
        assert_eq!(store.unclaim(attempts, T0 + 30).await.unwrap(), 0);
        let st = store.outbound_status(ids[0]).await.unwrap();
        assert_eq!(st.state, MessageState::Queued);
        assert_eq!(st.modem, None, "free for any modem again");
        for p in &st.parts {
            assert_eq!(p.state, PartState::Queued);
            assert_eq!(p.attempts, 0);
            assert_eq!(p.maybe_sent, 0);
        }
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.maybe_sent_total, 0);
        // Claimable again as the first attempt.
        store.bind(ids[0], MODEM).await.unwrap();
        let again = store.send_step(MODEM, vec![], 8, T0 + 40).await.unwrap();
        assert_eq!(again.claimed.len(), 2);
        assert!(again
            .claimed
            .iter()
            .all(|p| p.attempt_no == 1 && !p.maybe_sent));
    }

    #[tokio::test]
    async fn an_unconfirmed_part_is_maybe_sent_and_keeps_its_modem() {
        let (_dir, store) = store();
        let ids = bound(&store, &[2]).await;
        let step = store.send_step(MODEM, vec![], 8, T0 + 10).await.unwrap();
        let (a, b) = (step.claimed[0].attempt, step.claimed[1].attempt);
        let out = store
            .mark_failed(
                a,
                SendFailure::MaybeSent("PDU written, no answer".into()),
                T0 + 20,
            )
            .await
            .unwrap();
        assert!(matches!(out, FailureOutcome::Retry { .. }), "{out:?}");
        let out = store
            .mark_failed(b, SendFailure::Temporary("not written".into()), T0 + 20)
            .await
            .unwrap();
        assert!(matches!(out, FailureOutcome::Retry { .. }), "{out:?}");
        let st = store.outbound_status(ids[0]).await.unwrap();
        assert_eq!(st.state, MessageState::Queued);
        let counts: Vec<u32> = st.parts.iter().map(|p| p.maybe_sent).collect();
        assert_eq!(counts, vec![1, 0], "only the unconfirmed part");
        assert_eq!(store.stats().await.unwrap().maybe_sent_total, 1);
        // Never freed for another modem, whoever asks.
        assert!(!store.unbind(ids[0]).await.unwrap());
        assert_eq!(store.unbind_modem(MODEM).await.unwrap(), 0);
        assert_eq!(st.modem.as_deref(), Some(MODEM));
        // Retried on the same modem, the claim says it may have left.
        let again = store
            .send_step(MODEM, vec![], 8, T0 + 60_000)
            .await
            .unwrap();
        assert_eq!(again.claimed.len(), 2);
        assert!(again.claimed[0].maybe_sent && !again.claimed[1].maybe_sent);
        let gone: Vec<AttemptId> = again.claimed.iter().map(|p| p.attempt).collect();
        store.unclaim(gone, T0 + 60_010).await.unwrap();
        // Its modem never back: its parts fail rather than go elsewhere.
        assert_eq!(store.fail_stranded(MODEM, T0 + 70_000).await.unwrap(), 2);
        let st = store.outbound_status(ids[0]).await.unwrap();
        assert_eq!(st.state, MessageState::Failed);
        assert!(st.reason.unwrap_or_default().contains("maybe sent"));
    }
}
