-- smsgate store, schema version 3: privacy tables (consent, handles, held messages, forget audit).
-- See docs/privacy.md. Numbers are E.164; times unix milliseconds.

-- One row per number that ever sent a keyword or was told how to join.
CREATE TABLE consent (
    number       TEXT PRIMARY KEY,
    handle       TEXT NOT NULL,
    state        TEXT NOT NULL,        -- joined, stopped, pending (told how to join, no answer yet)
    since_ms     INTEGER NOT NULL,     -- when the state was entered
    keyword      TEXT,                 -- join / stop: what changed it
    modem        TEXT,                 -- modem the keyword came through
    explained_ms INTEGER               -- last join explanation sent (rate limit)
) WITHOUT ROWID;
CREATE INDEX consent_handle ON consent (handle);
CREATE INDEX consent_pending ON consent (explained_ms) WHERE state = 'pending';

-- Handle -> number, written when a number is first seen; last_seen_ms drives retention.
CREATE TABLE handles (
    handle        TEXT PRIMARY KEY,
    number        TEXT NOT NULL UNIQUE,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX handles_last_seen ON handles (last_seen_ms);

-- Inbound messages held until their sender joins (deleted at until_ms).
CREATE TABLE held (
    message  INTEGER PRIMARY KEY REFERENCES in_messages (id) ON DELETE CASCADE,
    number   TEXT NOT NULL,
    held_ms  INTEGER NOT NULL,
    until_ms INTEGER NOT NULL
);
CREATE INDEX held_number ON held (number);
CREATE INDEX held_until ON held (until_ms);

-- That a forget happened: the handle and the time, nothing else.
CREATE TABLE forget_audit (
    id     INTEGER PRIMARY KEY,
    handle TEXT NOT NULL,
    at_ms  INTEGER NOT NULL
);

-- Retention and erasure find a person's and an age's rows by index.
CREATE INDEX in_messages_sender ON in_messages (sender);
CREATE INDEX in_messages_completed ON in_messages (completed_ms);
CREATE INDEX out_messages_recipient ON out_messages (recipient);
CREATE INDEX out_messages_updated ON out_messages (updated_ms);
CREATE INDEX status_reports_received ON status_reports (received_ms);
CREATE INDEX status_reports_recipient ON status_reports (recipient);
CREATE INDEX in_groups_sender ON in_groups (sender);
