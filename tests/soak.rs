//! A seeded kill -9 soak of `smsgate run` against `smsgate sim`, with
//! traffic both ways: each round starts the daemon, sends through the bus
//! while inbound messages are injected into the simulated network, and
//! kills the daemon with SIGKILL at a random moment. A last run drains
//! everything, then the figures are reconciled:
//!
//! * every outbound message the bus acknowledged left the network's
//!   outbox at least once, and at most once more (a part in flight at the
//!   kill is requeued flagged maybe-sent; the modem may have sent it);
//! * every injected inbound message is stored exactly once (one inbound id
//!   per text, however often the modem re-reported it).
//!
//! `SMSGATE_SOAK_SEED` and `SMSGATE_SOAK_ROUNDS` change the run (defaults
//! 1 and 6: short enough for every CI run).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use rand::{Rng, SeedableRng};
use serde_json::json;

use common::daemon::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_9_soak_loses_nothing_and_duplicates_nothing_inbound() {
    let seed = env_u64("SMSGATE_SOAK_SEED", 1);
    let rounds = env_u64("SMSGATE_SOAK_ROUNDS", 6);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // A little latency per command widens the window in which a kill
    // lands mid-send.
    let sim = Sim::start(2, &["--seed", &seed.to_string(), "--latency", "40ms"]);
    let mut gate = Gate::new();
    gate.write_watching(
        &sim,
        "[retry]\nbackoff_min_secs = 1\nbackoff_max_secs = 2\n",
    );

    // Outbound texts the bus acknowledged, by message id.
    let accepted: Arc<Mutex<BTreeMap<i64, String>>> = Arc::default();
    let mut injected = Vec::new();
    let mut next_out = 0u64;
    for round in 0..rounds {
        gate.start(&[]);
        gate.wait_modems_ready(2);
        // A sender thread: sends until the socket dies under it.
        let socket = gate.socket();
        let burst = rng.gen_range(3..12u64);
        let first = next_out;
        next_out += burst;
        let acc = Arc::clone(&accepted);
        let sender = std::thread::spawn(move || {
            let mut c = match Client::connect(&socket) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("soak: cannot connect: {e}");
                    return;
                }
            };
            for n in first..first + burst {
                let text = format!("soak out {n}");
                let req = json!({"op": "send", "to": OUTSIDE, "text": text, "key": text});
                match c.try_request(req) {
                    Ok(r) if r["ok"] == true => {
                        if let Some(id) = r["message"].as_i64() {
                            acc.lock().unwrap().insert(id, text);
                        }
                    }
                    Ok(r) => {
                        eprintln!("soak: send refused: {r}");
                        return;
                    }
                    // The daemon was killed under us.
                    Err(e) => {
                        eprintln!("soak: send cut short: {e}");
                        return;
                    }
                }
            }
        });
        for _ in 0..rng.gen_range(1..4) {
            let text = format!("soak in {}", injected.len());
            let modem = rng.gen_range(0..2).to_string();
            sim.ctl(&[
                "inject", "--modem", &modem, "--from", OUTSIDE, "--text", &text,
            ]);
            injected.push(text);
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..600)));
        let st = gate.stop(Signal::SIGKILL);
        assert_eq!(st.code(), None, "round {round}: killed");
        sender.join().unwrap();
    }

    // The last run drains the queue and the SIMs.
    gate.start(&[]);
    gate.wait_modems_ready(2);
    let accepted = accepted.lock().unwrap().clone();
    // Without accepted sends the kill windows would test nothing outbound
    // (a daemon slow to answer its first `send` did exactly that once).
    assert!(
        !accepted.is_empty(),
        "no send was accepted in {rounds} rounds"
    );
    let mut c = gate.client();
    for id in accepted.keys() {
        wait_for(&format!("message {id} sent"), || {
            (c.state(*id) == "sent").then_some(())
        });
    }
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"], "since": 0}));
    assert_eq!(sub["ok"], true, "{sub}");
    // Inbound ids per text (events may repeat an id until it is acked).
    let mut inbound: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    while !injected.iter().all(|t| inbound.contains_key(t)) {
        let ev = events.read().expect("an inbound event before the timeout");
        if ev["event"] == "inbound" {
            let text = ev["text"].as_str().unwrap_or_default().to_string();
            inbound
                .entry(text)
                .or_default()
                .insert(ev["id"].as_i64().unwrap());
        }
    }

    let outbox = sim.outbox();
    let mut once = 0;
    let mut twice = 0;
    let mut more = 0;
    let mut extra = 0;
    for (id, text) in &accepted {
        let n = outbox.iter().filter(|m| m["text"] == text.as_str()).count();
        assert!(n >= 1, "{text} lost");
        // A copy leaves only on an attempt, and a part is attempted again
        // only when a kill caught it in flight (maybe-sent): a part caught
        // by k kills may leave up to k + 1 times, never more.
        let status = c.request(json!({"op": "status", "message": id}));
        let attempts = status["parts"][0]["attempts"].as_u64().unwrap_or(0) as usize;
        assert!(
            n <= attempts,
            "{text} left {n} times in {attempts} attempts: {status}"
        );
        extra += n - 1;
        match n {
            1 => once += 1,
            2 => twice += 1,
            _ => more += 1,
        }
    }
    for text in &injected {
        let ids = &inbound[text];
        assert_eq!(ids.len(), 1, "{text} stored as {ids:?}");
    }
    let stats = c.request(json!({"op": "stats"}));
    // Every extra copy is a part the store requeued as maybe-sent (a kill
    // caught it in flight): never more extra copies than such requeues.
    let maybe = stats["stats"]["maybe_sent_total"].as_u64().unwrap_or(0) as usize;
    assert!(
        extra <= maybe,
        "{extra} extra copies but only {maybe} maybe-sent requeues: {stats}"
    );
    println!(
        "soak seed {seed}: {rounds} kill -9 rounds; outbound accepted {}, left once {once}, \
         twice {twice}, more {more} (each copy an attempt after a kill in flight); inbound injected {}, stored once each {}; \
         outbox total {}; store stats {}",
        accepted.len(),
        injected.len(),
        inbound.len(),
        outbox.len(),
        stats["stats"]
    );
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}
