//! Privacy on a real store file: the opt-in flow (hold, join, release;
//! hold, expiry, deletion), STOP and sending, handles, retention with a
//! controlled clock, and forget — checking the database FILE's bytes.

use std::path::Path;

use smsgate::privacy::{
    ConsentState, Decision, Gate, HandleKey, Policy, PrivacyConfig, ReplyKind, RetentionConfig,
    DAY_MS, HOUR_MS,
};
use smsgate::store::*;

const T0: i64 = 1_700_000_000_000;
const MODEM: &str = "356938035643809";
const ALICE: &str = "+491711234567";
const BOB: &str = "+33612345678";

async fn setup(policy: Policy) -> (tempfile::TempDir, Store, Gate) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_async(StoreConfig::at(dir.path().join("smsgate.db")))
        .await
        .unwrap();
    let privacy = PrivacyConfig {
        policy,
        default_region: Some("DE".into()),
        allowlist: vec![BOB.into()],
        help_text: "Run by the Example Club (contact@example.org).".into(),
        ..PrivacyConfig::default()
    };
    let gate = Gate::open(
        &privacy,
        &RetentionConfig::default(),
        dir.path(),
        store.clone(),
    )
    .unwrap();
    (dir, store, gate)
}

/// Commits a one-part inbound SMS whose stand-in PDU carries the sender
/// and the text as plain bytes (so a byte search of the file finds them
/// wherever they were kept), and returns the completed message.
async fn receive(store: &Store, sender: &str, text: &str, at: i64) -> InboundMessage {
    let mut pdu = sender.as_bytes().to_vec();
    pdu.extend_from_slice(&at.to_be_bytes());
    pdu.extend_from_slice(text.as_bytes());
    let commit = store
        .commit_inbound(InboundPart {
            modem: MODEM.into(),
            sim: Some("8944100000000000001".into()),
            sender: sender.into(),
            scts_ms: at,
            concat: None,
            body: InboundBody::Text(text.into()),
            pdu,
            storage_index: Some(1),
            received_ms: at,
        })
        .await
        .unwrap();
    store.inbound(commit.completed.unwrap()).await.unwrap()
}

async fn send(store: &Store, to: &str, text: &str, at: i64) -> MessageId {
    let mut payload = to.as_bytes().to_vec();
    payload.extend_from_slice(text.as_bytes());
    store
        .enqueue(
            NewOutbound {
                recipient: to.into(),
                text: Some(text.into()),
                parts: vec![payload],
                ..Default::default()
            },
            at,
        )
        .await
        .unwrap()
        .id
}

/// Whether `needle` occurs in the database file or its WAL.
fn in_files(dir: &Path, needle: &str) -> bool {
    ["smsgate.db", "smsgate.db-wal"].iter().any(|name| {
        std::fs::read(dir.join(name))
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

async fn inbound_events(store: &Store, after: u64) -> Vec<InboundId> {
    store
        .events_since(after, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::InboundComplete { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn opt_in_holds_a_stranger_explains_once_and_releases_on_join() {
    let (_dir, store, gate) = setup(Policy::OptIn).await;
    let m1 = receive(&store, ALICE, "hello there", T0).await;
    let out = gate.on_inbound(&m1, T0).await.unwrap();
    assert!(!out.relay);
    assert_eq!(out.reply.as_ref().unwrap().kind, ReplyKind::Explain);
    assert!(out.handle.starts_with("sms:"));
    assert!(store.is_held(m1.id).await.unwrap());

    // A second message an hour later: held too, no second explanation.
    let m2 = receive(&store, "0171 1234567", "are you there?", T0 + HOUR_MS).await;
    let out = gate.on_inbound(&m2, T0 + HOUR_MS).await.unwrap();
    assert!(!out.relay && out.reply.is_none(), "{out:?}");
    assert_eq!(out.number, ALICE, "national spelling is the same person");
    assert_eq!(store.held_for(ALICE).await.unwrap(), vec![m1.id, m2.id]);

    let join = receive(&store, ALICE, " join ", T0 + 2 * HOUR_MS).await;
    let cursor = store.subscribe().borrow().to_owned();
    let out = gate.on_inbound(&join, T0 + 2 * HOUR_MS).await.unwrap();
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Joined);
    assert_eq!(out.released, vec![m1.id, m2.id]);
    // The release reaches the bus as fresh inbound events, in order.
    assert_eq!(inbound_events(&store, cursor).await, vec![m1.id, m2.id]);
    assert!(!store.is_held(m1.id).await.unwrap());
    // The bus shows each only at its release entry, never at the entry of
    // its arrival (decided as held): a subscriber reading that old entry
    // late would otherwise see m2 before m1, and each twice.
    let all = store.events_since(0, 1000).await.unwrap();
    let entries = |id: InboundId| -> Vec<u64> {
        all.iter()
            .filter(
                |e| matches!(e.kind, EventKind::InboundComplete { message, .. } if message == id),
            )
            .map(|e| e.cursor)
            .collect()
    };
    for id in [m1.id, m2.id] {
        let at = entries(id);
        assert_eq!(at.len(), 2, "arrival and release: {at:?}");
        assert!(!store.showable(id, Some(at[0])).await.unwrap());
        assert!(store.showable(id, Some(at[1])).await.unwrap());
        assert!(store.showable(id, None).await.unwrap(), "unacked replay");
    }
    // The keyword message itself is not kept.
    assert!(store.inbound(join.id).await.is_err());
    let record = store.consent(ALICE).await.unwrap().unwrap();
    assert_eq!(record.state, ConsentState::Joined);
    assert_eq!(record.keyword.as_deref(), Some("join"));
    assert_eq!(record.modem.as_deref(), Some(MODEM));
    assert_eq!(record.since_ms, T0 + 2 * HOUR_MS);

    // From now on relayed directly.
    let m3 = receive(&store, ALICE, "thanks", T0 + 3 * HOUR_MS).await;
    assert!(gate.on_inbound(&m3, T0 + 3 * HOUR_MS).await.unwrap().relay);
    let admins = store.consent_records("", 100).await.unwrap();
    assert_eq!(admins.len(), 1);
}

#[tokio::test]
async fn held_messages_are_deleted_when_the_hold_ends_and_gone_from_the_file() {
    let (dir, store, gate) = setup(Policy::OptIn).await;
    let m = receive(&store, ALICE, "HELD-NEEDLE-8812 never joined", T0).await;
    gate.on_inbound(&m, T0).await.unwrap();
    store.compact().await.unwrap();
    assert!(in_files(dir.path(), "HELD-NEEDLE-8812"));

    // Before the end of the hold nothing goes.
    let r = gate.purge(T0 + 71 * HOUR_MS).await.unwrap();
    assert_eq!(r.held_deleted, 0);
    let r = gate.purge(T0 + 72 * HOUR_MS).await.unwrap();
    assert_eq!(r.held_deleted, 1);
    assert!(store.inbound(m.id).await.is_err());
    assert!(!in_files(dir.path(), "HELD-NEEDLE-8812"));
    // The pending record goes once it no longer rate-limits anything.
    assert!(store.consent(ALICE).await.unwrap().is_some());
    let r = gate.purge(T0 + 73 * HOUR_MS).await.unwrap();
    assert_eq!(r.pending_deleted, 1);
    assert!(store.consent(ALICE).await.unwrap().is_none());
}

#[tokio::test]
async fn stop_refuses_sends_deletes_held_and_start_reverses_it() {
    let (dir, store, gate) = setup(Policy::OptIn).await;
    let target = gate.check_send(ALICE, T0).await.unwrap();
    assert_eq!(target.number, ALICE);

    let held = receive(&store, ALICE, "STOP-HELD-NEEDLE-5", T0).await;
    gate.on_inbound(&held, T0).await.unwrap();
    let stop = receive(&store, ALICE, "Stop", T0 + 1).await;
    let out = gate.on_inbound(&stop, T0 + 1).await.unwrap();
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Stopped);
    assert!(
        store.inbound(held.id).await.is_err(),
        "held messages go on STOP"
    );
    store.compact().await.unwrap();
    assert!(!in_files(dir.path(), "STOP-HELD-NEEDLE-5"));

    for to in [ALICE, "0171 1234567", target.handle.as_str()] {
        let e = gate.check_send(to, T0 + 2).await.unwrap_err();
        assert_eq!(e.code(), "opted_out", "{to}");
        assert!(!e.to_string().contains("1711234567"), "{e}");
    }
    // A stopped sender's text is not relayed.
    let m = receive(&store, ALICE, "hi again", T0 + 3).await;
    assert!(!gate.on_inbound(&m, T0 + 3).await.unwrap().relay);

    let start = receive(&store, ALICE, "START", T0 + 4).await;
    let out = gate.on_inbound(&start, T0 + 4).await.unwrap();
    assert_eq!(out.released, vec![m.id]);
    assert!(gate.check_send(&target.handle, T0 + 5).await.is_ok());
    assert_eq!(gate.state(ALICE).await.unwrap(), Some(ConsentState::Joined));
}

#[tokio::test]
async fn help_reply_tells_who_and_what_is_stored() {
    let (_dir, store, gate) = setup(Policy::OptIn).await;
    let m = receive(&store, ALICE, "INFO", T0).await;
    let out = gate.on_inbound(&m, T0).await.unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Help);
    assert!(
        reply.text.starts_with("Run by the Example Club"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("30 days") && reply.text.contains("365 days"));
    assert!(reply.text.contains("STOP") && reply.text.contains("JOIN"));
    assert!(!out.relay);
    assert!(
        store.consent(ALICE).await.unwrap().is_none(),
        "help changes nothing"
    );
}

#[tokio::test]
async fn open_and_allowlist_policies() {
    let (_dir, store, gate) = setup(Policy::Open).await;
    let m = receive(&store, ALICE, "hi", T0).await;
    assert!(gate.on_inbound(&m, T0).await.unwrap().relay);
    let alpha = receive(&store, "Vodafone", "your balance", T0).await;
    assert!(gate.on_inbound(&alpha, T0).await.unwrap().relay);

    let (_dir, store, gate) = setup(Policy::Allowlist).await;
    let m = receive(&store, ALICE, "hi", T0).await;
    let out = gate.on_inbound(&m, T0).await.unwrap();
    assert!(!out.relay && out.reply.is_none());
    assert!(matches!(out.decision, Decision::Drop { .. }));
    assert!(
        store.inbound(m.id).await.is_err(),
        "refused messages are not kept"
    );
    let listed = receive(&store, BOB, "bonjour", T0).await;
    assert!(gate.on_inbound(&listed, T0).await.unwrap().relay);
    // STOP works for anyone.
    let stop = receive(&store, ALICE, "stop", T0).await;
    assert!(gate.on_inbound(&stop, T0).await.unwrap().reply.is_some());
    assert_eq!(
        gate.check_send(ALICE, T0).await.unwrap_err().code(),
        "opted_out"
    );
}

#[tokio::test]
async fn handles_map_back_to_numbers_for_sends() {
    let (dir, store, gate) = setup(Policy::OptIn).await;
    let m = receive(&store, ALICE, "hi", T0).await;
    let out = gate.on_inbound(&m, T0).await.unwrap();
    assert_eq!(gate.show(ALICE, false), out.handle);
    assert_eq!(gate.show(ALICE, true), ALICE);
    assert_eq!(
        gate.handles()
            .resolve(&out.handle)
            .await
            .unwrap()
            .as_deref(),
        Some(ALICE)
    );
    let target = gate.check_send(&out.handle, T0).await.unwrap();
    assert_eq!(target.number, ALICE);
    assert_eq!(
        gate.check_send("sms:aaaaaaaaaaaaaaaa", T0)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert_eq!(
        gate.check_send("sms:nope", T0).await.unwrap_err().code(),
        "invalid_number"
    );
    assert_eq!(
        gate.check_send("hello", T0).await.unwrap_err().code(),
        "invalid_number"
    );

    // The secret was created private, and a restart keeps every handle.
    let key = dir.path().join("handle.key");
    let mode = std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(&key).unwrap());
    assert_eq!(mode & 0o777, 0o600);
    let again = HandleKey::load_or_create(&key).unwrap();
    assert_eq!(again.handle(ALICE), out.handle);
}

#[tokio::test]
async fn retention_purges_text_then_metadata_and_the_bytes_leave_the_file() {
    let (dir, store, gate) = setup(Policy::Open).await;
    let old_in = receive(&store, ALICE, "INBOUND-TEXT-NEEDLE-1", T0).await;
    assert!(gate.on_inbound(&old_in, T0).await.unwrap().relay);
    let out = send(&store, ALICE, "OUTBOUND-TEXT-NEEDLE-2", T0).await;
    let claimed = store.claim_due(MODEM, T0, 10).await.unwrap();
    store.mark_sent(claimed[0].attempt, 7, T0).await.unwrap();
    let fresh = receive(&store, BOB, "FRESH-TEXT-NEEDLE-3", T0 + 20 * DAY_MS).await;
    store.compact().await.unwrap();
    for n in [
        "INBOUND-TEXT-NEEDLE-1",
        "OUTBOUND-TEXT-NEEDLE-2",
        "FRESH-TEXT-NEEDLE-3",
    ] {
        assert!(in_files(dir.path(), n), "{n} is there before the purge");
    }

    // Day 31: texts older than 30 days go; the rows stay as metadata.
    let r = gate.purge(T0 + 31 * DAY_MS).await.unwrap();
    assert_eq!(
        (r.inbound_text_purged, r.outbound_text_purged),
        (1, 1),
        "{r:?}"
    );
    assert!(!in_files(dir.path(), "INBOUND-TEXT-NEEDLE-1"));
    assert!(!in_files(dir.path(), "OUTBOUND-TEXT-NEEDLE-2"));
    assert!(in_files(dir.path(), "FRESH-TEXT-NEEDLE-3"));
    let kept = store.inbound(old_in.id).await.unwrap();
    assert_eq!((kept.text, kept.sender.as_str()), (None, ALICE));
    let status = store.outbound_status(out).await.unwrap();
    assert_eq!(status.text, None);
    assert_eq!(
        store.inbound(fresh.id).await.unwrap().text.as_deref(),
        Some("FRESH-TEXT-NEEDLE-3")
    );
    // Running again finds nothing more to do.
    assert_eq!(gate.purge(T0 + 31 * DAY_MS).await.unwrap().total(), 0);

    // Day 366: the metadata goes too, and with it the number.
    let r = gate.purge(T0 + 366 * DAY_MS).await.unwrap();
    assert_eq!((r.inbound_deleted, r.outbound_deleted), (1, 1), "{r:?}");
    assert!(store.inbound(old_in.id).await.is_err());
    assert!(store.outbound_status(out).await.is_err());
    assert_eq!(
        r.handles_deleted, 1,
        "ALICE's handle mapping went with her last message"
    );
    assert!(!in_files(dir.path(), "1711234567"));
}

#[tokio::test]
async fn forget_erases_a_person_from_the_file_and_audits_only_the_handle() {
    let (dir, store, gate) = setup(Policy::OptIn).await;
    let join = receive(&store, ALICE, "JOIN", T0).await;
    let handle = gate.on_inbound(&join, T0).await.unwrap().handle;
    let m = receive(&store, ALICE, "FORGET-ME-NEEDLE-7", T0 + 1).await;
    assert!(gate.on_inbound(&m, T0 + 1).await.unwrap().relay);
    send(&store, &handle, "REPLY-NEEDLE-9 to a handle", T0 + 2).await;
    send(&store, ALICE, "REPLY-NEEDLE-10 to the number", T0 + 3).await;
    store
        .record_status_report(StatusReport {
            modem: MODEM.into(),
            mr: 1,
            recipient: "491711234567".into(),
            scts_ms: Some(T0),
            discharge_ms: Some(T0),
            status: 0,
            pdu: b"report about 491711234567".to_vec(),
            received_ms: T0 + 4,
        })
        .await
        .unwrap();
    // Someone else's messages stay.
    let bob = receive(&store, BOB, "BOB-STAYS-NEEDLE", T0).await;
    store.compact().await.unwrap();
    assert!(in_files(dir.path(), "1711234567"));
    assert!(in_files(dir.path(), "FORGET-ME-NEEDLE-7"));

    let forgotten = gate.forget(&handle, T0 + 10).await.unwrap();
    assert_eq!(forgotten.number.as_deref(), Some(ALICE));
    let report = forgotten.erased;
    assert_eq!((report.inbound, report.outbound), (1, 2), "{report:?}");
    assert_eq!((report.consent, report.handles, report.reports), (1, 1, 1));
    for needle in [
        "1711234567",
        "FORGET-ME-NEEDLE-7",
        "REPLY-NEEDLE-9",
        "REPLY-NEEDLE-10",
    ] {
        assert!(!in_files(dir.path(), needle), "{needle} left in the file");
    }
    assert!(in_files(dir.path(), "BOB-STAYS-NEEDLE"));
    assert!(store.inbound(bob.id).await.is_ok());
    assert_eq!(
        store.forget_audit(10).await.unwrap(),
        vec![(handle.clone(), T0 + 10)]
    );
    assert!(gate.handles().resolve(&handle).await.unwrap().is_none());
    // Forgetting by number works too (nothing left: only the audit grows).
    let again = gate.forget("0171 1234567", T0 + 11).await.unwrap();
    assert_eq!(again.erased, ForgetReport::default());
    assert_eq!(again.handle, handle);
    assert_eq!(store.forget_audit(10).await.unwrap().len(), 2);
    assert!(gate.forget("not a number", T0).await.is_err());
}

#[tokio::test]
async fn store_keeps_serving_around_compaction() {
    let (_dir, store, _gate) = setup(Policy::Open).await;
    let mut tasks = Vec::new();
    for i in 0..20i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 5 == 0 {
                s.compact().await.map(|_| ())
            } else {
                s.record_handle(format!("sms:{i:0>16}"), format!("+4917100000{i:02}"), T0)
                    .await
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    store.clone().close().await;
    assert!(
        store.compact().await.is_err(),
        "a closed store refuses cleanly"
    );
}

#[tokio::test]
async fn privacy_queries_use_indexes() {
    let (dir, store, _gate) = setup(Policy::OptIn).await;
    store.close().await;
    let conn = rusqlite::Connection::open(dir.path().join("smsgate.db")).unwrap();
    // The lookups of on_inbound/check_send, and the purge and forget
    // selections: each must search an index, never scan a table.
    let queries = [
        "SELECT * FROM consent WHERE number = '+1'",
        "SELECT number FROM handles WHERE handle = 'sms:x'",
        "SELECT message FROM held WHERE number = '+1' ORDER BY message",
        "SELECT message FROM held WHERE until_ms <= 5 ORDER BY until_ms LIMIT 10",
        "SELECT 1 FROM held WHERE message = 1",
        "SELECT id FROM in_messages WHERE completed_ms < 5 ORDER BY completed_ms LIMIT 10",
        "SELECT id FROM in_messages WHERE sender IN ('+1', '1', 'sms:x')",
        "SELECT id FROM out_messages WHERE recipient IN ('+1', '1', 'sms:x')",
        "SELECT id FROM out_messages WHERE updated_ms < 5 AND state IN ('sent') ORDER BY updated_ms LIMIT 10",
        "SELECT id FROM status_reports WHERE received_ms < 5 LIMIT 10",
        "SELECT handle FROM handles WHERE last_seen_ms < 5 LIMIT 10",
        "SELECT number FROM consent WHERE state = 'pending' AND explained_ms < 5 LIMIT 10",
        "DELETE FROM in_parts WHERE message_id = 1",
    ];
    for q in queries {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {q}")).unwrap();
        let plan: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let plan = plan.join(" | ");
        assert!(!plan.contains("SCAN"), "{q}\n  -> {plan}");
    }
}

mod properties {
    use proptest::prelude::*;
    use smsgate::privacy::{
        handle::is_handle, mask, normalize, HandleKey, Keywords, PrivacyConfig, Region,
    };

    proptest! {
        /// Whatever a client or a modem hands over: no panic, a masked
        /// number shows at most four digits, a valid number normalises to
        /// `+` and at most 15 digits (ITU-T E.164), idempotently.
        #[test]
        fn any_input_is_safe(input in ".{0,80}", digits in "[0-9 ()+-]{0,24}") {
            let de = Region::parse(Some("DE")).unwrap();
            let k = Keywords::from_config(&PrivacyConfig::default()).unwrap();
            for s in [input.as_str(), digits.as_str()] {
                let _ = k.classify(s);
                let _ = is_handle(s);
                if !s.starts_with("sms:") {
                    prop_assert!(mask(s).chars().filter(char::is_ascii_digit).count() <= 4);
                }
                if let Ok(e164) = normalize(s, de) {
                    prop_assert!(e164.starts_with('+'));
                    prop_assert!(e164.len() <= 16 && e164[1..].bytes().all(|b| b.is_ascii_digit()));
                    prop_assert_eq!(normalize(&e164, Region::NONE).unwrap(), e164.clone());
                    let h = HandleKey::from_bytes([3; 32]).handle(&e164);
                    prop_assert!(is_handle(&h));
                }
            }
        }
    }

    #[test]
    fn privacy_config_from_toml() {
        let c: PrivacyConfig = toml::from_str(
            r#"policy = "allowlist"
               default_region = "FR"
               allowlist = ["06 12 34 56 78"]
               hold_hours = 12
               see_numbers_groups = ["admin"]"#,
        )
        .unwrap();
        assert_eq!(c.policy, smsgate::privacy::Policy::Allowlist);
        assert!(c.validate().is_ok());
        assert_eq!(c.stop_keywords, PrivacyConfig::default().stop_keywords);
        for bad in [
            r#"policy = "closed""#,
            r#"polcy = "open""#,
            r#"hold_hours = -1"#,
        ] {
            assert!(toml::from_str::<PrivacyConfig>(bad).is_err(), "{bad}");
        }
        let unknown_region: PrivacyConfig = toml::from_str(r#"default_region = "XX""#).unwrap();
        assert!(unknown_region
            .validate()
            .unwrap_err()
            .to_string()
            .contains("privacy.default_region"));
        let bad_allow: PrivacyConfig = toml::from_str(r#"allowlist = ["hello"]"#).unwrap();
        assert!(bad_allow
            .validate()
            .unwrap_err()
            .to_string()
            .contains("privacy.allowlist"));
        let zero: PrivacyConfig = toml::from_str("hold_hours = 0").unwrap();
        assert!(zero.validate().is_err());
    }
}

#[tokio::test]
async fn consent_records_page_by_handle_and_find_one_person() {
    use smsgate::privacy::ConsentQuery;
    let (_dir, store, gate) = setup(Policy::OptIn).await;
    // Three people: joined, stopped, told how to join (pending); one of
    // them with a number the numbering plan does not know.
    let test_number = "+15550100123";
    for (who, text) in [(ALICE, "JOIN"), (BOB, "STOP"), (test_number, "hello")] {
        let m = receive(&store, who, text, T0).await;
        gate.on_inbound(&m, T0).await.unwrap();
    }
    let key = |n: &str| gate.handles().key().handle(n);
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = gate
            .consent_records(&ConsentQuery {
                limit: 2,
                after: after.clone(),
                ..ConsentQuery::default()
            })
            .await
            .unwrap();
        assert!(page.records.len() <= 2);
        all.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let handles: Vec<&str> = all.iter().map(|r| r.handle.as_str()).collect();
    let mut sorted = handles.clone();
    sorted.sort();
    assert_eq!(handles, sorted, "handle order");
    assert_eq!(all.len(), 3);
    let state = |n: &str| {
        all.iter()
            .find(|r| r.number == n)
            .map(|r| r.state.clone())
            .unwrap()
    };
    assert_eq!(state(ALICE), ConsentState::Joined);
    assert_eq!(state(BOB), ConsentState::Stopped);
    assert_eq!(state(test_number), ConsentState::Pending);

    // One person, by any spelling of the number or by handle.
    for who in ["0171 1234567", ALICE, &key(ALICE)] {
        let page = gate
            .consent_records(&ConsentQuery {
                who: Some(who.to_owned()),
                ..ConsentQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.records.len(), 1, "{who}");
        assert_eq!(page.records[0].number, ALICE);
        assert_eq!(page.next, None);
    }
    let nobody = ConsentQuery {
        who: Some("+4930123456".into()),
        ..ConsentQuery::default()
    };
    assert!(gate
        .consent_records(&nobody)
        .await
        .unwrap()
        .records
        .is_empty());
    let bad = ConsentQuery {
        who: Some("sms:not-a-handle".into()),
        ..ConsentQuery::default()
    };
    assert!(gate.consent_records(&bad).await.is_err());
}
