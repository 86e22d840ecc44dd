-- Orders the venue cancelled (on request before a close, or on expiry) are `cancelled`;
-- a close no longer marks its order (the old `closed`, which stopped fill syncing for a
-- partly filled order: the order becomes `filled` if it was, else `open` again, so the
-- book syncs and cancels it). Operator commands carry an id and are applied once.
--
-- SQLite cannot change a CHECK in place: `orders` is rebuilt, and `fills` (which
-- references it) with it: the new fills reference the new orders, and SQLite rewrites that
-- reference when the new orders table takes the old name, so no foreign key breaks.
CREATE TABLE orders_new (
    order_id        TEXT PRIMARY KEY,
    intent_id       TEXT NOT NULL UNIQUE REFERENCES intents (intent_id),
    client_order_id TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('open', 'filled', 'cancelled')),
    ts              INTEGER NOT NULL
);
INSERT INTO orders_new (order_id, intent_id, client_order_id, status, ts)
SELECT o.order_id, o.intent_id, o.client_order_id,
       CASE WHEN o.status <> 'closed' THEN o.status
            WHEN (SELECT COALESCE(SUM(f.qty), 0) FROM fills f WHERE f.order_id = o.order_id)
                 >= (SELECT i.size FROM intents i WHERE i.intent_id = o.intent_id) THEN 'filled'
            ELSE 'open' END,
       o.ts
FROM orders o;
CREATE TABLE fills_new (
    fill_id  TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders_new (order_id),
    qty      INTEGER NOT NULL CHECK (qty > 0),
    price    INTEGER NOT NULL CHECK (price > 0),
    ts       INTEGER NOT NULL
);
INSERT INTO fills_new (fill_id, order_id, qty, price, ts)
SELECT fill_id, order_id, qty, price, ts FROM fills;
DROP TABLE fills;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
ALTER TABLE fills_new RENAME TO fills;
CREATE INDEX fills_by_order ON fills (order_id);

CREATE TABLE operator_commands (
    command_id TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    answer     TEXT NOT NULL,
    ts         INTEGER NOT NULL
);
