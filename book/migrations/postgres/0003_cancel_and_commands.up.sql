-- Orders the venue cancelled (on request before a close, or on expiry) are `cancelled`;
-- a close no longer marks its order (the old `closed`, which stopped fill syncing for a
-- partly filled order: the order becomes `filled` if it was, else `open` again, so the
-- book syncs and cancels it). Operator commands carry an id and are applied once.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
UPDATE orders o SET status =
    CASE WHEN (SELECT COALESCE(SUM(f.qty), 0) FROM fills f WHERE f.order_id = o.order_id)
              >= (SELECT i.size FROM intents i WHERE i.intent_id = o.intent_id) THEN 'filled'
         ELSE 'open' END
WHERE o.status = 'closed';
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('open', 'filled', 'cancelled'));

CREATE TABLE operator_commands (
    command_id TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    answer     TEXT NOT NULL,
    ts         BIGINT NOT NULL
);
