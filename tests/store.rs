//! The SQLite store on real files: outbound queue, inbound reassembly,
//! status reports, events, failures of the file itself, and a kill -9 test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use proptest::prelude::*;
use smsgate::store::*;

const T0: i64 = 1_700_000_000_000;
const MODEM: &str = "356938035643809";
const OTHER: &str = "862877030000001";

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::at(dir.join("smsgate.db"))
}

async fn open(dir: &Path) -> Store {
    Store::open_async(config(dir)).await.unwrap()
}

/// A new store in a new temporary directory.
async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    (dir, store)
}

fn msg(to: &str, parts: usize) -> NewOutbound {
    NewOutbound {
        recipient: to.into(),
        text: Some(format!("hello in {parts} parts")),
        parts: (0..parts)
            .map(|i| vec![0x01, 0x00, i as u8, 0xAA])
            .collect(),
        ..Default::default()
    }
}

fn inbound(sender: &str, scts: i64, concat: Option<(u16, u8, u8)>, text: &str) -> InboundPart {
    // A stand-in PDU whose bytes differ exactly when sender, SCTS, concat or
    // text differ, as a real SMS-DELIVER's do.
    let mut pdu = sender.as_bytes().to_vec();
    pdu.extend_from_slice(&scts.to_be_bytes());
    if let Some((r, t, s)) = concat {
        pdu.extend_from_slice(&[0x05, 0x00, 0x03, r as u8, t, s]);
    }
    pdu.extend_from_slice(text.as_bytes());
    InboundPart {
        modem: MODEM.into(),
        sim: Some("8944100000000000001".into()),
        sender: sender.into(),
        scts_ms: scts,
        concat: concat.map(|(reference, total, seq)| Concat {
            reference,
            total,
            seq,
        }),
        body: InboundBody::Text(text.into()),
        pdu,
        storage_index: Some(3),
        received_ms: scts + 2_000,
    }
}

fn report(mr: u8, to: &str, status: u8, at: i64) -> StatusReport {
    let mut pdu = vec![0x06, mr];
    pdu.extend_from_slice(to.as_bytes());
    pdu.extend_from_slice(&at.to_be_bytes());
    pdu.push(status);
    StatusReport {
        modem: MODEM.into(),
        mr,
        recipient: to.into(),
        scts_ms: Some(at - 1000),
        discharge_ms: Some(at),
        status,
        pdu,
        received_ms: at,
    }
}

// ---------- outbound ----------

#[tokio::test]
async fn enqueue_claim_sent_report_delivered() {
    let (_dir, store) = fresh().await;
    let q = store.enqueue(msg("+447700900123", 2), T0).await.unwrap();
    assert!(q.created);
    assert_eq!(
        store.outbound_status(q.id).await.unwrap().state,
        MessageState::Queued
    );

    let claimed = store.claim_due(MODEM, T0, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        (claimed[0].seq, claimed[0].total, claimed[0].attempt_no),
        (1, 2, 1)
    );
    assert_eq!(claimed[1].payload, vec![0x01, 0x00, 1, 0xAA]);
    assert!(!claimed[0].maybe_sent);
    // Claimed parts are not handed out twice.
    assert!(store.claim_due(MODEM, T0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.outbound_status(q.id).await.unwrap().state,
        MessageState::Sending
    );

    store
        .mark_sent(claimed[0].attempt, 17, T0 + 100)
        .await
        .unwrap();
    assert_eq!(
        store.outbound_status(q.id).await.unwrap().state,
        MessageState::Sending
    );
    store
        .mark_sent(claimed[1].attempt, 18, T0 + 200)
        .await
        .unwrap();
    let st = store.outbound_status(q.id).await.unwrap();
    assert_eq!(st.state, MessageState::Sent);
    assert_eq!(st.parts[1].mr, Some(18));
    assert_eq!(st.modem.as_deref(), Some(MODEM));
    // A result for an attempt that is over is refused.
    assert!(matches!(
        store.mark_sent(claimed[0].attempt, 17, T0 + 300).await,
        Err(StoreError::StaleAttempt { .. })
    ));

    // The recipient in the report is in national format.
    let r1 = store
        .record_status_report(report(17, "07700900123", 0x00, T0 + 5_000))
        .await
        .unwrap();
    assert_eq!(
        (r1.new, r1.part, r1.class),
        (true, Some(st.parts[0].id), ReportClass::Delivered)
    );
    assert_eq!(
        store.outbound_status(q.id).await.unwrap().state,
        MessageState::Sent
    );
    store
        .record_status_report(report(18, "+447700900123", 0x00, T0 + 6_000))
        .await
        .unwrap();
    let st = store.outbound_status(q.id).await.unwrap();
    assert_eq!(st.state, MessageState::Delivered);
    assert_eq!(st.parts[1].delivered_ms, Some(T0 + 6_000));

    let modems = store.modems(T0).await.unwrap();
    assert_eq!(modems[0].sent_today, 2);

    let states: Vec<_> = store
        .events_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::MessageState { message, state, .. } if message == q.id => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            MessageState::Queued,
            MessageState::Sending,
            MessageState::Sent,
            MessageState::Delivered
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn idempotency_key_returns_the_first_message_and_refuses_other_content() {
    let (_dir, store) = fresh().await;
    let mut req = msg("+15551230000", 1);
    req.idempotency_key = Some("client-1:req-42".into());
    let first = store.enqueue(req.clone(), T0).await.unwrap();
    // A retry later (the client did not see the answer) is the same message.
    let again = store.enqueue(req.clone(), T0 + 60_000).await.unwrap();
    assert_eq!(
        again,
        Enqueued {
            id: first.id,
            created: false
        }
    );
    assert_eq!(
        store.find_by_key("client-1:req-42").await.unwrap(),
        Some(first.id)
    );
    assert_eq!(store.find_by_key("other").await.unwrap(), None);
    let mut other = req.clone();
    other.text = Some("something else".into());
    match store.enqueue(other, T0).await {
        Err(StoreError::IdempotencyConflict { existing, .. }) => assert_eq!(existing, first.id),
        r => panic!("expected a conflict, got {r:?}"),
    }
    assert_eq!(store.stats().await.unwrap().parts_queued, 1);
    store.close().await;
}

#[tokio::test]
async fn temporary_failures_back_off_then_give_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.retry = RetryPolicy {
        base_ms: 1_000,
        max_ms: 3_000,
        max_attempts: 4,
    };
    let store = Store::open_async(cfg).await.unwrap();
    let q = store.enqueue(msg("+15551230000", 1), T0).await.unwrap();
    let mut now = T0;
    let mut delays = Vec::new();
    for _ in 0..3 {
        let c = store.claim_due(MODEM, now, 10).await.unwrap();
        assert_eq!(c.len(), 1);
        let out = store
            .mark_failed(
                c[0].attempt,
                SendFailure::Temporary("+CMS ERROR: 38".into()),
                now,
            )
            .await
            .unwrap();
        let FailureOutcome::Retry { next_attempt_ms } = out else {
            panic!("{out:?}")
        };
        delays.push(next_attempt_ms - now);
        // Not due before its backoff.
        assert!(store
            .claim_due(MODEM, next_attempt_ms - 1, 10)
            .await
            .unwrap()
            .is_empty());
        now = next_attempt_ms;
    }
    assert_eq!(delays, [1_000, 2_000, 3_000]);
    let c = store.claim_due(MODEM, now, 10).await.unwrap();
    assert_eq!(c[0].attempt_no, 4);
    let out = store
        .mark_failed(
            c[0].attempt,
            SendFailure::Temporary("+CMS ERROR: 38".into()),
            now,
        )
        .await
        .unwrap();
    assert_eq!(out, FailureOutcome::Failed);
    let st = store.outbound_status(q.id).await.unwrap();
    assert_eq!(st.state, MessageState::Failed);
    assert!(
        st.reason.unwrap().contains("gave up after 4 attempts"),
        "reason"
    );
    assert_eq!(store.modems(now).await.unwrap()[0].failed_today, 1);
    store.close().await;
}

#[tokio::test]
async fn a_permanent_failure_of_one_part_fails_the_message() {
    let (_dir, store) = fresh().await;
    let q = store.enqueue(msg("+15551230000", 2), T0).await.unwrap();
    let c = store.claim_due(MODEM, T0, 10).await.unwrap();
    store.mark_sent(c[0].attempt, 1, T0).await.unwrap();
    store
        .mark_failed(
            c[1].attempt,
            SendFailure::Permanent("+CMS ERROR: 21 rejected".into()),
            T0,
        )
        .await
        .unwrap();
    let st = store.outbound_status(q.id).await.unwrap();
    assert_eq!(st.state, MessageState::Failed);
    assert_eq!(st.reason.as_deref(), Some("+CMS ERROR: 21 rejected"));
    store.close().await;
}

#[tokio::test]
async fn parts_stay_on_one_modem_and_fail_over_while_none_left() {
    let (_dir, store) = fresh().await;
    let q = store.enqueue(msg("+15551230000", 2), T0).await.unwrap();
    let c = store.claim_due(MODEM, T0, 1).await.unwrap();
    assert_eq!(c.len(), 1);
    // Part 2 must leave through the same SIM, or the phone cannot join them.
    assert!(store.claim_due(OTHER, T0, 10).await.unwrap().is_empty());
    let out = store
        .mark_failed(
            c[0].attempt,
            SendFailure::Temporary("no network".into()),
            T0,
        )
        .await
        .unwrap();
    let FailureOutcome::Retry { next_attempt_ms } = out else {
        panic!()
    };
    // Nothing left yet: another modem may take the whole message.
    let c2 = store.claim_due(OTHER, next_attempt_ms, 10).await.unwrap();
    assert_eq!(c2.len(), 2);
    assert_eq!(
        store.outbound_status(q.id).await.unwrap().modem.as_deref(),
        Some(OTHER)
    );

    // A pinned message only goes out through its modem.
    let mut pinned = msg("+15551230001", 1);
    pinned.modem = Some(MODEM.into());
    let p = store.enqueue(pinned, T0).await.unwrap();
    assert!(store.claim_due(OTHER, T0, 10).await.unwrap().is_empty());
    let c3 = store.claim_due(MODEM, T0, 10).await.unwrap();
    assert_eq!(c3.iter().map(|c| c.message).collect::<Vec<_>>(), [p.id]);
    store.close().await;
}

#[tokio::test]
async fn scheduled_send_and_expiry() {
    let (_dir, store) = fresh().await;
    let mut later = msg("+15551230000", 1);
    later.send_at_ms = Some(T0 + 60_000);
    let later = store.enqueue(later, T0).await.unwrap();
    let mut short = msg("+15551230001", 2);
    short.valid_until_ms = Some(T0 + 30_000);
    let short = store.enqueue(short, T0).await.unwrap();

    // Only the short-lived one is due; take one part of it.
    let c = store.claim_due(MODEM, T0, 1).await.unwrap();
    assert_eq!(c[0].message, short.id);
    store.mark_sent(c[0].attempt, 9, T0 + 1).await.unwrap();

    // The periodic pass expires it once valid_until is reached.
    assert_eq!(
        store
            .expire_due(T0 + 29_999)
            .await
            .unwrap()
            .outbound_expired,
        0
    );
    let rep = store.expire_due(T0 + 30_000).await.unwrap();
    assert_eq!(rep.outbound_expired, 1);
    assert!(store
        .claim_due(MODEM, T0 + 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    let st = store.outbound_status(short.id).await.unwrap();
    assert_eq!(st.state, MessageState::Expired);
    assert_eq!(st.parts[0].state, PartState::Sent);
    assert_eq!(st.parts[1].state, PartState::Expired);

    let c = store.claim_due(MODEM, T0 + 60_000, 10).await.unwrap();
    assert_eq!(c[0].message, later.id);

    // A claim after valid_until expires the message itself, even if no
    // periodic pass ran.
    let mut gone = msg("+15551230002", 1);
    gone.valid_until_ms = Some(T0 + 70_000);
    let gone = store.enqueue(gone, T0).await.unwrap();
    assert!(store
        .claim_due(MODEM, T0 + 70_000, 10)
        .await
        .unwrap()
        .is_empty());
    let st = store.outbound_status(gone.id).await.unwrap();
    assert_eq!(st.state, MessageState::Expired);
    store.close().await;
}

#[tokio::test]
async fn cancel_a_queued_message_not_a_sending_one() {
    let (_dir, store) = fresh().await;
    let a = store.enqueue(msg("+15551230000", 1), T0).await.unwrap();
    store.cancel(a.id, T0).await.unwrap();
    store.cancel(a.id, T0).await.unwrap();
    assert_eq!(
        store.outbound_status(a.id).await.unwrap().state,
        MessageState::Cancelled
    );
    assert!(store.claim_due(MODEM, T0, 10).await.unwrap().is_empty());

    let b = store.enqueue(msg("+15551230000", 1), T0).await.unwrap();
    store.claim_due(MODEM, T0, 10).await.unwrap();
    assert!(matches!(
        store.cancel(b.id, T0).await,
        Err(StoreError::NotCancellable {
            state: MessageState::Sending,
            ..
        })
    ));
    assert!(matches!(
        store.cancel(MessageId(999), T0).await,
        Err(StoreError::NotFound { .. })
    ));
    store.close().await;
}

#[tokio::test]
async fn parts_left_sending_by_a_crash_are_requeued_as_maybe_sent() {
    let (dir, store) = fresh().await;
    let q = store.enqueue(msg("+15551230000", 2), T0).await.unwrap();
    let c = store.claim_due(MODEM, T0, 10).await.unwrap();
    store.mark_sent(c[0].attempt, 3, T0).await.unwrap();
    // Part 2 is in flight when the process "dies".
    store.close().await;

    let store = open(dir.path()).await;
    assert_eq!(store.open_report().requeued_sending, 1);
    assert_eq!(store.stats().await.unwrap().maybe_sent_total, 1);
    let again = store.claim_due(MODEM, T0, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].seq, again[0].attempt_no, again[0].maybe_sent),
        (2, 2, true)
    );
    // The old attempt's late answer is refused.
    assert!(matches!(
        store.mark_sent(c[1].attempt, 4, T0).await,
        Err(StoreError::StaleAttempt { .. })
    ));
    store.mark_sent(again[0].attempt, 4, T0).await.unwrap();
    assert_eq!(
        store.outbound_status(q.id).await.unwrap().state,
        MessageState::Sent
    );
    store.close().await;
}

#[tokio::test]
async fn a_vanished_modem_gives_its_parts_back() {
    let (_dir, store) = fresh().await;
    store.enqueue(msg("+15551230000", 1), T0).await.unwrap();
    store.claim_due(MODEM, T0, 10).await.unwrap();
    assert_eq!(store.release_modem(OTHER, T0).await.unwrap(), 0);
    assert_eq!(store.release_modem(MODEM, T0).await.unwrap(), 1);
    let c = store.claim_due(OTHER, T0, 10).await.unwrap();
    assert!(c[0].maybe_sent);
    store.close().await;
}

#[tokio::test]
async fn many_concurrent_requesters_are_all_answered_and_durable() {
    let (dir, store) = fresh().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut m = msg(&format!("+1555{i:07}"), 1);
            m.idempotency_key = Some(format!("k{}", i % 150));
            s.enqueue(m, T0).await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::IdempotencyConflict { .. }) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // Reused keys with other content fail alone; their batch-mates commit.
    assert_eq!((ok, conflicts), (150, 50));
    store.close().await;
    let store = open(dir.path()).await;
    assert_eq!(store.stats().await.unwrap().parts_queued, 150);
    store.close().await;
}

// ---------- status reports ----------

#[tokio::test]
async fn status_reports_match_across_mr_wrap_and_unmatched_are_kept() {
    let (_dir, store) = fresh().await;
    let to = "+447700900123";
    // 300 messages to the same number: MR wraps at 256, so MRs 0..44 are
    // used twice.
    let mut ids = Vec::new();
    for i in 0..300_i64 {
        let q = store.enqueue(msg(to, 1), T0).await.unwrap();
        let c = store.claim_due(MODEM, T0 + i * 1000, 1).await.unwrap();
        store
            .mark_sent(c[0].attempt, (i % 256) as u8, T0 + i * 1000)
            .await
            .unwrap();
        ids.push(q.id);
    }
    // MR 10 of the second round (message 266) is the newest with MR 10.
    let r = store
        .record_status_report(report(10, to, 0x00, T0 + 300_000))
        .await
        .unwrap();
    assert_eq!(r.message, Some(ids[266]));
    // A second report with MR 10 goes to the older part still waiting.
    let r = store
        .record_status_report(report(10, to, 0x00, T0 + 300_500))
        .await
        .unwrap();
    assert_eq!(r.message, Some(ids[10]));
    // Pending, then final: the part stays sent, then is delivered.
    let r = store
        .record_status_report(report(20, to, 0x20, T0 + 301_000))
        .await
        .unwrap();
    assert_eq!((r.message, r.class), (Some(ids[276]), ReportClass::Pending));
    assert_eq!(
        store.outbound_status(ids[276]).await.unwrap().state,
        MessageState::Sent
    );
    // A permanent error fails the message.
    let r = store
        .record_status_report(report(20, to, 0x41, T0 + 302_000))
        .await
        .unwrap();
    assert_eq!((r.message, r.class), (Some(ids[276]), ReportClass::Failed));
    let st = store.outbound_status(ids[276]).await.unwrap();
    assert_eq!(st.state, MessageState::Failed);
    assert!(st.reason.unwrap().contains("0x41"));

    // Re-reported after a reset: not applied twice, not new.
    let again = store
        .record_status_report(report(10, to, 0x00, T0 + 300_000))
        .await
        .unwrap();
    assert_eq!((again.new, again.message), (false, Some(ids[266])));

    // Wrong recipient, unknown MR on another modem, outside the window.
    let mut wrong = report(11, "+15550000000", 0x00, T0 + 303_000);
    assert_eq!(
        store
            .record_status_report(wrong.clone())
            .await
            .unwrap()
            .part,
        None
    );
    wrong = report(12, to, 0, T0 + 303_000);
    wrong.modem = OTHER.into();
    assert_eq!(store.record_status_report(wrong).await.unwrap().part, None);
    let late = report(13, to, 0, T0 + 300_000 + 4 * 86_400_000);
    assert_eq!(store.record_status_report(late).await.unwrap().part, None);
    assert_eq!(store.stats().await.unwrap().unmatched_reports_total, 3);
    store.close().await;
}

// ---------- inbound ----------

#[tokio::test]
async fn multipart_out_of_order_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let from = "+4915112345678";
    let store = open(dir.path()).await;
    let c3 = store
        .commit_inbound(inbound(from, T0 + 2, Some((0x1234, 3, 3)), "three"))
        .await
        .unwrap();
    let c1 = store
        .commit_inbound(inbound(from, T0, Some((0x1234, 3, 1)), "one "))
        .await
        .unwrap();
    assert_eq!(
        (c3.new, c3.completed, c1.new, c1.completed),
        (true, None, true, None)
    );
    assert_eq!(store.stats().await.unwrap().inbound_groups_open, 1);
    store.close().await;

    let store = open(dir.path()).await;
    let c2 = store
        .commit_inbound(inbound(from, T0 + 1, Some((0x1234, 3, 2)), "two "))
        .await
        .unwrap();
    let id = c2.completed.expect("complete after part 2");
    let m = store.inbound(id).await.unwrap();
    assert_eq!(m.text.as_deref(), Some("one two three"));
    assert_eq!((m.parts_total, m.parts_received, m.partial), (3, 3, false));
    assert_eq!(m.scts_ms, T0);
    assert_eq!(m.received_ms, T0 + 2_000);
    store.close().await;
}

#[tokio::test]
async fn the_same_pdu_after_a_reset_is_not_a_new_message() {
    let (dir, store) = fresh().await;
    let p = inbound("+4915112345678", T0, None, "hi");
    let first = store.commit_inbound(p.clone()).await.unwrap();
    assert!(first.new && first.completed.is_some());
    store.close().await;
    // The modem was reset and lists its storage again (other index, later).
    let store = open(dir.path()).await;
    let mut again = p.clone();
    again.storage_index = Some(0);
    again.received_ms += 600_000;
    let second = store.commit_inbound(again).await.unwrap();
    assert_eq!((second.new, second.completed), (false, None));
    // Also a re-reported part of an incomplete multipart message.
    let part = inbound("+4915112345678", T0 + 5, Some((7, 2, 1)), "a");
    assert!(store.commit_inbound(part.clone()).await.unwrap().new);
    assert!(!store.commit_inbound(part).await.unwrap().new);
    let s = store.stats().await.unwrap();
    assert_eq!((s.inbound_duplicates_total, s.inbound_unacked), (2, 1));
    store.close().await;
}

#[tokio::test]
async fn the_same_text_sent_twice_is_two_messages() {
    let (_dir, store) = fresh().await;
    let a = store
        .commit_inbound(inbound("+4915112345678", T0, None, "ok"))
        .await
        .unwrap();
    let b = store
        .commit_inbound(inbound("+4915112345678", T0 + 1000, None, "ok"))
        .await
        .unwrap();
    assert!(a.new && b.new);
    assert_ne!(a.completed, b.completed);
    // The same multipart text twice (same reference even) is two messages.
    for scts in [T0 + 10_000, T0 + 20_000] {
        store
            .commit_inbound(inbound("+4915112345678", scts, Some((9, 2, 1)), "x"))
            .await
            .unwrap();
        let done = store
            .commit_inbound(inbound("+4915112345678", scts + 1, Some((9, 2, 2)), "y"))
            .await
            .unwrap();
        assert!(done.completed.is_some());
    }
    assert_eq!(
        store
            .inbound_unacked(InboundId(0), 100)
            .await
            .unwrap()
            .len(),
        4
    );
    store.close().await;
}

#[tokio::test]
async fn an_incomplete_group_expires_into_a_flagged_partial_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.reassembly_timeout_ms = 600_000;
    let store = Store::open_async(cfg).await.unwrap();
    store
        .commit_inbound(inbound("+4915112345678", T0, Some((5, 4, 2)), "middle"))
        .await
        .unwrap();
    // The last part arrives 5 minutes later: the timeout counts from it.
    let p = inbound("+4915112345678", T0 + 300_000, Some((5, 4, 4)), " end");
    let received = p.received_ms;
    store.commit_inbound(p).await.unwrap();
    assert_eq!(
        store
            .expire_due(received + 599_999)
            .await
            .unwrap()
            .inbound_partials,
        0
    );
    assert_eq!(
        store
            .expire_due(received + 600_000)
            .await
            .unwrap()
            .inbound_partials,
        1
    );
    let m = store.inbound_unacked(InboundId(0), 10).await.unwrap();
    assert_eq!(m.len(), 1);
    assert!(m[0].partial);
    assert_eq!(m[0].missing, [1, 3]);
    assert_eq!(m[0].text.as_deref(), Some("middle end"));
    assert_eq!(store.stats().await.unwrap().inbound_groups_open, 0);
    let events = store.events_since(0, 10).await.unwrap();
    assert!(events.iter().any(|e| e.kind
        == EventKind::InboundComplete {
            message: m[0].id,
            partial: true
        }));
    store.close().await;
}

#[tokio::test]
async fn a_reused_reference_closes_the_old_group_as_partial() {
    let (_dir, store) = fresh().await;
    let from = "+4915112345678";
    store
        .commit_inbound(inbound(from, T0, Some((1, 2, 1)), "old"))
        .await
        .unwrap();
    // A new message reuses reference 1 before part 2 of the old one came.
    store
        .commit_inbound(inbound(from, T0 + 9, Some((1, 2, 1)), "new-a"))
        .await
        .unwrap();
    let done = store
        .commit_inbound(inbound(from, T0 + 9, Some((1, 2, 2)), "new-b"))
        .await
        .unwrap();
    let m = store.inbound(done.completed.unwrap()).await.unwrap();
    assert_eq!((m.text.as_deref(), m.partial), (Some("new-anew-b"), false));
    let all = store.inbound_unacked(InboundId(0), 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].partial && all[0].text.as_deref() == Some("old"));
    store.close().await;
}

#[tokio::test]
async fn invalid_concatenation_is_read_as_a_single_message() {
    let (_dir, store) = fresh().await;
    for (i, c) in [(1, 0, 1), (1, 3, 0), (1, 3, 4), (1, 1, 1)]
        .into_iter()
        .enumerate()
    {
        let r = store
            .commit_inbound(inbound("+4915112345678", T0 + i as i64, Some(c), "x"))
            .await
            .unwrap();
        assert!(r.completed.is_some(), "{c:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn events_replay_from_a_cursor_and_bus_acks() {
    let (dir, store) = fresh().await;
    let mut cursor_watch = store.subscribe();
    let a = store
        .commit_inbound(inbound("+1555", T0, None, "a"))
        .await
        .unwrap()
        .completed
        .unwrap();
    let b = store
        .commit_inbound(inbound("+1555", T0 + 1, None, "b"))
        .await
        .unwrap()
        .completed
        .unwrap();
    store.set_modem_state(MODEM, "ready", T0).await.unwrap();
    assert!(cursor_watch.has_changed().unwrap());
    assert_eq!(*cursor_watch.borrow_and_update(), 3);

    let all = store.events_since(0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.cursor).collect::<Vec<_>>(), [1, 2, 3]);
    let after_first = store.events_since(all[0].cursor, 1).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(
        after_first[0].kind,
        EventKind::InboundComplete {
            message: b,
            partial: false
        }
    );
    assert_eq!(
        all[2].kind,
        EventKind::ModemState {
            modem: MODEM.into(),
            state: "ready".into()
        }
    );

    store.inbound_delivered(a, T0 + 10).await.unwrap();
    assert_eq!(
        store.inbound(a).await.unwrap().bus_state,
        BusState::Delivered
    );
    store.ack_inbound(a, T0 + 20).await.unwrap();
    store.ack_inbound(a, T0 + 30).await.unwrap();
    assert!(matches!(
        store.ack_inbound(InboundId(99), T0).await,
        Err(StoreError::NotFound { .. })
    ));
    let left = store.inbound_unacked(InboundId(0), 10).await.unwrap();
    assert_eq!(left.iter().map(|m| m.id).collect::<Vec<_>>(), [b]);
    let all = store.inbound_since(InboundId(0), 10).await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), [a, b]);
    store.close().await;

    // Cursors survive a restart and keep growing.
    let store = open(dir.path()).await;
    assert_eq!(*store.subscribe().borrow(), 3);
    store.set_modem_state(MODEM, "gone", T0).await.unwrap();
    assert_eq!(store.events_since(3, 10).await.unwrap()[0].cursor, 4);
    store.close().await;
}

#[tokio::test]
async fn modems_and_sims_are_remembered_with_daily_counters() {
    let (_dir, store) = fresh().await;
    let info = ModemInfo {
        id: MODEM.into(),
        manufacturer: Some("huawei".into()),
        model: Some("E3372".into()),
        iccid: Some("8944100000000000001".into()),
        imsi: Some("234100000000001".into()),
        ..Default::default()
    };
    store.modem_seen(info.clone(), T0).await.unwrap();
    store
        .modem_seen(
            ModemInfo {
                model: None,
                ..info
            },
            T0 + 5,
        )
        .await
        .unwrap();
    store
        .commit_inbound(inbound("+1555", T0, None, "x"))
        .await
        .unwrap();
    let m = &store.modems(T0).await.unwrap()[0];
    assert_eq!(
        (m.model.as_deref(), m.first_seen_ms, m.last_seen_ms),
        (Some("E3372"), T0, T0 + 5)
    );
    assert_eq!(m.received_today, 1);
    // Counters are per UTC day.
    assert_eq!(
        store.modems(T0 + 86_400_000).await.unwrap()[0].received_today,
        0
    );
    let sims = store.sims().await.unwrap();
    assert_eq!(sims[0].modem.as_deref(), Some(MODEM));
    store.close().await;
}

#[tokio::test]
async fn bad_requests_get_a_clear_error_and_change_nothing() {
    let (_dir, store) = fresh().await;
    let bad = [
        msg("", 1),
        msg("+1555", 0),
        msg("+1555", 256),
        NewOutbound {
            parts: vec![vec![0; 600]],
            ..msg("+1555", 1)
        },
        NewOutbound {
            idempotency_key: Some("k".repeat(300)),
            ..msg("+1555", 1)
        },
    ];
    for m in bad {
        assert!(matches!(
            store.enqueue(m, T0).await,
            Err(StoreError::Invalid(_))
        ));
    }
    let mut p = inbound("+1555", T0, None, "x");
    p.pdu.clear();
    assert!(matches!(
        store.commit_inbound(p).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.claim_due("", T0, 1).await,
        Err(StoreError::Invalid(_))
    ));
    let s = store.stats().await.unwrap();
    assert_eq!((s.parts_queued, s.last_event), (0, 0));
    store.close().await;
}

// ---------- the database file ----------

#[tokio::test]
async fn a_new_file_is_migrated_and_a_future_version_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An empty file (as `touch` leaves it) is an empty database.
    std::fs::write(dir.path().join("smsgate.db"), b"").unwrap();
    let store = open(dir.path()).await;
    assert_eq!(
        store.open_report(),
        OpenReport {
            schema_from: 0,
            schema_to: SCHEMA_VERSION,
            requeued_sending: 0
        }
    );
    store.close().await;
    let store = open(dir.path()).await;
    assert_eq!(store.open_report().schema_from, SCHEMA_VERSION);
    store.close().await;

    let path = dir.path().join("smsgate.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    drop(conn);
    let err = Store::open_async(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureSchema { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(err.to_string().contains("smsgate.db"), "{err}");
}

#[tokio::test]
async fn a_corrupt_file_gives_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smsgate.db");
    std::fs::write(
        &path,
        b"this is not an SQLite database, just garbage bytes\n".repeat(200),
    )
    .unwrap();
    let err = Store::open_async(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("corrupt"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unwritable_location_gives_a_clear_error() {
    // Root ignores permission bits, so use a read-only file system then.
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let target = if nix::unistd::geteuid().is_root() {
        std::path::PathBuf::from("/proc/smsgate-store-test")
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        ro.clone()
    };
    let err = Store::open_async(config(&target)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Io { .. } | StoreError::Open { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&target.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_owner_is_refused() {
    let (dir, store) = fresh().await;
    let err = Store::open_async(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    store.close().await;
    open(dir.path()).await.close().await;
}

#[tokio::test]
async fn a_full_store_refuses_writes_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_size_bytes = Some(256 * 1024);
    let store = Store::open_async(cfg).await.unwrap();
    let mut stored = Vec::new();
    let full = loop {
        let mut m = msg("+15551230000", 8);
        m.parts = (0..8).map(|i| vec![i; 160]).collect();
        match store.enqueue(m, T0).await {
            Ok(q) => stored.push(q.id),
            Err(e) => break e,
        }
        assert!(stored.len() < 10_000, "never filled up");
    };
    assert!(matches!(full, StoreError::Full { .. }), "{full:?}");
    assert!(full.to_string().contains("full"));
    // Reads still work, and everything acknowledged is there.
    assert_eq!(
        store.stats().await.unwrap().parts_queued,
        stored.len() as u64 * 8
    );
    let last = *stored.last().unwrap();
    assert_eq!(store.outbound_status(last).await.unwrap().parts.len(), 8);
    // Freeing work (a small write) still goes through once space allows.
    let c = store.claim_due(MODEM, T0, 1).await;
    assert!(c.is_ok() || matches!(c, Err(StoreError::Full { .. })));
    store.close().await;
}

#[test]
fn sync_code_can_use_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    let q = block_on(store.enqueue(msg("+1555", 1), T0)).unwrap();
    let st = block_on(store.outbound_status(q.id)).unwrap();
    assert_eq!(st.state, MessageState::Queued);
    block_on(store.close());
}

// ---------- kill -9 ----------

const CHILD_ENV: &str = "SMSGATE_STORE_CRASH_DB";

/// Not a test on its own: the body of the child process of
/// `kill_9_loses_nothing_acknowledged` (re-executed with `CHILD_ENV` set).
/// Enqueues from many tasks, sends some, and prints every acknowledged id.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = Store::open_async(StoreConfig::at(path)).await.unwrap();
        println!("OPEN {}", store.open_report().requeued_sending);
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let mut m = msg("+15551230000", 1 + (i % 3));
                    m.idempotency_key = Some(format!("{}-{t}-{i}", std::process::id()));
                    let q = s.enqueue(m, smsgate::store::now_ms()).await.unwrap();
                    println!("ACK {}", q.id);
                }
            }));
        }
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("{}-{i}", std::process::id());
                let mut p = inbound("+4915112345678", T0 + i, None, "hi");
                p.pdu = key.clone().into_bytes();
                assert!(s.commit_inbound(p).await.unwrap().new);
                println!("IN {key}");
            }
        }));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                // Half the claimed parts stay `sending`: the crash window.
                for c in s.claim_due(MODEM, i64::MAX / 2, 5).await.unwrap() {
                    if c.part.0 % 2 == 0 {
                        s.mark_sent(c.attempt, (c.part.0 % 256) as u8, 0)
                            .await
                            .unwrap();
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[tokio::test]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill -9 test seed {seed}");
    let mut rng = seed;
    let mut acked: Vec<i64> = Vec::new();
    let mut committed: Vec<String> = Vec::new();
    let mut requeued = 0;
    for round in 0..8 {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(50 + (rng >> 33) % 400);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Start the clock once the child has acknowledged its first send,
        // so a slow machine still kills it mid-flow.
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.starts_with("ACK ")) {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("child opened the store and sends");
            // libtest prints "test crash_child ... " before the child's
            // first line, without a newline.
            if let Some(n) = line.split("OPEN ").nth(1) {
                requeued += n.trim().parse::<u64>().unwrap();
            }
            lines.push(line);
        }
        let started = Instant::now();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let before = acked.len();
        for line in lines.into_iter().chain(rx.try_iter()) {
            if let Some(id) = line.strip_prefix("ACK ").and_then(|s| s.parse().ok()) {
                acked.push(id);
            } else if let Some(key) = line.strip_prefix("IN ") {
                committed.push(key.to_owned());
            }
        }
        eprintln!(
            "round {round}: killed after {:?}, {} acknowledged",
            started.elapsed(),
            acked.len() - before
        );
    }
    assert!(!acked.is_empty());
    let store = Store::open_async(StoreConfig::at(&path)).await.unwrap();
    requeued += store.open_report().requeued_sending;
    for id in &acked {
        store
            .outbound_status(MessageId(*id))
            .await
            .unwrap_or_else(|e| panic!("acknowledged message {id} lost: {e}"));
    }
    // Every interrupted send was counted as maybe-sent.
    assert_eq!(store.stats().await.unwrap().maybe_sent_total, requeued);
    // Every inbound part answered as committed is there: offered again (as
    // a modem would after a restart), it is recognised, not new.
    for key in &committed {
        let mut p = inbound("+4915112345678", T0, None, "hi");
        p.pdu = key.clone().into_bytes();
        let again = store.commit_inbound(p).await.unwrap();
        assert!(!again.new, "committed inbound part {key} lost");
    }
    eprintln!(
        "{} sends acknowledged, {} inbound parts committed, all present; \
         {requeued} parts requeued as maybe-sent",
        acked.len(),
        committed.len()
    );
    store.close().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

// ---------- properties ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any arrival order, with any duplicates, gives exactly one complete
    /// message with the text in order.
    #[test]
    fn reassembly_of_any_order_with_duplicates_gives_one_message(
        total in 2u8..8,
        order in proptest::collection::vec(any::<prop::sample::Index>(), 1..24),
        reopen_at in 0usize..24,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(Store::open(config(dir.path())).unwrap());
        // Every part at least once, then the random extra arrivals.
        let mut seqs: Vec<u8> = (1..=total).collect();
        seqs.extend(order.iter().map(|i| i.index(total as usize) as u8 + 1));
        let n = seqs.len();
        for (k, i) in order.iter().enumerate().take(n) {
            let j = i.index(n - k) + k;
            seqs.swap(k, j);
        }
        let mut completed = Vec::new();
        for (k, seq) in seqs.iter().enumerate() {
            if k == reopen_at {
                block_on(store.take().unwrap().close());
                store = Some(Store::open(config(dir.path())).unwrap());
            }
            let s = store.as_ref().unwrap();
            let p = inbound("+4915112345678", T0 + i64::from(*seq), Some((77, total, *seq)), &format!("<{seq}>"));
            let r = block_on(s.commit_inbound(p)).unwrap();
            completed.extend(r.completed);
        }
        prop_assert_eq!(completed.len(), 1);
        let s = store.take().unwrap();
        let all = block_on(s.inbound_unacked(InboundId(0), 100)).unwrap();
        prop_assert_eq!(all.len(), 1);
        let want: String = (1..=total).map(|i| format!("<{i}>")).collect();
        prop_assert_eq!(all[0].text.as_deref(), Some(want.as_str()));
        prop_assert_eq!(block_on(s.stats()).unwrap().inbound_duplicates_total, (n - total as usize) as u64);
        block_on(s.close());
    }
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        parts: usize,
        pinned: bool,
        valid_for: Option<i64>,
    },
    Claim {
        other: bool,
        limit: u32,
    },
    Sent {
        pick: prop::sample::Index,
        mr: u8,
    },
    Failed {
        pick: prop::sample::Index,
        permanent: bool,
    },
    Cancel {
        pick: prop::sample::Index,
    },
    Report {
        pick: prop::sample::Index,
        status: u8,
    },
    Release,
    Expire,
    Reopen,
    Tick {
        ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..4, any::<bool>(), proptest::option::of(1i64..50_000)).prop_map(
            |(parts, pinned, valid_for)| Op::Enqueue {
                parts,
                pinned,
                valid_for
            }
        ),
        (any::<bool>(), 1u32..4).prop_map(|(other, limit)| Op::Claim { other, limit }),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(pick, mr)| Op::Sent { pick, mr }),
        (any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(pick, permanent)| Op::Failed { pick, permanent }),
        any::<prop::sample::Index>().prop_map(|pick| Op::Cancel { pick }),
        (
            any::<prop::sample::Index>(),
            prop_oneof![Just(0u8), Just(0x20), Just(0x41)]
        )
            .prop_map(|(pick, status)| Op::Report { pick, status }),
        Just(Op::Release),
        Just(Op::Expire),
        Just(Op::Reopen),
        (1i64..20_000).prop_map(|ms| Op::Tick { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("STORE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    /// Any sequence of queue operations keeps the invariants: a message's
    /// state is the combination of its parts' states; a part is never
    /// handed out twice at once; a sent part keeps its MR; nothing
    /// acknowledged disappears.
    #[test]
    fn any_sequence_of_queue_operations_keeps_the_invariants(
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.retry = RetryPolicy { base_ms: 1_000, max_ms: 4_000, max_attempts: 3 };
        let mut store = Store::open(cfg.clone()).unwrap();
        let mut now = T0;
        let mut messages: Vec<MessageId> = Vec::new();
        let mut in_flight: Vec<(&str, ClaimedPart)> = Vec::new();
        let mut sent: Vec<(MessageId, u8, String)> = Vec::new();
        for op in ops {
            match op {
                Op::Enqueue { parts, pinned, valid_for } => {
                    let mut m = msg(&format!("+1555000{}", messages.len()), parts);
                    m.modem = pinned.then(|| MODEM.to_owned());
                    m.valid_until_ms = valid_for.map(|v| now + v);
                    messages.push(block_on(store.enqueue(m, now)).unwrap().id);
                }
                Op::Claim { other, limit } => {
                    let modem = if other { OTHER } else { MODEM };
                    for c in block_on(store.claim_due(modem, now, limit)).unwrap() {
                        prop_assert!(
                            !in_flight.iter().any(|(_, f)| f.part == c.part),
                            "part {} handed out twice", c.part
                        );
                        in_flight.push((modem, c));
                    }
                }
                Op::Sent { pick, mr } if !in_flight.is_empty() => {
                    let (_, c) = in_flight.remove(pick.index(in_flight.len()));
                    match block_on(store.mark_sent(c.attempt, mr, now)) {
                        Ok(()) => sent.push((c.message, mr, c.recipient.clone())),
                        Err(StoreError::StaleAttempt { .. }) => {}
                        Err(e) => prop_assert!(false, "mark_sent: {e}"),
                    }
                }
                Op::Failed { pick, permanent } if !in_flight.is_empty() => {
                    let (_, c) = in_flight.remove(pick.index(in_flight.len()));
                    let f = if permanent {
                        SendFailure::Permanent("no".into())
                    } else {
                        SendFailure::Temporary("later".into())
                    };
                    match block_on(store.mark_failed(c.attempt, f, now)) {
                        Ok(_) | Err(StoreError::StaleAttempt { .. }) => {}
                        Err(e) => prop_assert!(false, "mark_failed: {e}"),
                    }
                }
                Op::Cancel { pick } if !messages.is_empty() => {
                    let id = messages[pick.index(messages.len())];
                    match block_on(store.cancel(id, now)) {
                        Ok(()) | Err(StoreError::NotCancellable { .. }) => {}
                        Err(e) => prop_assert!(false, "cancel: {e}"),
                    }
                }
                Op::Report { pick, status } if !sent.is_empty() => {
                    let (_, mr, to) = sent[pick.index(sent.len())].clone();
                    let mut r = report(mr, &to, status, now);
                    r.pdu.extend_from_slice(&now.to_le_bytes());
                    block_on(store.record_status_report(r)).unwrap();
                }
                Op::Release => {
                    block_on(store.release_modem(MODEM, now)).unwrap();
                    in_flight.retain(|(m, _)| *m != MODEM);
                }
                Op::Expire => {
                    block_on(store.expire_due(now)).unwrap();
                }
                Op::Reopen => {
                    block_on(store.close());
                    store = Store::open(cfg.clone()).unwrap();
                    // Everything in flight was requeued as maybe-sent.
                    in_flight.clear();
                }
                Op::Tick { ms } => now += ms,
                _ => {}
            }
            for id in &messages {
                let st = block_on(store.outbound_status(*id)).unwrap();
                let combined = MessageState::combine(st.parts.iter().map(|p| &p.state));
                prop_assert_eq!(&st.state, &combined, "message {}: {:?}", id, st.parts);
                let sending = st.parts.iter().filter(|p| p.state == PartState::Sending).count();
                let ours = in_flight.iter().filter(|(_, c)| c.message == *id).count();
                prop_assert_eq!(sending, ours, "message {} in flight", id);
                let modems: std::collections::BTreeSet<_> = st
                    .parts
                    .iter()
                    .filter(|p| matches!(p.state, PartState::Sending | PartState::Sent | PartState::Delivered))
                    .filter_map(|p| p.modem.clone())
                    .collect();
                prop_assert!(modems.len() <= 1, "message {} split over modems {:?}", id, modems);
            }
            for (id, mr, _) in &sent {
                let st = block_on(store.outbound_status(*id)).unwrap();
                prop_assert!(st.parts.iter().any(|p| p.mr == Some(*mr)));
            }
        }
        block_on(store.close());
    }
}

#[tokio::test]
async fn damaged_pages_give_clear_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    for i in 0..200 {
        store
            .enqueue(msg(&format!("+1555{i:07}"), 3), T0)
            .await
            .unwrap();
    }
    store.close().await;
    // Force the WAL into the main file, then scribble over its middle.
    let path = dir.path().join("smsgate.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    assert!(len > 16 * 4096, "{len}");
    for b in &mut bytes[4 * 4096..len - 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    match Store::open_async(config(dir.path())).await {
        Err(e) => {
            assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
            assert!(e.to_string().contains("smsgate.db"), "{e}");
        }
        Ok(store) => {
            let r = store.claim_due(MODEM, T0, 10).await;
            assert!(matches!(r, Err(StoreError::CorruptData { .. })), "{r:?}");
            store.close().await;
        }
    }
}

#[tokio::test]
async fn after_close_other_handles_get_a_clear_error() {
    let (dir, store) = fresh().await;
    let other = store.clone();
    store.close().await;
    assert!(matches!(other.stats().await, Err(StoreError::Closed)));
    // The owner lock is released: the store opens again at once.
    open(dir.path()).await.close().await;
}

// ------------------------------------------------ engine2: claiming, bindings

#[tokio::test]
async fn claim_next_message_claims_one_message_only() {
    let (_dir, store) = fresh().await;
    let a = store.enqueue(msg("+15551230000", 3), T0).await.unwrap();
    let b = store.enqueue(msg("+15551230001", 1), T0).await.unwrap();
    for id in [a.id, b.id] {
        assert!(store.bind(id, MODEM).await.unwrap());
    }
    let c = store.claim_next_message(MODEM, T0).await.unwrap();
    let shape: Vec<(MessageId, u32)> = c.iter().map(|p| (p.message, p.seq)).collect();
    assert_eq!(shape, vec![(a.id, 1), (a.id, 2), (a.id, 3)]);
    // Only that message is in flight: a crash now makes 3 parts maybe-sent,
    // not the whole backlog.
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.parts_sending, stats.parts_queued), (3, 1));
    // Nothing bound to another modem is taken.
    assert!(store
        .claim_next_message(OTHER, T0)
        .await
        .unwrap()
        .is_empty());
    let c = store.claim_next_message(MODEM, T0).await.unwrap();
    assert_eq!(c.iter().map(|p| p.message).collect::<Vec<_>>(), vec![b.id]);
    assert!(store
        .claim_next_message(MODEM, T0)
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

#[tokio::test]
async fn an_unknown_message_reference_never_matches_a_report() {
    let (_dir, store) = fresh().await;
    let q = store.enqueue(msg("+447700900123", 1), T0).await.unwrap();
    let c = store.claim_due(MODEM, T0, 10).await.unwrap();
    // The modem said OK without `+CMGS: <mr>`.
    store.mark_sent_ref(c[0].attempt, None, T0).await.unwrap();
    let st = store.outbound_status(q.id).await.unwrap();
    assert_eq!(st.state, MessageState::Sent);
    assert_eq!(st.parts[0].mr, None, "unknown, not 0");
    let r = store
        .record_status_report(report(0, "+447700900123", 0x00, T0 + 1_000))
        .await
        .unwrap();
    assert_eq!(
        r.part, None,
        "a report with MR 0 matched a part whose MR is unknown"
    );
    assert_eq!(
        store.outbound_status(q.id).await.unwrap().state,
        MessageState::Sent
    );
    store.close().await;
}

#[tokio::test]
async fn unbind_modem_frees_unstarted_work_and_fail_stranded_ends_partly_sent_work() {
    let (_dir, store) = fresh().await;
    let fresh_msg = store.enqueue(msg("+15551230000", 2), T0).await.unwrap();
    let partly = store.enqueue(msg("+15551230001", 3), T0).await.unwrap();
    let mut pinned = msg("+15551230002", 1);
    pinned.modem = Some(MODEM.into());
    let pinned = store.enqueue(pinned, T0).await.unwrap();
    // Part 1 of `partly` leaves, then the modem dies (parts 2 and 3 back
    // in the queue, still bound: they may not change SIM).
    assert!(store.bind(partly.id, MODEM).await.unwrap());
    let c = store.claim_next_message(MODEM, T0).await.unwrap();
    assert_eq!(c.len(), 3);
    store.mark_sent(c[0].attempt, 5, T0).await.unwrap();
    assert_eq!(store.release_modem(MODEM, T0).await.unwrap(), 2);
    for id in [fresh_msg.id, pinned.id] {
        assert!(store.bind(id, MODEM).await.unwrap());
    }

    assert_eq!(store.unbind_modem(MODEM).await.unwrap(), 1);
    let due: Vec<MessageId> = store
        .unbound_due(T0 + 60_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(due, vec![fresh_msg.id], "only the unstarted, unpinned one");

    assert_eq!(store.fail_stranded(MODEM, T0).await.unwrap(), 2);
    let st = store.outbound_status(partly.id).await.unwrap();
    assert_eq!(st.state, MessageState::Failed, "{st:?}");
    assert!(
        st.reason.unwrap_or_default().contains("did not come back"),
        "a clear reason"
    );
    assert_eq!(
        st.parts[0].state.as_str(),
        "sent",
        "the sent part stays sent"
    );
    // The pinned message keeps waiting for its modem.
    let st = store.outbound_status(pinned.id).await.unwrap();
    assert_eq!(st.state, MessageState::Queued);
    assert_eq!(st.modem.as_deref(), Some(MODEM));
    store.close().await;
}
