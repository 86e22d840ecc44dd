-- Back to the statuses of migration 1: a cancelled order becomes `closed`.
DROP TABLE operator_commands;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
UPDATE orders SET status = 'closed' WHERE status = 'cancelled';
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('open', 'filled', 'closed'));
