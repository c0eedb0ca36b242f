-- tenancy's own bookkeeping, in a schema of its own (schema.md, "Sharing a database with
-- ZITADEL"): ZITADEL keeps its cursors in projections.current_states, with triggers of its
-- own, and names a handler `relational_tables` as well; nothing of ZITADEL's can reach
-- these tables. The runner creates the schema and its ledger (tenancy.migrations) before
-- this file runs, in the same transaction.

CREATE TABLE tenancy.current_states (
    projection_name TEXT        NOT NULL,
    instance_id     TEXT        NOT NULL,
    "position"      NUMERIC     NOT NULL,
    in_tx_order     INTEGER     NOT NULL,
    aggregate_type  TEXT        NOT NULL,
    aggregate_id    TEXT        NOT NULL,
    "sequence"      BIGINT      NOT NULL,
    event_date      TIMESTAMPTZ NOT NULL,
    last_updated    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection_name, instance_id)
);

CREATE TABLE tenancy.failed_events2 (
    projection_name     TEXT        NOT NULL,
    instance_id         TEXT        NOT NULL,
    aggregate_type      TEXT        NOT NULL,
    aggregate_id        TEXT        NOT NULL,
    failed_sequence     BIGINT      NOT NULL,
    event_creation_date TIMESTAMPTZ NOT NULL,
    failure_count       SMALLINT    NOT NULL DEFAULT 1,
    error               TEXT        NOT NULL,
    last_failed         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection_name, instance_id, aggregate_type, aggregate_id, failed_sequence)
);

-- In an event store tenancy adopted (ZITADEL's), `written_by_v3` belongs to ZITADEL: it
-- marks events whose rows ZITADEL's own v3 code wrote into ZITADEL's tables. The events
-- whose rows tenancy's commands wrote into tenancy's tables are listed here instead,
-- written by tenancy.push in the same transaction; the projection skips exactly these.
CREATE TABLE tenancy.written_events (
    instance_id    TEXT   NOT NULL,
    aggregate_type TEXT   NOT NULL,
    aggregate_id   TEXT   NOT NULL,
    "sequence"     BIGINT NOT NULL,
    PRIMARY KEY (instance_id, aggregate_type, aggregate_id, "sequence")
);

-- What the runner found and decided, once (tenancy_postgres::layout).
CREATE TABLE tenancy.layout (
    singleton          BOOLEAN     NOT NULL DEFAULT true PRIMARY KEY CHECK (singleton),
    relational_schema  TEXT        NOT NULL,
    event_store        TEXT        NOT NULL CHECK (event_store IN ('owned', 'adopted')),
    zitadel_present    BOOLEAN     NOT NULL,
    decided_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
