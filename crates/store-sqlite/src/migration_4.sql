-- Migration 4: publish / subscribe of the exchange (docs/exchange.md).
--
-- Published events, once per source key (an outbox event, a dossier's
-- lateness); event ids are random UUIDs, unique across nodes.
CREATE TABLE IF NOT EXISTS pubsub_events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    source_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    published_at INTEGER NOT NULL
);

-- Subscriptions of client subsystems, granted by province administrators;
-- ended ones are kept (deleted_at) with their deliveries.
CREATE TABLE IF NOT EXISTS pubsub_subscriptions (
    id INTEGER PRIMARY KEY,
    client TEXT NOT NULL,
    event_type TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('push', 'pull')),
    url TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX IF NOT EXISTS pubsub_subscriptions_live ON pubsub_subscriptions(event_type) WHERE deleted_at IS NULL;

-- One row per (subscription, event): pending → delivered | acked | failed.
CREATE TABLE IF NOT EXISTS pubsub_deliveries (
    id INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES pubsub_subscriptions(id),
    event_pk INTEGER NOT NULL REFERENCES pubsub_events(id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'acked', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until INTEGER,
    last_status INTEGER,
    last_error TEXT,
    updated_at INTEGER NOT NULL,
    done_at INTEGER,
    UNIQUE (subscription_id, event_pk)
);
-- Push workers scan only pending deliveries that are due; pulls read a
-- subscription's pending ones in order.
CREATE INDEX IF NOT EXISTS pubsub_deliveries_due ON pubsub_deliveries(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS pubsub_deliveries_sub ON pubsub_deliveries(subscription_id, state, event_pk);

-- The lateness job reads the dossiers being processed by due time.
CREATE INDEX IF NOT EXISTS dossiers_running_due ON dossiers(due_at) WHERE status IN ('accepted', 'processing');
