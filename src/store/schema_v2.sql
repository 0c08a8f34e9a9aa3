-- smsgate store, schema version 2: the router.
-- route_history: parts sent since a time (sticky peers, per-SIM counters).
CREATE INDEX out_parts_sent ON out_parts (sent_ms) WHERE sent_ms IS NOT NULL;
