-- A close places an exit order at the venue (reduce-only, client order id INTENT-exit): the
-- position remembers it, so the book can tell the venue's exits from orders it never made.
ALTER TABLE positions ADD COLUMN exit_order_id TEXT;
