-- Periodic work that one process of several does for all (issue 25: replicas share the
-- work): the sweep and, on an adopted store, the poll for pushes that send no
-- notification. A process does such a task only while it holds its lease: a row per task,
-- taken when free or expired, renewed by its holder (tenancy_eventstore::projection_state::
-- ProjectionState::take_lease). A holder that dies simply stops renewing; another process
-- takes the lease once it expires.
CREATE TABLE tenancy.leases (
    name   TEXT        NOT NULL PRIMARY KEY,
    holder TEXT        NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);
