-- owned-event-store-only
-- The event store, compatible with ZITADEL's eventstore.events2 (schema.md). Only where no
-- event store exists: an existing one (ZITADEL's) is adopted as found and never altered.
-- Its indexes are built by the runner, CONCURRENTLY and only where no equivalent exists
-- (tenancy_postgres::migrate::STORE_INDEXES).
CREATE SCHEMA IF NOT EXISTS eventstore;

CREATE TABLE eventstore.events2 (
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

CREATE TABLE eventstore.unique_constraints (
    instance_id  TEXT NOT NULL,
    unique_type  TEXT NOT NULL,
    unique_field TEXT NOT NULL,
    PRIMARY KEY (instance_id, unique_type, unique_field)
);
