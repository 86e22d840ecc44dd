-- The book's logical schema (SPEC §2). Integers and text only: money and quantities are
-- fixed-point integers, time is logical milliseconds. Kept column-for-column equal to
-- migrations/sqlite/0001_core.up.sql so that canonical dumps of both are the same text.

CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    mode        TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
    dataset_sha TEXT NOT NULL,
    config_sha  TEXT NOT NULL,
    seed        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished')),
    last_seq    BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);

CREATE TABLE events (
    run_id   TEXT NOT NULL REFERENCES runs (run_id),
    seq      BIGINT NOT NULL CHECK (seq >= 1),
    ts       BIGINT NOT NULL,
    category TEXT NOT NULL,
    type     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE intents (
    intent_id  TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs (run_id),
    strategy   TEXT NOT NULL,
    window_id  TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    side       TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    size       BIGINT NOT NULL CHECK (size > 0),
    price      BIGINT NOT NULL CHECK (price > 0),
    bar_t      BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'executing', 'completed', 'rejected')),
    created_ts BIGINT NOT NULL,
    updated_ts BIGINT NOT NULL
);

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY,
    intent_id       TEXT NOT NULL UNIQUE REFERENCES intents (intent_id),
    client_order_id TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('open', 'filled', 'closed')),
    ts              BIGINT NOT NULL
);

CREATE TABLE fills (
    fill_id  TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    qty      BIGINT NOT NULL CHECK (qty > 0),
    price    BIGINT NOT NULL CHECK (price > 0),
    ts       BIGINT NOT NULL
);

-- One position per intent; qty is signed (buy > 0, sell < 0) and equals the sum of the
-- fills of the intent's order.
CREATE TABLE positions (
    intent_id   TEXT PRIMARY KEY REFERENCES intents (intent_id),
    strategy    TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    qty         BIGINT NOT NULL,
    cost        BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    exit_price  BIGINT,
    realized_pnl BIGINT,
    updated_ts  BIGINT NOT NULL
);

CREATE TABLE window_entries (
    window_id   TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    intent_id   TEXT NOT NULL REFERENCES intents (intent_id),
    ts          BIGINT NOT NULL,
    PRIMARY KEY (window_id, strategy_id)
);

CREATE TABLE position_counters (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    open_count   BIGINT NOT NULL CHECK (open_count >= 0),
    max_open     BIGINT NOT NULL CHECK (max_open >= 0),
    exposure     BIGINT NOT NULL CHECK (exposure >= 0),
    max_exposure BIGINT NOT NULL CHECK (max_exposure >= 0),
    CHECK (open_count <= max_open),
    CHECK (exposure <= max_exposure)
);

CREATE TABLE circuit_breaker (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    state         TEXT NOT NULL CHECK (state IN ('CLOSED', 'OPEN')),
    reason        TEXT,
    failure_count BIGINT NOT NULL CHECK (failure_count >= 0),
    updated_ts    BIGINT NOT NULL
);

-- Append-only: every transition of the breaker, who made it and why.
CREATE TABLE breaker_audit (
    seq        BIGINT PRIMARY KEY CHECK (seq >= 1),
    ts         BIGINT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    operator   TEXT NOT NULL CHECK (operator <> '')
);

CREATE TABLE daily_limits (
    day         BIGINT PRIMARY KEY,
    pnl         BIGINT NOT NULL,
    trade_count BIGINT NOT NULL CHECK (trade_count >= 0)
);

CREATE TABLE last_signals (
    strategy TEXT NOT NULL,
    symbol   TEXT NOT NULL,
    params   TEXT NOT NULL,
    signal   TEXT NOT NULL,
    bar_t    BIGINT NOT NULL,
    PRIMARY KEY (strategy, symbol, params)
);

CREATE TABLE checkpoints (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    ts    BIGINT NOT NULL
);
