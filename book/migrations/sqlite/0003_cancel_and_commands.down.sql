-- Back to the statuses of migration 1: a cancelled order becomes `closed`.
DROP TABLE operator_commands;
CREATE TABLE orders_old (
    order_id        TEXT PRIMARY KEY,
    intent_id       TEXT NOT NULL UNIQUE REFERENCES intents (intent_id),
    client_order_id TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('open', 'filled', 'closed')),
    ts              INTEGER NOT NULL
);
INSERT INTO orders_old (order_id, intent_id, client_order_id, status, ts)
SELECT order_id, intent_id, client_order_id,
       CASE WHEN status = 'cancelled' THEN 'closed' ELSE status END, ts
FROM orders;
CREATE TABLE fills_old (
    fill_id  TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders_old (order_id),
    qty      INTEGER NOT NULL CHECK (qty > 0),
    price    INTEGER NOT NULL CHECK (price > 0),
    ts       INTEGER NOT NULL
);
INSERT INTO fills_old SELECT fill_id, order_id, qty, price, ts FROM fills;
DROP TABLE fills;
DROP TABLE orders;
ALTER TABLE orders_old RENAME TO orders;
ALTER TABLE fills_old RENAME TO fills;
CREATE INDEX fills_by_order ON fills (order_id);
