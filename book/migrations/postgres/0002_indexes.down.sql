DROP INDEX fills_by_order;
DROP INDEX events_by_category;
DROP INDEX intents_by_status;
