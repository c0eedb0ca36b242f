-- A counter per instance that tells a catch-up whether the rows it kept in memory across
-- its batches are still the tables' (issue 28; tenancy_postgres::kept). Every write of an
-- instance's rows that keeps nothing — a v3 command's change (tenancy_postgres::apply) —
-- bumps the instance's counter first and holds its lock until it commits; a batch that
-- keeps rows bumps the counters of its instances before it reads anything and keeps an
-- instance's rows only while the counter moved by its own bumps alone. Rows are added
-- by the first bump; nothing else reads the table.
CREATE TABLE tenancy.row_versions (
    instance_id TEXT   NOT NULL PRIMARY KEY,
    version     BIGINT NOT NULL
);
