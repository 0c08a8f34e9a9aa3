-- smsgate store, schema version 4: when a held message was released.
-- A released message is shown to the bus at its release event only, never at
-- the event of its arrival (which the gate decided as held): that keeps the
-- bus's order the gate's order, and a message is not shown twice.
ALTER TABLE in_messages ADD COLUMN released_seq INTEGER;
