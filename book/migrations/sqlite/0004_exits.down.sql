-- Back to positions without their exit order.
ALTER TABLE positions DROP COLUMN exit_order_id;
