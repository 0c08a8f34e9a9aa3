-- smsgate store, schema version 1. Times are unix milliseconds (INTEGER).
-- Every query on the hot path has an index below; see docs/store.md.

-- Store-wide monotonic counters (maybe-sent window, unmatched reports, ...).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- Modems by id (IMEI), never by /dev path.
CREATE TABLE modems (
    id            TEXT PRIMARY KEY,
    manufacturer  TEXT,
    model         TEXT,
    revision      TEXT,
    iccid         TEXT,
    state         TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- SIMs by ICCID.
CREATE TABLE sims (
    iccid         TEXT PRIMARY KEY,
    imsi          TEXT,
    own_number    TEXT,
    modem         TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- Per-modem counters per UTC day (day = unix ms / 86400000).
CREATE TABLE daily_counters (
    modem    TEXT NOT NULL,
    day      INTEGER NOT NULL,
    sent     INTEGER NOT NULL DEFAULT 0,
    received INTEGER NOT NULL DEFAULT 0,
    failed   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (modem, day)
) WITHOUT ROWID;

-- Outbound: message -> parts -> attempts.
CREATE TABLE out_messages (
    id             INTEGER PRIMARY KEY,
    idem_key       TEXT UNIQUE,          -- lookup by idempotency key
    recipient      TEXT NOT NULL,
    text           TEXT,
    client         TEXT,
    pin_modem      TEXT,                 -- only this modem may send it
    modem          TEXT,                 -- modem the parts are bound to
    state          TEXT NOT NULL,
    reason         TEXT,
    parts_total    INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    send_at_ms     INTEGER NOT NULL,
    valid_until_ms INTEGER
);
CREATE INDEX out_messages_expiry ON out_messages (valid_until_ms)
    WHERE valid_until_ms IS NOT NULL AND state IN ('queued', 'sending');

CREATE TABLE out_parts (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES out_messages (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    payload          BLOB NOT NULL,
    recipient_digits TEXT NOT NULL,      -- for status-report matching
    state            TEXT NOT NULL,
    reason           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    bound_modem      TEXT,               -- = out_messages.modem, for claiming
    modem            TEXT,                -- modem of the last attempt
    current_attempt  INTEGER,
    mr               INTEGER,
    sent_ms          INTEGER,
    delivered_ms     INTEGER,
    report_status    INTEGER,
    maybe_sent       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (message_id, seq)
);
-- claim due parts: those bound to the claiming modem, and unbound ones
CREATE INDEX out_parts_due ON out_parts (bound_modem, next_attempt_ms, id) WHERE state = 'queued';
-- requeue a vanished modem's parts, crash recovery
CREATE INDEX out_parts_sending ON out_parts (modem) WHERE state = 'sending';
-- match a status report
CREATE INDEX out_parts_report ON out_parts (modem, mr, sent_ms) WHERE mr IS NOT NULL;

CREATE TABLE out_attempts (
    id          INTEGER PRIMARY KEY,
    part_id     INTEGER NOT NULL REFERENCES out_parts (id) ON DELETE CASCADE,
    modem       TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    outcome     TEXT NOT NULL,           -- sending, sent, temporary, permanent, interrupted
    mr          INTEGER,
    error       TEXT
);
CREATE INDEX out_attempts_part ON out_attempts (part_id);
CREATE INDEX out_attempts_open ON out_attempts (id) WHERE outcome = 'sending';

-- Every status report read, matched (part_id) or not.
CREATE TABLE status_reports (
    id           INTEGER PRIMARY KEY,
    modem        TEXT NOT NULL,
    mr           INTEGER NOT NULL,
    recipient    TEXT NOT NULL,
    status       INTEGER NOT NULL,
    scts_ms      INTEGER,
    discharge_ms INTEGER,
    received_ms  INTEGER NOT NULL,
    pdu          BLOB NOT NULL,
    part_id      INTEGER REFERENCES out_parts (id) ON DELETE SET NULL,
    UNIQUE (modem, pdu)                  -- a re-reported copy is not new
);
CREATE INDEX status_reports_part ON status_reports (part_id);

-- Inbound: parts -> reassembly groups -> messages.
CREATE TABLE in_groups (
    id       INTEGER PRIMARY KEY,
    scope    TEXT NOT NULL,              -- 'sim:<iccid>' or 'modem:<id>'
    sender   TEXT NOT NULL,
    ref      INTEGER NOT NULL,
    total    INTEGER NOT NULL,
    modem    TEXT NOT NULL,
    sim      TEXT,
    last_ms  INTEGER NOT NULL,            -- when its newest part arrived
    open     INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX in_groups_key ON in_groups (scope, sender, ref, total) WHERE open = 1;
CREATE INDEX in_groups_expiry ON in_groups (last_ms) WHERE open = 1;

CREATE TABLE in_messages (
    id               INTEGER PRIMARY KEY,
    modem            TEXT NOT NULL,
    sim              TEXT,
    sender           TEXT NOT NULL,
    scts_ms          INTEGER NOT NULL,
    received_ms      INTEGER NOT NULL,
    completed_ms     INTEGER NOT NULL,
    text             TEXT,
    data             BLOB,
    parts_total      INTEGER NOT NULL,
    parts_received   INTEGER NOT NULL,
    partial          INTEGER NOT NULL DEFAULT 0,
    missing          TEXT,               -- comma-separated part numbers
    bus_state        INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 delivered, 2 acked
    bus_delivered_ms INTEGER,
    bus_acked_ms     INTEGER
);
CREATE INDEX in_messages_unacked ON in_messages (id) WHERE bus_state < 2;

CREATE TABLE in_parts (
    id            INTEGER PRIMARY KEY,
    scope         TEXT NOT NULL,
    modem         TEXT NOT NULL,
    sim           TEXT,
    sender        TEXT NOT NULL,
    scts_ms       INTEGER NOT NULL,
    ref           INTEGER,
    total         INTEGER,
    seq           INTEGER,
    text          TEXT,
    data          BLOB,
    pdu           BLOB NOT NULL,
    storage_index INTEGER,
    received_ms   INTEGER NOT NULL,
    group_id      INTEGER REFERENCES in_groups (id),
    message_id    INTEGER REFERENCES in_messages (id),
    UNIQUE (scope, pdu)                  -- de-duplication of re-reported PDUs
);
CREATE INDEX in_parts_group ON in_parts (group_id, seq);
CREATE INDEX in_parts_message ON in_parts (message_id);

-- Append-only event log; AUTOINCREMENT keeps cursors monotonic even after pruning.
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms   INTEGER NOT NULL,
    payload TEXT NOT NULL
);
