-- Projection bookkeeping (schema.md).
CREATE SCHEMA IF NOT EXISTS projections;

CREATE TABLE IF NOT EXISTS projections.current_states (
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

CREATE TABLE IF NOT EXISTS projections.failed_events2 (
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
