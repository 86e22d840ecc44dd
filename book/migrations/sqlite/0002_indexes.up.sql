-- Lookups that recovery and the invariant checks make on every restart.
CREATE INDEX intents_by_status ON intents (status);
CREATE INDEX events_by_category ON events (run_id, category);
CREATE INDEX fills_by_order ON fills (order_id);
