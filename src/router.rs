//! Choosing the modem that sends each outbound message.
//!
//! Pure: no I/O, no async, no clock. The engine passes the candidates (the
//! modems it knows, with their state and load) and the time in unix ms, and
//! tells the router what was sent ([`Router::record_sent`]); at start it
//! replays [`Store::route_history`](crate::store::Store::route_history) (a
//! bounded summary, not every message) into [`Router::restore`].
//!
//! Order of the rules (see `docs/router.md`):
//!
//! 1. an explicit pin (modem name, IMEI or ICCID) decides alone;
//! 2. sticky per peer: the modem that last sent to the recipient (within
//!    `sticky_days`) sends again, so replies come from the number the
//!    recipient already knows;
//! 3. prefix rules: the longest matching prefix restricts the choice to its
//!    modems;
//! 4. the least-loaded ready candidate (ties: fewer parts sent today, then
//!    modem id).
//!
//! Per-SIM limits (per minute, per UTC day, unique recipients per calendar
//! month, jitter between sends) skip a candidate that is over a limit; when
//! every candidate is, the answer is [`Choice::Wait`] with the earliest
//! time one frees up. Limits count SMS parts: each part is one SMS-SUBMIT
//! (TS 23.040 §9.2.2.2) the operator counts.
//!
//! Work bound to a modem and not sent yet counts too, or a backlog bound
//! in one dispatch round would leave all at once: the parts bound or in
//! flight ([`Candidate::load`], read from the store every round) count
//! against the per-minute and per-day limits as if sent now, a SIM with
//! `jitter_ms` takes the next message only once the last one left, and
//! [`Router::hold`] (at bind time) counts the recipient of the month and
//! makes the sticky choice before the first part leaves.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::store::RouteHistory;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

/// How long to wait before asking again when no candidate is ready (the
/// engine also wakes on every modem state change).
pub const NOT_READY_RETRY_MS: i64 = 5_000;

/// The pause before a message goes back to a modem that failed it, when no
/// other modem can take it.
pub const EXCLUDED_PAUSE_MS: i64 = 2_000;

/// Send times kept per SIM for the per-minute window: a per-minute limit
/// above this cannot be enforced (no modem sends that fast).
pub const MAX_MINUTE_WINDOW: usize = 4096;

/// Recipients remembered per SIM and month; beyond this every new recipient
/// counts as already seen (the limit, if any, is lower).
pub const MAX_RECIPIENTS_PER_SIM: usize = 200_000;

/// Sticky recipients remembered; the oldest are forgotten first.
pub const MAX_STICKY: usize = 200_000;

/// Messages waiting out [`EXCLUDED_PAUSE_MS`] remembered at once.
const MAX_PAUSES: usize = 10_000;

/// Bound messages whose recipient and sticky choice the router holds
/// ([`Router::hold`]); beyond this a binding is not held (its parts still
/// count through the modem's load).
pub const MAX_HELD: usize = 200_000;

/// `[routing]`: how messages are spread over modems.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Send to a recipient through the modem that last sent to them.
    pub sticky: bool,
    /// How long a sticky choice lasts after the last message, in days.
    pub sticky_days: u32,
    /// `[[routing.rule]]`: prefix rules, longest matching prefix wins.
    pub rule: Vec<PrefixRule>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            sticky: true,
            sticky_days: 30,
            rule: Vec::new(),
        }
    }
}

impl RoutingConfig {
    /// Checks what the TOML types cannot: each rule's prefix is a number
    /// prefix and lists at least one modem. The error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.rule.iter().enumerate() {
            let prefix = r.prefix.trim();
            let bad = prefix.chars().enumerate().any(|(k, ch)| {
                !(ch.is_ascii_digit() || " -().".contains(ch) || (ch == '+' && k == 0))
            });
            if bad {
                return Err(format!(
                    "routing.rule[{i}].prefix {prefix:?}: only digits, a leading '+', spaces and dashes"
                ));
            }
            if r.modems.is_empty() || r.modems.iter().any(|m| m.trim().is_empty()) {
                return Err(format!(
                    "routing.rule[{i}].modems: list at least one modem name, IMEI or ICCID"
                ));
            }
        }
        Ok(())
    }
}

/// One `[[routing.rule]]`: recipients starting with `prefix` go out through
/// one of `modems`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixRule {
    /// `+49`, `0049` (the same) or national digits like `0151`; spaces and
    /// dashes are ignored. An empty prefix matches every recipient.
    pub prefix: String,
    /// Modem names, IMEIs or ICCIDs.
    pub modems: Vec<String>,
}

/// Limits for one SIM (`[limits]` defaults, `[limits.sim."<key>"]`
/// overrides field by field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// SMS parts per sliding minute.
    pub per_minute: Option<u32>,
    /// SMS parts per UTC day.
    pub per_day: Option<u32>,
    /// Different recipients per UTC calendar month.
    pub recipients_per_month: Option<u32>,
    /// Pause between two sends of the SIM, uniformly random in `[a, b]` ms.
    pub jitter_ms: Option<[u64; 2]>,
}

impl Limits {
    /// These limits with unset fields taken from `fallback`.
    fn or(&self, fallback: &Limits) -> Limits {
        Limits {
            per_minute: self.per_minute.or(fallback.per_minute),
            per_day: self.per_day.or(fallback.per_day),
            recipients_per_month: self.recipients_per_month.or(fallback.recipients_per_month),
            jitter_ms: self.jitter_ms.or(fallback.jitter_ms),
        }
    }
}

/// `[limits]` and `[limits.sim."<key>"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Limits of every SIM without its own entry.
    #[serde(flatten)]
    pub default: Limits,
    /// Per SIM, keyed by ICCID, modem IMEI or modem name (tried in that
    /// order).
    pub sim: BTreeMap<String, Limits>,
}

impl LimitsConfig {
    /// Checks what the TOML types cannot: `jitter_ms = [a, b]` needs
    /// `a <= b`. The error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let check = |key: String, l: &Limits| match l.jitter_ms {
            Some([a, b]) if a > b => Err(format!(
                "{key}.jitter_ms [{a}, {b}]: the first must not exceed the second"
            )),
            _ => Ok(()),
        };
        check("limits".into(), &self.default)?;
        for (k, l) in &self.sim {
            check(format!("limits.sim.{k:?}"), l)?;
        }
        Ok(())
    }
}

/// A modem the router may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Modem id (normally the IMEI).
    pub id: String,
    /// Configured or derived name.
    pub name: String,
    /// The SIM's ICCID, when known.
    pub iccid: Option<String>,
    /// Registered and able to send now.
    pub ready: bool,
    /// Parts bound to it or in flight (the store's count, plus what the
    /// current dispatch round bound): they count against its SIM's
    /// per-minute and per-day limits as if sent now.
    pub load: u64,
}

/// One message to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest<'a> {
    /// The message id.
    pub message: i64,
    /// Destination number as the client gave it.
    pub recipient: &'a str,
    /// The modem the client pinned it to (name, IMEI or ICCID).
    pub pinned: Option<&'a str>,
    /// Parts to send.
    pub parts: u32,
    /// Modems that failed this message temporarily (failover).
    pub exclude: &'a [String],
}

/// The router's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Bind the message to this modem id.
    Modem(String),
    /// Ask again at `until_ms` (unix ms), or when a modem changes state.
    Wait {
        /// Earliest time a candidate may be free.
        until_ms: i64,
        /// Why, naming the limit or the state.
        reason: String,
    },
    /// The message can never be routed (pinned to an unknown modem).
    Reject(String),
}

/// Per-SIM counters: sliding minute, UTC day, calendar month, jitter.
#[derive(Debug, Default)]
struct SimCounters {
    /// Send times within the last minute (and maybe older ones not yet
    /// pruned), oldest first.
    minute: VecDeque<i64>,
    /// UTC day number of `day_count`.
    day: i64,
    day_count: u64,
    /// Month number (`year * 12 + month - 1`) of `recipients`.
    month: i64,
    /// Hashes of the normalised recipients seen in `month`.
    recipients: HashSet<u64>,
    /// The last send, for jitter.
    last_sent_ms: Option<i64>,
    /// Where in the jitter range the gap after the last send lies (0..1),
    /// drawn when it was recorded.
    jitter_at: f64,
}

impl SimCounters {
    fn add_minute(&mut self, at: i64) {
        // Kept sorted: history may arrive in any order.
        let pos = self.minute.partition_point(|&t| t <= at);
        self.minute.insert(pos, at);
        while self.minute.len() > MAX_MINUTE_WINDOW {
            self.minute.pop_front();
        }
    }

    fn add_day(&mut self, day: i64, count: u64) {
        if day > self.day || self.day_count == 0 {
            self.day = day;
            self.day_count = count;
        } else if day == self.day {
            self.day_count = self.day_count.saturating_add(count);
        }
    }

    fn add_recipient(&mut self, month: i64, recipient: u64) {
        if month > self.month || self.recipients.is_empty() {
            if month != self.month {
                self.recipients.clear();
            }
            self.month = month;
        } else if month < self.month {
            return;
        }
        if self.recipients.len() < MAX_RECIPIENTS_PER_SIM {
            self.recipients.insert(recipient);
        }
    }

    /// A send restored from history: the jitter gap after it is taken at
    /// its start (no draw was recorded).
    fn note_last(&mut self, at: i64) {
        if self.last_sent_ms.map_or(true, |t| t < at) {
            self.last_sent_ms = Some(at);
            self.jitter_at = 0.0;
        }
    }

    fn sent_on(&self, day: i64) -> u64 {
        if self.day == day {
            self.day_count
        } else {
            0
        }
    }
}

/// What binding messages to one recipient on one SIM changed in the
/// router before any part left: undone when the last of them is released
/// unsent.
#[derive(Debug)]
struct PeerHold {
    modem: String,
    /// The held messages (ids).
    messages: HashSet<i64>,
    /// The month binding added the recipient to the SIM's recipients of
    /// the month (nothing sent to them in it yet).
    new_recipient: Option<i64>,
    /// The sticky choice binding replaced (`None` inside: there was none).
    sticky_before: Option<Option<(String, i64)>>,
}

/// Chooses modems; keeps the per-SIM counters and sticky choices in memory
/// (bounded), rebuilt from the store at start.
#[derive(Debug)]
pub struct Router {
    routing: RoutingConfig,
    limits: LimitsConfig,
    /// `routing.rule` normalised, longest prefix first.
    rules: Vec<Rule>,
    sims: HashMap<String, SimCounters>,
    /// Normalised recipient hash -> (modem id, last send).
    sticky: HashMap<u64, (String, i64)>,
    /// Message -> when it may go back to a modem that failed it.
    pauses: HashMap<i64, i64>,
    /// (SIM, recipient hash) -> bound messages not (fully) sent.
    holds: HashMap<(String, u64), PeerHold>,
    /// Message -> its key in `holds`.
    held: HashMap<i64, (String, u64)>,
    rng: StdRng,
}

#[derive(Debug, Clone)]
struct Rule {
    prefix: Number,
    /// The prefix as configured, for reasons.
    text: String,
    modems: Vec<String>,
}

/// A number reduced to its digits, remembering whether it was international
/// (`+` or `00`, TS 23.040 §9.1.2.5 type of number).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Number {
    international: bool,
    digits: String,
}

impl Number {
    fn parse(text: &str) -> Number {
        let text = text.trim();
        let plus = text.starts_with('+');
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        match digits.strip_prefix("00") {
            Some(rest) if !plus => Number {
                international: true,
                digits: rest.to_owned(),
            },
            _ => Number {
                international: plus,
                digits,
            },
        }
    }

    /// Whether this number starts with `prefix`. An international prefix
    /// matches international numbers only; a prefix without `+` matches
    /// the digits of any number.
    fn starts_with(&self, prefix: &Number) -> bool {
        (!prefix.international || self.international) && self.digits.starts_with(&prefix.digits)
    }

    fn key(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

fn recipient_key(recipient: &str) -> u64 {
    Number::parse(recipient).key()
}

fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Month number `year * 12 + month - 1` of a unix ms time (UTC).
fn month_of(ms: i64) -> i64 {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1,
        // Out of the calendar's range: one bucket per 31 days keeps the
        // counters sane.
        Err(_) => ms.div_euclid(31 * DAY_MS),
    }
}

/// Start of the UTC month after the one `ms` lies in (unix ms).
fn next_month_ms(ms: i64) -> i64 {
    let month = month_of(ms) + 1;
    let (year, m) = (month.div_euclid(12), month.rem_euclid(12) + 1);
    let date = i32::try_from(year)
        .ok()
        .zip(
            u8::try_from(m)
                .ok()
                .and_then(|m| time::Month::try_from(m).ok()),
        )
        .and_then(|(y, m)| time::Date::from_calendar_date(y, m, 1).ok());
    match date {
        Some(d) => d
            .midnight()
            .assume_utc()
            .unix_timestamp()
            .saturating_mul(1000),
        None => ms.saturating_add(DAY_MS),
    }
}

fn sim_key(modem_id: &str, iccid: Option<&str>) -> String {
    iccid
        .filter(|i| !i.is_empty())
        .unwrap_or(modem_id)
        .to_owned()
}

/// Why a candidate cannot send now and when it can again.
struct Blocked {
    until_ms: i64,
    reason: String,
}

impl Router {
    /// A router with an entropy-seeded RNG (for the jitter).
    pub fn new(routing: RoutingConfig, limits: LimitsConfig) -> Router {
        Router::build(routing, limits, StdRng::from_entropy())
    }

    /// A router whose jitter is reproducible (tests).
    pub fn with_seed(routing: RoutingConfig, limits: LimitsConfig, seed: u64) -> Router {
        Router::build(routing, limits, StdRng::seed_from_u64(seed))
    }

    fn build(routing: RoutingConfig, limits: LimitsConfig, rng: StdRng) -> Router {
        let mut router = Router {
            routing: RoutingConfig::default(),
            limits: LimitsConfig::default(),
            rules: Vec::new(),
            sims: HashMap::new(),
            sticky: HashMap::new(),
            pauses: HashMap::new(),
            holds: HashMap::new(),
            held: HashMap::new(),
            rng,
        };
        router.reconfigure(routing, limits);
        router
    }

    /// New rules and limits; the counters and sticky choices are kept.
    pub fn reconfigure(&mut self, routing: RoutingConfig, limits: LimitsConfig) {
        let mut rules: Vec<Rule> = routing
            .rule
            .iter()
            .map(|r| Rule {
                prefix: Number::parse(&r.prefix),
                text: r.prefix.trim().to_owned(),
                modems: r.modems.iter().map(|m| m.trim().to_owned()).collect(),
            })
            .collect();
        // Longest first; on equal length an international prefix is the
        // more specific one. Stable: config order breaks the rest.
        rules.sort_by(|a, b| {
            (b.prefix.digits.len(), b.prefix.international)
                .cmp(&(a.prefix.digits.len(), a.prefix.international))
        });
        self.rules = rules;
        self.routing = routing;
        self.limits = limits;
    }

    /// Rebuilds counters and sticky choices from the store's summary
    /// ([`RouteHistory`]): per-SIM day counts, the last send per (SIM,
    /// recipient) (recipients of the month, sticky peers, jitter) and the
    /// last minute's sends. Records may come in any order.
    pub fn restore(&mut self, history: &RouteHistory) {
        for d in &history.days {
            let c = self.sims.entry(d.sim.clone()).or_default();
            c.add_day(d.day, d.sent);
            c.note_last(d.last_sent_ms);
        }
        for r in &history.recent {
            self.sims
                .entry(r.sim.clone())
                .or_default()
                .add_minute(r.sent_ms);
        }
        for p in &history.peers {
            let recipient = recipient_key(&p.recipient);
            let c = self.sims.entry(p.sim.clone()).or_default();
            // Sent to this month iff the last send is in this month.
            c.add_recipient(month_of(p.last_sent_ms), recipient);
            c.note_last(p.last_sent_ms);
            let newer = self
                .sticky
                .get(&recipient)
                .map_or(true, |(_, at)| *at < p.last_sent_ms);
            if newer {
                self.remember_sticky(recipient, &p.modem, p.last_sent_ms);
            }
        }
    }

    /// Records one part sent by `modem_id` (with SIM `iccid`) to
    /// `recipient`: counters, jitter and the sticky choice.
    pub fn record_sent(
        &mut self,
        modem_id: &str,
        iccid: Option<&str>,
        recipient: &str,
        now_ms: i64,
    ) {
        let key = recipient_key(recipient);
        let jitter_at = self.rng.gen::<f64>();
        let c = self.sims.entry(sim_key(modem_id, iccid)).or_default();
        c.add_minute(now_ms);
        while c
            .minute
            .front()
            .is_some_and(|&t| t <= now_ms.saturating_sub(MINUTE_MS))
        {
            c.minute.pop_front();
        }
        c.add_day(day_of(now_ms), 1);
        c.add_recipient(month_of(now_ms), key);
        c.last_sent_ms = Some(now_ms);
        c.jitter_at = jitter_at;
        let sim = sim_key(modem_id, iccid);
        self.remember_sticky(key, modem_id, now_ms);
        // A conversation exists now: releasing the held messages no longer
        // undoes the recipient or the sticky choice.
        if let Some(h) = self.holds.get_mut(&(sim, key)) {
            h.new_recipient = None;
            h.sticky_before = None;
        }
    }

    /// A message was bound to `modem_id` (with SIM `iccid`): until it is
    /// released, its recipient counts among the SIM's recipients of the
    /// month and the sticky choice for the recipient is this modem, so a
    /// second message to a new number bound in the same round goes the
    /// same way. Its parts count through the modem's load
    /// ([`Candidate::load`]). Holding a message again first releases it.
    pub fn hold(
        &mut self,
        message: i64,
        modem_id: &str,
        iccid: Option<&str>,
        recipient: &str,
        now_ms: i64,
    ) {
        self.release(message);
        if self.held.len() >= MAX_HELD {
            return;
        }
        let key = recipient_key(recipient);
        let peer = (sim_key(modem_id, iccid), key);
        if !self.holds.contains_key(&peer) {
            let month = month_of(now_ms);
            let c = self.sims.entry(peer.0.clone()).or_default();
            let seen = c.month == month && c.recipients.contains(&key);
            let new_recipient = if seen {
                None
            } else {
                c.add_recipient(month, key);
                (c.month == month && c.recipients.contains(&key)).then_some(month)
            };
            let before = self.sticky.get(&key).cloned();
            let sticky_before = if before.as_ref().is_some_and(|(m, _)| m == modem_id) {
                None
            } else {
                self.remember_sticky(key, modem_id, now_ms);
                Some(before)
            };
            self.holds.insert(
                peer.clone(),
                PeerHold {
                    modem: modem_id.to_owned(),
                    messages: HashSet::new(),
                    new_recipient,
                    sticky_before,
                },
            );
        }
        if let Some(h) = self.holds.get_mut(&peer) {
            h.messages.insert(message);
            self.held.insert(message, peer);
        }
    }

    /// The message is no longer bound (sent, unbound, failed, cancelled,
    /// or its binding failed). When it was the last held message to its
    /// recipient on that SIM and no part reached the recipient meanwhile,
    /// what [`hold`](Router::hold) changed is undone: the recipient no
    /// longer counts for the month and the sticky choice is the earlier
    /// one (none for a new number). Unknown messages are ignored.
    pub fn release(&mut self, message: i64) {
        let Some(peer) = self.held.remove(&message) else {
            return;
        };
        let last = self.holds.get_mut(&peer).is_some_and(|h| {
            h.messages.remove(&message);
            h.messages.is_empty()
        });
        if !last {
            return;
        }
        let Some(h) = self.holds.remove(&peer) else {
            return;
        };
        let (sim, key) = peer;
        if let (Some(month), Some(c)) = (h.new_recipient, self.sims.get_mut(&sim)) {
            if c.month == month {
                c.recipients.remove(&key);
            }
        }
        if let Some(before) = h.sticky_before {
            if self.sticky.get(&key).is_some_and(|(m, _)| *m == h.modem) {
                match before {
                    Some(b) => {
                        self.sticky.insert(key, b);
                    }
                    None => {
                        self.sticky.remove(&key);
                    }
                }
            }
        }
    }

    /// Releases every held message of a modem that holds no bound work
    /// any more (`busy` says which do, from the store): catches the
    /// messages that left the queue without passing through
    /// [`release`](Router::release) (expired, cancelled, failed).
    pub fn release_idle(&mut self, busy: impl Fn(&str) -> bool) {
        let idle: Vec<i64> = self
            .holds
            .values()
            .filter(|h| !busy(&h.modem))
            .flat_map(|h| h.messages.iter().copied())
            .collect();
        for message in idle {
            self.release(message);
        }
    }

    /// Messages held (bound, not yet released).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Forgets the sticky choice for `recipient` (after `smsgate forget`):
    /// its next message is routed as if it had never been written to.
    /// Returns whether there was one.
    pub fn forget_recipient(&mut self, recipient: &str) -> bool {
        self.sticky.remove(&recipient_key(recipient)).is_some()
    }

    fn remember_sticky(&mut self, key: u64, modem: &str, at: i64) {
        if self.sticky.len() >= MAX_STICKY && !self.sticky.contains_key(&key) {
            // Forget the older half at once, so this stays rare.
            let mut times: Vec<i64> = self.sticky.values().map(|(_, t)| *t).collect();
            let mid = times.len() / 2;
            let (_, &mut cut, _) = times.select_nth_unstable(mid);
            self.sticky.retain(|_, (_, t)| *t > cut);
        }
        self.sticky.insert(key, (modem.to_owned(), at));
    }

    /// The candidate id a pin names: its id (IMEI), ICCID or name, tried in
    /// that order.
    pub fn resolve(&self, pin: &str, candidates: &[Candidate]) -> Option<String> {
        let pin = pin.trim();
        if pin.is_empty() {
            return None;
        }
        candidates
            .iter()
            .find(|c| c.id == pin)
            .or_else(|| candidates.iter().find(|c| c.iccid.as_deref() == Some(pin)))
            .or_else(|| candidates.iter().find(|c| c.name == pin))
            .map(|c| c.id.clone())
    }

    /// Chooses the modem for one message (see the module docs for the
    /// order of the rules).
    pub fn choose(&mut self, req: &RouteRequest, candidates: &[Candidate], now_ms: i64) -> Choice {
        if self.pauses.len() > MAX_PAUSES {
            self.pauses
                .retain(|_, until| *until > now_ms.saturating_sub(MINUTE_MS));
            if self.pauses.len() > MAX_PAUSES {
                self.pauses.clear();
            }
        }
        if let Some(pin) = req.pinned {
            let Some(id) = self.resolve(pin, candidates) else {
                return Choice::Reject(format!("pinned modem {pin:?} is not known"));
            };
            let pool: Vec<&Candidate> = candidates.iter().filter(|c| c.id == id).collect();
            return self.pick(req, &pool, now_ms, &format!("pinned modem {pin}"));
        }
        if let Some(id) = self.sticky_choice(req, candidates, now_ms) {
            self.pauses.remove(&req.message);
            return Choice::Modem(id);
        }
        let number = Number::parse(req.recipient);
        if let Some(rule) = self.rules.iter().find(|r| number.starts_with(&r.prefix)) {
            let pool: Vec<&Candidate> = candidates
                .iter()
                .filter(|c| rule.modems.iter().any(|m| names(c, m)))
                .collect();
            let what = format!("the modems of prefix rule {:?}", rule.text);
            return self.pick(req, &pool, now_ms, &what);
        }
        let pool: Vec<&Candidate> = candidates.iter().collect();
        self.pick(req, &pool, now_ms, "any modem")
    }

    /// The recipient's last modem, if it may send this message now.
    fn sticky_choice(
        &self,
        req: &RouteRequest,
        candidates: &[Candidate],
        now_ms: i64,
    ) -> Option<String> {
        if !self.routing.sticky {
            return None;
        }
        let (modem, at) = self.sticky.get(&recipient_key(req.recipient))?;
        let window = i64::from(self.routing.sticky_days).saturating_mul(DAY_MS);
        if now_ms.saturating_sub(*at) > window {
            return None;
        }
        let c = candidates.iter().find(|c| &c.id == modem)?;
        let usable = c.ready
            && !req.exclude.contains(&c.id)
            && self.blocked(c, req.recipient, req.parts, now_ms).is_none();
        usable.then(|| c.id.clone())
    }

    /// The least-loaded usable candidate of `pool`, or why none is.
    fn pick(&mut self, req: &RouteRequest, pool: &[&Candidate], now_ms: i64, what: &str) -> Choice {
        let today = day_of(now_ms);
        let mut best: Option<((u64, u64, &str), &Candidate)> = None;
        let mut best_excluded: Option<((u64, u64, &str), &Candidate)> = None;
        let mut earliest: Option<Blocked> = None;
        let mut not_ready = false;
        for &c in pool {
            if !c.ready {
                not_ready = true;
                continue;
            }
            if let Some(b) = self.blocked(c, req.recipient, req.parts, now_ms) {
                if earliest.as_ref().map_or(true, |e| b.until_ms < e.until_ms) {
                    earliest = Some(b);
                }
                continue;
            }
            let sent = self
                .sims
                .get(&sim_key(&c.id, c.iccid.as_deref()))
                .map_or(0, |s| s.sent_on(today));
            let key = (c.load, sent, c.id.as_str());
            let slot = if req.exclude.contains(&c.id) {
                &mut best_excluded
            } else {
                &mut best
            };
            if slot.as_ref().map_or(true, |(k, _)| key < *k) {
                *slot = Some((key, c));
            }
        }
        if let Some((_, c)) = best {
            self.pauses.remove(&req.message);
            return Choice::Modem(c.id.clone());
        }
        if let Some((_, c)) = best_excluded {
            // Only modems that already failed this message are left: give
            // the cause (network, SIM) a moment, then try again.
            let until = *self
                .pauses
                .entry(req.message)
                .or_insert(now_ms.saturating_add(EXCLUDED_PAUSE_MS));
            if now_ms >= until {
                self.pauses.remove(&req.message);
                return Choice::Modem(c.id.clone());
            }
            return Choice::Wait {
                until_ms: until,
                reason: format!(
                    "only {} is left and it failed this message: trying it again shortly",
                    c.name
                ),
            };
        }
        let retry = now_ms.saturating_add(NOT_READY_RETRY_MS);
        match earliest {
            Some(b) if not_ready && retry < b.until_ms => Choice::Wait {
                until_ms: retry,
                reason: format!("{}; other modems not ready", b.reason),
            },
            Some(b) => Choice::Wait {
                until_ms: b.until_ms,
                reason: b.reason,
            },
            None if pool.is_empty() => Choice::Wait {
                until_ms: retry,
                reason: format!("no modem present for {what}"),
            },
            None => Choice::Wait {
                until_ms: retry,
                reason: format!("no ready modem for {what}"),
            },
        }
    }

    /// The limits in force for a candidate's SIM.
    fn limits_for(&self, c: &Candidate) -> Limits {
        let own = c
            .iccid
            .as_deref()
            .and_then(|i| self.limits.sim.get(i))
            .or_else(|| self.limits.sim.get(&c.id))
            .or_else(|| self.limits.sim.get(&c.name));
        match own {
            Some(l) => l.or(&self.limits.default),
            None => self.limits.default.clone(),
        }
    }

    /// Whether sending `parts` parts to `recipient` through `c` now breaks
    /// a limit; if so, until when (the latest of the limits broken). The
    /// parts bound to `c` or in flight (`c.load`) count as sent now.
    fn blocked(&self, c: &Candidate, recipient: &str, parts: u32, now_ms: i64) -> Option<Blocked> {
        let limits = self.limits_for(c);
        let key = sim_key(&c.id, c.iccid.as_deref());
        let fresh = SimCounters::default();
        let counters = self.sims.get(&key).unwrap_or(&fresh);
        let parts = u64::from(parts.max(1));
        let held = c.load;
        let mut worst: Option<Blocked> = None;
        let mut block = |until_ms: i64, reason: String| {
            if worst.as_ref().map_or(true, |w| until_ms > w.until_ms) {
                worst = Some(Blocked { until_ms, reason });
            }
        };
        // A message larger than a limit still goes out alone in an empty
        // window with nothing bound, or it could never be sent.
        let over = |count: u64, limit: u32| {
            limit == 0 || (count > 0 && count.saturating_add(parts) > u64::from(limit))
        };
        if let Some(limit) = limits.per_minute {
            // Sorted: the window is a suffix, found by binary search.
            let window = &counters.minute;
            let start = window.partition_point(|&t| t <= now_ms.saturating_sub(MINUTE_MS));
            let sent = window.len().saturating_sub(start) as u64;
            let count = sent.saturating_add(held);
            if over(count, limit) {
                // Enough of the oldest sends must leave the window; the
                // bound parts leave it no earlier than a minute from now.
                let leave = count.saturating_add(parts).saturating_sub(u64::from(limit));
                let oldest = usize::try_from(leave.max(1) - 1)
                    .ok()
                    .filter(|&i| (i as u64) < sent)
                    .and_then(|i| window.get(start.saturating_add(i)));
                let until = oldest.map_or(now_ms, |&t| t).saturating_add(MINUTE_MS);
                block(
                    until,
                    format!("per_minute limit {limit} reached on SIM {key}"),
                );
            }
        }
        if let Some(limit) = limits.per_day {
            let today = day_of(now_ms);
            if over(counters.sent_on(today).saturating_add(held), limit) {
                block(
                    today.saturating_add(1).saturating_mul(DAY_MS),
                    format!("per_day limit {limit} reached on SIM {key}"),
                );
            }
        }
        if let Some(limit) = limits.recipients_per_month {
            // Held (bound) recipients are in the set already.
            let month = month_of(now_ms);
            let seen = if counters.month == month {
                &counters.recipients
            } else {
                &HashSet::new()
            };
            let new = !seen.contains(&recipient_key(recipient));
            if new && (limit == 0 || seen.len() as u64 >= u64::from(limit)) {
                block(
                    next_month_ms(now_ms),
                    format!("recipients_per_month limit {limit} reached on SIM {key}"),
                );
            }
        }
        if let Some([a, b]) = limits.jitter_ms {
            let (lo, hi) = (a.min(b), a.max(b));
            if held > 0 && hi > 0 {
                // The pause runs from the send of what is bound, not yet
                // known: the engine asks again when it is recorded; the
                // time is a fallback.
                block(
                    now_ms.saturating_add(i64::try_from(hi).unwrap_or(i64::MAX)),
                    format!("jitter_ms: waiting for the send in flight on SIM {key}"),
                );
            } else if let Some(last) = counters.last_sent_ms {
                let gap = lo as f64 + counters.jitter_at * (hi - lo) as f64;
                let until = last.saturating_add(gap.round() as i64);
                if until > now_ms {
                    block(
                        until,
                        format!("jitter_ms pause after the last send on SIM {key}"),
                    );
                }
            }
        }
        worst
    }
}

/// Whether a configured modem reference (name, IMEI or ICCID) names `c`.
fn names(c: &Candidate, reference: &str) -> bool {
    c.id == reference || c.name == reference || c.iccid.as_deref() == Some(reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PeerRecord, RecentSend, SimDay};
    use proptest::prelude::*;

    /// 2026-11-26 10:00:00 UTC.
    const NOW: i64 = 1_795_687_200_000;

    fn cand(id: &str, name: &str, iccid: Option<&str>, ready: bool, load: u64) -> Candidate {
        Candidate {
            id: id.into(),
            name: name.into(),
            iccid: iccid.map(Into::into),
            ready,
            load,
        }
    }

    /// Three modems: left (ICCID 8949...1), right (8949...2), spare (no SIM id).
    fn modems() -> Vec<Candidate> {
        vec![
            cand("111", "left", Some("89490001"), true, 0),
            cand("222", "right", Some("89490002"), true, 0),
            cand("333", "spare", None, true, 0),
        ]
    }

    fn req<'a>(to: &'a str, pinned: Option<&'a str>, exclude: &'a [String]) -> RouteRequest<'a> {
        RouteRequest {
            message: 1,
            recipient: to,
            pinned,
            parts: 1,
            exclude,
        }
    }

    fn rules(rules: &[(&str, &[&str])]) -> RoutingConfig {
        RoutingConfig {
            rule: rules
                .iter()
                .map(|(p, m)| PrefixRule {
                    prefix: (*p).into(),
                    modems: m.iter().map(|s| (*s).into()).collect(),
                })
                .collect(),
            ..RoutingConfig::default()
        }
    }

    fn limits(default: Limits) -> LimitsConfig {
        LimitsConfig {
            default,
            sim: BTreeMap::new(),
        }
    }

    fn modem(id: &str) -> Choice {
        Choice::Modem(id.into())
    }

    #[test]
    fn routing_table() {
        let none: &[String] = &[];
        let ex_left = ["111".to_string()];
        let busy_left = {
            let mut m = modems();
            m[0].load = 5;
            m
        };
        let right_down = {
            let mut m = modems();
            m[1].ready = false;
            m
        };
        let all_down: Vec<Candidate> = modems()
            .into_iter()
            .map(|mut c| {
                c.ready = false;
                c
            })
            .collect();
        let de = rules(&[("+49", &["right"]), ("+49151", &["89490001"])]);
        type Case<'a> = (
            &'a str,
            RoutingConfig,
            RouteRequest<'a>,
            Vec<Candidate>,
            Choice,
        );
        let cases: Vec<Case> = vec![
            (
                "least loaded, ties by id",
                RoutingConfig::default(),
                req("+15550001", None, none),
                modems(),
                modem("111"),
            ),
            (
                "least loaded skips the busy one",
                RoutingConfig::default(),
                req("+15550001", None, none),
                busy_left.clone(),
                modem("222"),
            ),
            (
                "pin by name",
                RoutingConfig::default(),
                req("+15550001", Some("right"), none),
                busy_left.clone(),
                modem("222"),
            ),
            (
                "pin by IMEI",
                RoutingConfig::default(),
                req("+15550001", Some("333"), none),
                modems(),
                modem("333"),
            ),
            (
                "pin by ICCID",
                RoutingConfig::default(),
                req("+15550001", Some("89490002"), none),
                modems(),
                modem("222"),
            ),
            (
                "pin to an unknown modem",
                RoutingConfig::default(),
                req("+15550001", Some("nope"), none),
                modems(),
                Choice::Reject("pinned modem \"nope\" is not known".into()),
            ),
            (
                "pin to a modem not ready waits",
                RoutingConfig::default(),
                req("+15550001", Some("right"), none),
                right_down.clone(),
                Choice::Wait {
                    until_ms: NOW + NOT_READY_RETRY_MS,
                    reason: "no ready modem for pinned modem right".into(),
                },
            ),
            (
                "not ready modems are skipped",
                RoutingConfig::default(),
                req("+15550001", None, none),
                {
                    let mut m = right_down.clone();
                    m[0].load = 9;
                    m
                },
                modem("333"),
            ),
            (
                "nothing ready waits",
                RoutingConfig::default(),
                req("+15550001", None, none),
                all_down,
                Choice::Wait {
                    until_ms: NOW + NOT_READY_RETRY_MS,
                    reason: "no ready modem for any modem".into(),
                },
            ),
            (
                "no modems at all waits",
                RoutingConfig::default(),
                req("+15550001", None, none),
                vec![],
                Choice::Wait {
                    until_ms: NOW + NOT_READY_RETRY_MS,
                    reason: "no modem present for any modem".into(),
                },
            ),
            (
                "prefix rule",
                de.clone(),
                req("+4930123", None, none),
                modems(),
                modem("222"),
            ),
            (
                "prefix rule, 0049 is +49",
                de.clone(),
                req("0049 30 123", None, none),
                modems(),
                modem("222"),
            ),
            (
                "longest prefix wins",
                de.clone(),
                req("+49151777", None, none),
                modems(),
                modem("111"),
            ),
            (
                "no rule matches: any modem",
                de.clone(),
                req("+33123", None, none),
                busy_left.clone(),
                modem("222"),
            ),
            (
                "national prefix",
                rules(&[("0151", &["spare"])]),
                req("0151 777", None, none),
                modems(),
                modem("333"),
            ),
            (
                "international prefix does not match a national number",
                rules(&[("+49", &["spare"])]),
                req("0151777", None, none),
                modems(),
                modem("111"),
            ),
            (
                "rule whose modems are absent waits",
                rules(&[("+49", &["gone"])]),
                req("+4930", None, none),
                modems(),
                Choice::Wait {
                    until_ms: NOW + NOT_READY_RETRY_MS,
                    reason: "no modem present for the modems of prefix rule \"+49\"".into(),
                },
            ),
            (
                "empty prefix is a catch-all",
                rules(&[("", &["spare"])]),
                req("+4930", None, none),
                modems(),
                modem("333"),
            ),
            (
                "excluded modem is skipped",
                RoutingConfig::default(),
                req("+15550001", None, &ex_left),
                modems(),
                modem("222"),
            ),
            (
                "only the excluded modem left: wait a little",
                RoutingConfig::default(),
                req("+15550001", Some("left"), &ex_left),
                modems(),
                Choice::Wait {
                    until_ms: NOW + EXCLUDED_PAUSE_MS,
                    reason: "only left is left and it failed this message: trying it again shortly"
                        .into(),
                },
            ),
        ];
        for (name, routing, r, cands, want) in cases {
            let mut router = Router::with_seed(routing, LimitsConfig::default(), 1);
            assert_eq!(router.choose(&r, &cands, NOW), want, "case: {name}");
        }
    }

    #[test]
    fn an_excluded_only_choice_is_retried_after_the_pause() {
        let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
        let ex = ["111".to_string(), "222".to_string(), "333".to_string()];
        let r = req("+15550001", None, &ex);
        assert!(
            matches!(router.choose(&r, &modems(), NOW), Choice::Wait { until_ms, .. } if until_ms == NOW + EXCLUDED_PAUSE_MS)
        );
        assert!(
            matches!(router.choose(&r, &modems(), NOW + 1), Choice::Wait { until_ms, .. } if until_ms == NOW + EXCLUDED_PAUSE_MS)
        );
        assert_eq!(
            router.choose(&r, &modems(), NOW + EXCLUDED_PAUSE_MS),
            modem("111")
        );
    }

    #[test]
    fn sticky_peer_gets_the_same_modem_within_sticky_days() {
        let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
        router.record_sent("333", None, "+49 30 1234", NOW);
        let none: &[String] = &[];
        // Same number in another spelling, spare busier than the others.
        let mut cands = modems();
        cands[2].load = 7;
        assert_eq!(
            router.choose(&req("004930-1234", None, none), &cands, NOW + 1),
            modem("333")
        );
        // Sticky beats a prefix rule.
        router.reconfigure(rules(&[("+49", &["left"])]), LimitsConfig::default());
        assert_eq!(
            router.choose(&req("+49301234", None, none), &cands, NOW + 2),
            modem("333")
        );
        // After sticky_days it is forgotten.
        let later = NOW + 31 * DAY_MS;
        assert_eq!(
            router.choose(&req("+49301234", None, none), &cands, later),
            modem("111")
        );
        // Not when off, nor when the modem is not ready or excluded.
        router.reconfigure(
            RoutingConfig {
                sticky: false,
                ..RoutingConfig::default()
            },
            LimitsConfig::default(),
        );
        assert_eq!(
            router.choose(&req("+49301234", None, none), &cands, NOW + 3),
            modem("111")
        );
        router.reconfigure(RoutingConfig::default(), LimitsConfig::default());
        let ex = ["333".to_string()];
        assert_eq!(
            router.choose(&req("+49301234", None, &ex), &cands, NOW + 3),
            modem("111")
        );
        cands[2].ready = false;
        assert_eq!(
            router.choose(&req("+49301234", None, none), &cands, NOW + 3),
            modem("111")
        );
    }

    #[test]
    fn per_minute_limit_moves_to_another_sim_then_waits() {
        let l = limits(Limits {
            per_minute: Some(2),
            ..Limits::default()
        });
        let mut router = Router::with_seed(rules(&[("+1", &["left", "right"])]), l, 1);
        let none: &[String] = &[];
        let r = req("+15550001", None, none);
        router.record_sent("111", Some("89490001"), "+15550001", NOW);
        router.record_sent("111", Some("89490001"), "+15550002", NOW + 1000);
        router.record_sent("222", Some("89490002"), "+15550003", NOW + 2000);
        // Sticky left is full: right has room.
        assert_eq!(router.choose(&r, &modems(), NOW + 3000), modem("222"));
        router.record_sent("222", Some("89490002"), "+15550004", NOW + 3000);
        // Both full: wait until left's oldest send leaves the window.
        assert_eq!(
            router.choose(&r, &modems(), NOW + 4000),
            Choice::Wait {
                until_ms: NOW + MINUTE_MS,
                reason: "per_minute limit 2 reached on SIM 89490001".into()
            }
        );
        assert_eq!(router.choose(&r, &modems(), NOW + MINUTE_MS), modem("111"));
    }

    #[test]
    fn a_message_larger_than_the_window_room_waits_for_enough_room() {
        let l = limits(Limits {
            per_minute: Some(3),
            ..Limits::default()
        });
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        for i in 0..3 {
            router.record_sent("333", None, "+1555", NOW + i * 1000);
        }
        let none: &[String] = &[];
        let mut r = req("+1666", Some("spare"), none);
        r.parts = 2;
        // Two of the three sends must leave: the second one's minute ends last.
        assert!(
            matches!(router.choose(&r, &modems(), NOW + 5000), Choice::Wait { until_ms, .. } if until_ms == NOW + 1000 + MINUTE_MS)
        );
        // Larger than the limit: goes alone once the window is empty.
        r.parts = 5;
        assert!(matches!(
            router.choose(&r, &modems(), NOW + 2000 + MINUTE_MS - 1),
            Choice::Wait { .. }
        ));
        assert_eq!(
            router.choose(&r, &modems(), NOW + 2000 + MINUTE_MS),
            modem("333")
        );
    }

    #[test]
    fn per_day_limit_resets_at_utc_midnight_and_sim_overrides_apply() {
        let mut l = limits(Limits {
            per_day: Some(100),
            ..Limits::default()
        });
        // Keyed by name; unset fields come from [limits].
        l.sim.insert(
            "spare".into(),
            Limits {
                per_minute: Some(50),
                per_day: Some(1),
                ..Limits::default()
            },
        );
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        router.record_sent("333", None, "+1555", NOW);
        let none: &[String] = &[];
        let r = req("+1666", Some("spare"), none);
        let midnight = (NOW / DAY_MS + 1) * DAY_MS;
        assert_eq!(
            router.choose(&r, &modems(), NOW + 1),
            Choice::Wait {
                until_ms: midnight,
                reason: "per_day limit 1 reached on SIM 333".into()
            }
        );
        assert_eq!(router.choose(&r, &modems(), midnight), modem("333"));
        // per_day = 0 disables a SIM.
        let mut l = limits(Limits::default());
        l.sim.insert(
            "89490001".into(),
            Limits {
                per_day: Some(0),
                ..Limits::default()
            },
        );
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        router.record_sent("111", Some("89490001"), "+1", NOW - 10 * DAY_MS);
        assert_eq!(
            router.choose(&req("+1666", None, none), &modems(), NOW),
            modem("222")
        );
    }

    #[test]
    fn recipients_per_month_counts_new_recipients_only() {
        let l = limits(Limits {
            recipients_per_month: Some(2),
            ..Limits::default()
        });
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        router.record_sent("333", None, "+1001", NOW);
        router.record_sent("333", None, "+1002", NOW);
        router.record_sent("333", None, "+1002", NOW);
        let none: &[String] = &[];
        // A recipient seen this month does not count again.
        assert_eq!(
            router.choose(&req("+1001", Some("spare"), none), &modems(), NOW),
            modem("333")
        );
        // A new one waits for 2026-12-01 00:00 UTC.
        assert_eq!(
            router.choose(&req("+1003", Some("spare"), none), &modems(), NOW),
            Choice::Wait {
                until_ms: 1_796_083_200_000,
                reason: "recipients_per_month limit 2 reached on SIM 333".into()
            }
        );
        assert_eq!(
            router.choose(
                &req("+1003", Some("spare"), none),
                &modems(),
                1_796_083_200_000
            ),
            modem("333")
        );
    }

    #[test]
    fn jitter_spaces_sends_within_its_range_reproducibly() {
        let l = limits(Limits {
            jitter_ms: Some([1000, 3000]),
            ..Limits::default()
        });
        let none: &[String] = &[];
        let gap = |seed| {
            let mut router = Router::with_seed(RoutingConfig::default(), l.clone(), seed);
            router.record_sent("333", None, "+1", NOW);
            match router.choose(&req("+1", Some("spare"), none), &modems(), NOW) {
                Choice::Wait { until_ms, reason } => {
                    assert!(reason.contains("jitter_ms"), "{reason}");
                    until_ms - NOW
                }
                other => panic!("{other:?}"),
            }
        };
        let gaps: Vec<i64> = (0..50).map(gap).collect();
        assert!(gaps.iter().all(|g| (1000..=3000).contains(g)), "{gaps:?}");
        assert!(gaps.iter().any(|&g| g != gaps[0]), "not random: {gaps:?}");
        assert_eq!(gap(7), gap(7));
        // Another SIM is free meanwhile.
        let mut router = Router::with_seed(RoutingConfig::default(), l.clone(), 1);
        router.record_sent("111", Some("89490001"), "+1", NOW);
        assert_eq!(
            router.choose(&req("+1", None, none), &modems(), NOW),
            modem("222")
        );
    }

    #[test]
    fn restore_rebuilds_counters_and_sticky_choices() {
        let l = limits(Limits {
            per_day: Some(10),
            recipients_per_month: Some(3),
            ..Limits::default()
        });
        let day = |sim: &str, at: i64, sent| SimDay {
            sim: sim.into(),
            day: day_of(at),
            sent,
            last_sent_ms: at,
        };
        let peer = |modem: &str, sim: &str, to: &str, at| PeerRecord {
            sim: sim.into(),
            modem: modem.into(),
            recipient: to.into(),
            last_sent_ms: at,
        };
        let history = RouteHistory {
            days: vec![
                day("89490001", NOW - 1000, 10),
                day("89490001", NOW - DAY_MS, 99),
                day("89490002", NOW - 3 * DAY_MS, 1),
            ],
            peers: vec![
                peer("111", "89490001", "+1001", NOW - 1000),
                peer("111", "89490001", "+1002", NOW - 2000),
                peer("111", "89490001", "+1003", NOW - DAY_MS),
                peer("222", "89490002", "+1009", NOW - 3 * DAY_MS),
            ],
            recent: vec![],
        };
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        router.restore(&history);
        let none: &[String] = &[];
        // Sticky: +1009 last went through right.
        assert_eq!(
            router.choose(&req("+1009", None, none), &modems(), NOW),
            modem("222")
        );
        // Left sent 10 today: full.
        let r = req("+1001", Some("left"), none);
        assert!(
            matches!(router.choose(&r, &modems(), NOW), Choice::Wait { reason, .. } if reason.contains("per_day"))
        );
        // Tomorrow left has room, and 3 recipients this month: a 4th waits.
        let tomorrow = (NOW / DAY_MS + 1) * DAY_MS;
        assert_eq!(router.choose(&r, &modems(), tomorrow), modem("111"));
        let r4 = req("+1004", Some("left"), none);
        assert!(
            matches!(router.choose(&r4, &modems(), tomorrow), Choice::Wait { reason, .. } if reason.contains("recipients_per_month"))
        );
    }

    #[test]
    fn config_reads_from_toml_and_rejects_unknown_keys() {
        #[derive(Deserialize)]
        struct File {
            routing: RoutingConfig,
            limits: LimitsConfig,
        }
        let f: File = toml::from_str(
            r#"
            [routing]
            sticky_days = 7
            [[routing.rule]]
            prefix = "+49"
            modems = ["left", "89490002"]
            [limits]
            per_minute = 10
            jitter_ms = [0, 500]
            [limits.sim."8949000000000000001"]
            per_day = 100
            "#,
        )
        .unwrap();
        assert!(f.routing.sticky);
        assert_eq!(f.routing.sticky_days, 7);
        assert_eq!(f.routing.rule[0].modems, ["left", "89490002"]);
        assert_eq!(f.limits.default.per_minute, Some(10));
        assert_eq!(f.limits.default.jitter_ms, Some([0, 500]));
        assert_eq!(f.limits.sim["8949000000000000001"].per_day, Some(100));
        assert!(toml::from_str::<RoutingConfig>("stiky = true").is_err());
        assert!(toml::from_str::<LimitsConfig>("per_hour = 1").is_err());
        assert!(toml::from_str::<LimitsConfig>("[sim.x]\nper_hour = 1").is_err());
        assert!(toml::from_str::<PrefixRule>("prefix = \"+1\"").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        assert_eq!(
            rules(&[("+49", &["left"]), ("0151 77", &["x"])]).validate(),
            Ok(())
        );
        let e = rules(&[("+49", &["left"]), ("4+9", &["x"])])
            .validate()
            .unwrap_err();
        assert!(e.starts_with("routing.rule[1].prefix"), "{e}");
        let e = rules(&[("+49", &[])]).validate().unwrap_err();
        assert!(e.starts_with("routing.rule[0].modems"), "{e}");
        let mut l = limits(Limits {
            jitter_ms: Some([5, 5]),
            ..Limits::default()
        });
        assert_eq!(l.validate(), Ok(()));
        l.sim.insert(
            "left".into(),
            Limits {
                jitter_ms: Some([9, 1]),
                ..Limits::default()
            },
        );
        let e = l.validate().unwrap_err();
        assert!(e.starts_with("limits.sim.\"left\".jitter_ms"), "{e}");
    }

    #[test]
    fn bound_parts_count_against_the_limits() {
        let none: &[String] = &[];
        let l = limits(Limits {
            per_minute: Some(3),
            per_day: Some(5),
            ..Limits::default()
        });
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        let with_load = |load: u64| {
            let mut m = modems();
            m.truncate(1);
            m[0].load = load;
            m
        };
        let r = req("+15550001", None, none);
        // Three parts bound, none sent: the fourth waits a minute (the
        // bound ones leave the window no earlier than a minute after now).
        assert_eq!(router.choose(&r, &with_load(2), NOW), modem("111"));
        assert_eq!(
            router.choose(&r, &with_load(3), NOW),
            Choice::Wait {
                until_ms: NOW + MINUTE_MS,
                reason: "per_minute limit 3 reached on SIM 89490001".into()
            }
        );
        // Two sent, one bound: the oldest send leaving frees a place.
        router.record_sent("111", Some("89490001"), "+1", NOW - 30_000);
        router.record_sent("111", Some("89490001"), "+1", NOW - 20_000);
        assert_eq!(
            router.choose(&r, &with_load(1), NOW),
            Choice::Wait {
                until_ms: NOW + 30_000,
                reason: "per_minute limit 3 reached on SIM 89490001".into()
            }
        );
        // Per day: 2 sent and 3 bound make 5.
        let later = NOW + 5 * MINUTE_MS;
        let midnight = (NOW / DAY_MS + 1) * DAY_MS;
        assert_eq!(
            router.choose(&r, &with_load(3), later),
            Choice::Wait {
                until_ms: midnight,
                reason: "per_day limit 5 reached on SIM 89490001".into()
            }
        );
        assert_eq!(router.choose(&r, &with_load(2), later), modem("111"));
        // A message larger than the limit goes alone, but not next to
        // bound work.
        let big = RouteRequest {
            parts: 4,
            ..r.clone()
        };
        let mut fresh = Router::with_seed(
            RoutingConfig::default(),
            limits(Limits {
                per_minute: Some(3),
                ..Limits::default()
            }),
            1,
        );
        assert_eq!(fresh.choose(&big, &with_load(0), NOW), modem("111"));
        assert!(matches!(
            fresh.choose(&big, &with_load(1), NOW),
            Choice::Wait { .. }
        ));
    }

    #[test]
    fn a_backlog_routed_in_one_round_is_spread_within_the_limits() {
        // The engine's round: every choice adds the parts to the
        // candidate's load and holds the message.
        let none: &[String] = &[];
        let l = limits(Limits {
            per_minute: Some(3),
            ..Limits::default()
        });
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        let mut cands = modems();
        let mut waits = 0;
        for i in 0..20 {
            let to = format!("+1555{i}");
            let r = RouteRequest {
                message: i,
                ..req(&to, None, none)
            };
            match router.choose(&r, &cands, NOW) {
                Choice::Modem(id) => {
                    let c = cands.iter_mut().find(|c| c.id == id).unwrap();
                    c.load += 1;
                    router.hold(i, &c.id, c.iccid.as_deref(), &to, NOW);
                }
                Choice::Wait { until_ms, reason } => {
                    assert_eq!(until_ms, NOW + MINUTE_MS, "{reason}");
                    waits += 1;
                }
                Choice::Reject(r) => panic!("{r}"),
            }
        }
        let loads: Vec<u64> = cands.iter().map(|c| c.load).collect();
        assert_eq!(loads, [3, 3, 3]);
        assert_eq!(waits, 11);
    }

    #[test]
    fn jitter_spaces_a_backlog_one_message_at_a_time() {
        let none: &[String] = &[];
        let l = limits(Limits {
            jitter_ms: Some([1000, 2000]),
            ..Limits::default()
        });
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        let mut cands = modems();
        cands.truncate(1);
        let r = req("+15550001", None, none);
        assert_eq!(router.choose(&r, &cands, NOW), modem("111"));
        // Bound, not sent yet: the next waits for that send (then for
        // the pause after it).
        cands[0].load = 1;
        assert_eq!(
            router.choose(&r, &cands, NOW),
            Choice::Wait {
                until_ms: NOW + 2000,
                reason: "jitter_ms: waiting for the send in flight on SIM 89490001".into()
            }
        );
        router.record_sent("111", Some("89490001"), "+15550001", NOW + 500);
        cands[0].load = 0;
        let Choice::Wait { until_ms, reason } = router.choose(&r, &cands, NOW + 500) else {
            panic!("no pause after the send")
        };
        assert!((NOW + 1500..=NOW + 2500).contains(&until_ms), "{reason}");
        assert_eq!(router.choose(&r, &cands, until_ms), modem("111"));
        // [0, 0] is no pause: bound work does not hold the next back.
        router.reconfigure(
            RoutingConfig::default(),
            limits(Limits {
                jitter_ms: Some([0, 0]),
                ..Limits::default()
            }),
        );
        cands[0].load = 5;
        assert_eq!(router.choose(&r, &cands, NOW + 600), modem("111"));
    }

    #[test]
    fn stickiness_starts_at_bind_time_and_is_dropped_when_unbound_unsent() {
        let none: &[String] = &[];
        let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
        let mut cands = modems();
        let to = "+4930555";
        // Two messages to a new number in one round: the second follows
        // the first although another modem is less loaded.
        assert_eq!(
            router.choose(&req(to, None, none), &cands, NOW),
            modem("111")
        );
        router.hold(1, "111", Some("89490001"), to, NOW);
        cands[0].load = 1;
        let second = RouteRequest {
            message: 2,
            ..req(to, None, none)
        };
        assert_eq!(router.choose(&second, &cands, NOW), modem("111"));
        router.hold(2, "111", Some("89490001"), to, NOW);
        // Both unbound unsent (a failover): no conversation, no sticky.
        router.release(1);
        assert_eq!(router.choose(&second, &cands, NOW), modem("111"));
        router.release(2);
        assert_eq!(router.held(), 0);
        assert_eq!(router.choose(&second, &cands, NOW), modem("222"));
        // Sent: it stays after the release.
        router.hold(3, "222", Some("89490002"), to, NOW);
        router.record_sent("222", Some("89490002"), to, NOW + 1);
        router.release(3);
        assert_eq!(router.choose(&second, &cands, NOW + 2), modem("222"));
        // An earlier conversation comes back when a binding elsewhere is
        // released unsent.
        router.hold(4, "333", None, to, NOW + 3);
        assert_eq!(router.choose(&second, &cands, NOW + 4), modem("333"));
        router.release(4);
        assert_eq!(router.choose(&second, &cands, NOW + 5), modem("222"));
        // Releasing twice or an unknown message changes nothing.
        router.release(4);
        router.release(99);
        assert_eq!(router.choose(&second, &cands, NOW + 5), modem("222"));
    }

    #[test]
    fn held_recipients_count_for_the_month_until_released_unsent() {
        let none: &[String] = &[];
        let l = limits(Limits {
            recipients_per_month: Some(1),
            ..Limits::default()
        });
        let mut router = Router::with_seed(RoutingConfig::default(), l, 1);
        router.hold(1, "333", None, "+1001", NOW);
        let other = req("+1002", Some("spare"), none);
        assert!(matches!(
            router.choose(&other, &modems(), NOW),
            Choice::Wait { reason, .. } if reason.contains("recipients_per_month")
        ));
        // The same recipient again is no new one.
        assert_eq!(
            router.choose(&req("+1001", Some("spare"), none), &modems(), NOW),
            modem("333")
        );
        router.release(1);
        assert_eq!(router.choose(&other, &modems(), NOW), modem("333"));
        // Sent, then released: it stays counted.
        router.hold(2, "333", None, "+1001", NOW);
        router.record_sent("333", None, "+1001", NOW);
        router.release(2);
        assert!(matches!(
            router.choose(&other, &modems(), NOW),
            Choice::Wait { .. }
        ));
    }

    #[test]
    fn holds_of_a_modem_without_bound_work_are_released() {
        let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
        router.hold(1, "111", Some("89490001"), "+1", NOW);
        router.hold(2, "222", Some("89490002"), "+2", NOW);
        router.hold(3, "222", Some("89490002"), "+2", NOW);
        router.release_idle(|m| m == "222");
        assert_eq!(router.held(), 2);
        router.release_idle(|_| false);
        assert_eq!(router.held(), 0);
        assert!(router.holds.is_empty() && router.sticky.is_empty());
        // Holding a message again moves it.
        router.hold(4, "111", Some("89490001"), "+4", NOW);
        router.hold(4, "222", Some("89490002"), "+4", NOW);
        assert_eq!(router.held(), 1);
        assert_eq!(router.sticky[&recipient_key("+4")].0, "222");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
        for i in 0..(MAX_MINUTE_WINDOW as i64 + 10) {
            router.record_sent("333", None, &format!("+1{i}"), NOW + i);
        }
        let c = &router.sims["333"];
        assert!(c.minute.len() <= MAX_MINUTE_WINDOW);
        assert!(router.sticky.len() <= MAX_STICKY);
    }

    fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec((any::<bool>(), 0u64..5, any::<bool>()), 0..5).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (ready, load, sim))| Candidate {
                    id: format!("35{i}"),
                    name: format!("m{i}"),
                    iccid: sim.then(|| format!("894{i}")),
                    ready,
                    load,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn a_choice_is_a_ready_candidate_within_limits(
            cands in arb_candidates(),
            sends in prop::collection::vec((0usize..5, 0u8..6, 0i64..120_000), 0..40),
            per_minute in prop::option::of(1u32..6),
            per_day in prop::option::of(1u32..20),
            per_month in prop::option::of(1u32..4),
            pin in prop::option::of(0usize..6),
            to in 0u8..6,
            exclude in prop::collection::vec(0usize..5, 0..3),
            rule in prop::option::of((prop::sample::select(vec!["+1", "+12", "0", ""]), prop::collection::vec(0usize..5, 0..3))),
        ) {
            let l = limits(Limits { per_minute, per_day, recipients_per_month: per_month, jitter_ms: None });
            let routing = match &rule {
                Some((p, ms)) => rules(&[(p, &ms.iter().map(|i| format!("m{i}")).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>())]),
                None => RoutingConfig::default(),
            };
            let mut router = Router::with_seed(routing, l, 3);
            let now = NOW + 200_000;
            for (m, r, at) in &sends {
                if let Some(c) = cands.get(*m) {
                    router.record_sent(&c.id, c.iccid.as_deref(), &format!("+1{r}"), NOW + at);
                }
            }
            let exclude: Vec<String> = exclude.iter().map(|i| format!("35{i}")).collect();
            let pin = pin.map(|i| format!("m{i}"));
            let recipient = format!("+1{to}");
            let r = RouteRequest { message: 9, recipient: &recipient, pinned: pin.as_deref(), parts: 1, exclude: &exclude };
            match router.choose(&r, &cands, now) {
                Choice::Modem(id) => {
                    let c = cands.iter().find(|c| c.id == id).expect("a candidate");
                    prop_assert!(c.ready);
                    prop_assert!(router.blocked(c, &recipient, 1, now).is_none());
                    if let Some(p) = &pin {
                        prop_assert_eq!(&c.name, p);
                    }
                }
                Choice::Wait { until_ms, reason } => {
                    prop_assert!(until_ms > now, "{}", reason);
                    prop_assert!(!reason.is_empty());
                }
                Choice::Reject(_) => prop_assert!(pin.is_some()),
            }
        }

        #[test]
        fn any_time_and_any_history_never_panics(
            history in prop::collection::vec((any::<i64>(), any::<u64>(), "[+0-9 ]{0,12}"), 0..20),
            sends in prop::collection::vec(any::<i64>(), 0..10),
            now in any::<i64>(),
            parts in any::<u32>(),
            jitter in any::<[u64; 2]>(),
            to in "\\PC{0,20}",
        ) {
            let l = limits(Limits { per_minute: Some(1), per_day: Some(1), recipients_per_month: Some(1), jitter_ms: Some(jitter) });
            let mut router = Router::with_seed(RoutingConfig::default(), l, 5);
            let records = RouteHistory {
                days: history.iter().map(|(at, count, _)| SimDay { sim: "111".into(), day: day_of(*at), sent: *count, last_sent_ms: *at }).collect(),
                peers: history.iter().map(|(at, _, r)| PeerRecord { sim: "111".into(), modem: "111".into(), recipient: r.clone(), last_sent_ms: *at }).collect(),
                recent: history.iter().map(|(at, _, _)| RecentSend { sim: "111".into(), sent_ms: *at }).collect(),
            };
            router.restore(&records);
            for at in sends {
                router.record_sent("222", Some("89490002"), &to, at);
            }
            let r = RouteRequest { message: 1, recipient: &to, pinned: None, parts, exclude: &[] };
            let _ = router.choose(&r, &modems(), now);
        }

        #[test]
        fn load_spreads_evenly(n in 1usize..6, messages in 1usize..60) {
            let mut cands: Vec<Candidate> = (0..n)
                .map(|i| cand(&format!("35{i}"), &format!("m{i}"), None, true, 0))
                .collect();
            let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
            let none: &[String] = &[];
            for i in 0..messages {
                // Every message to someone new: sticky plays no part.
                let to = format!("+1{i}");
                let Choice::Modem(id) = router.choose(&req(&to, None, none), &cands, NOW + i as i64) else {
                    panic!("no choice")
                };
                if let Some(c) = cands.iter_mut().find(|c| c.id == id) {
                    c.load += 1;
                }
            }
            let loads: Vec<u64> = cands.iter().map(|c| c.load).collect();
            let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "{:?}", loads);
            // Also when the load drains at once (sent as fast as bound):
            // the parts sent today break the tie.
            let mut router = Router::with_seed(RoutingConfig::default(), LimitsConfig::default(), 1);
            let idle: Vec<Candidate> = cands.iter().map(|c| Candidate { load: 0, ..c.clone() }).collect();
            let mut sent = vec![0u64; n];
            for i in 0..messages {
                let to = format!("+1{i}");
                let Choice::Modem(id) = router.choose(&req(&to, None, none), &idle, NOW + i as i64) else {
                    panic!("no choice")
                };
                router.record_sent(&id, None, &to, NOW + i as i64);
                if let Some(k) = idle.iter().position(|c| c.id == id) {
                    sent[k] += 1;
                }
            }
            let (lo, hi) = (sent.iter().min().unwrap(), sent.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "{:?}", sent);
        }
    }
}
