-- smsgate store, schema version 5: concatenation references and the router's
-- summary, kept per (SIM, recipient) and per (SIM, UTC day) in the same
-- transaction as each sent part, so the start-up restore reads a bounded
-- number of rows by index instead of grouping every sent part.
-- "sim" is the ICCID of the sending modem's SIM, or the modem id without one.

-- The reference a multipart message carries (TS 23.040 §9.2.3.24.1/.8) and
-- the SIM whose counter it came from; allocated once, when first bound.
ALTER TABLE out_messages ADD COLUMN concat_ref INTEGER;
ALTER TABLE out_messages ADD COLUMN concat_sim TEXT;

CREATE TABLE peers (
    sim          TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    next_ref     INTEGER NOT NULL DEFAULT 0,  -- next concatenation reference (0..65535)
    modem        TEXT,                        -- modem of the last send (sticky routing)
    last_sent_ms INTEGER,                     -- last part sent to them through this SIM
    PRIMARY KEY (sim, recipient)
) WITHOUT ROWID;
-- restore: recent peers, newest first; retention prunes old ones
CREATE INDEX peers_last_sent ON peers (last_sent_ms) WHERE last_sent_ms IS NOT NULL;
-- forget: a person's rows
CREATE INDEX peers_recipient ON peers (recipient);

CREATE TABLE sim_days (
    sim          TEXT NOT NULL,
    day          INTEGER NOT NULL,            -- unix ms / 86400000 (UTC)
    sent         INTEGER NOT NULL,            -- parts sent
    last_sent_ms INTEGER NOT NULL,
    PRIMARY KEY (sim, day)
) WITHOUT ROWID;
CREATE INDEX sim_days_day ON sim_days (day);

-- Filled once from what was sent before this version (the modem's SIM as
-- last recorded; the modem id without one).
INSERT INTO peers (sim, recipient, modem, last_sent_ms)
SELECT COALESCE(NULLIF(d.iccid, ''), p.modem) AS s, m.recipient, p.modem, MAX(p.sent_ms)
FROM out_parts p
JOIN out_messages m ON m.id = p.message_id
LEFT JOIN modems d ON d.id = p.modem
WHERE p.sent_ms IS NOT NULL AND p.modem IS NOT NULL
GROUP BY s, m.recipient;

INSERT INTO sim_days (sim, day, sent, last_sent_ms)
SELECT COALESCE(NULLIF(d.iccid, ''), p.modem) AS s, p.sent_ms / 86400000 AS dd, COUNT(*),
       MAX(p.sent_ms)
FROM out_parts p
LEFT JOIN modems d ON d.id = p.modem
WHERE p.sent_ms IS NOT NULL AND p.modem IS NOT NULL
GROUP BY s, dd;
