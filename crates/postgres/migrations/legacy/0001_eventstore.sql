-- The event store, compatible with ZITADEL's eventstore.events2 (schema.md).
CREATE SCHEMA IF NOT EXISTS eventstore;

CREATE TABLE IF NOT EXISTS eventstore.events2 (
    instance_id    TEXT        NOT NULL,
    aggregate_type TEXT        NOT NULL,
    aggregate_id   TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    "sequence"     BIGINT      NOT NULL,
    revision       SMALLINT    NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    payload        JSONB,
    creator        TEXT        NOT NULL,
    "owner"        TEXT        NOT NULL,
    "position"     NUMERIC     NOT NULL,
    in_tx_order    INTEGER     NOT NULL,
    written_by_v3  BOOLEAN     NOT NULL DEFAULT false,
    PRIMARY KEY (instance_id, aggregate_type, aggregate_id, "sequence")
);

-- Projection reads: one instance, some aggregate and event types, in position order.
CREATE INDEX IF NOT EXISTS events2_projection
    ON eventstore.events2 (instance_id, aggregate_type, event_type, "position");
-- Global order (the sort key), for catch-up across instances and `status`.
CREATE INDEX IF NOT EXISTS events2_position
    ON eventstore.events2 ("position", in_tx_order);
-- Aggregate reads are served by the primary key.

CREATE TABLE IF NOT EXISTS eventstore.unique_constraints (
    instance_id  TEXT NOT NULL,
    unique_type  TEXT NOT NULL,
    unique_field TEXT NOT NULL,
    PRIMARY KEY (instance_id, unique_type, unique_field)
);
