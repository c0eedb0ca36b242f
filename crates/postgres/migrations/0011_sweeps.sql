-- Where the next sweep of a projection starts (issue 28: what a running engine does
-- periodically must cost by the events, not by the number of instances). Every event of
-- the projection before `swept_from` (less a margin for late commits) was seen by a sweep,
-- or belongs to an instance whose failures are still retried. One row per projection,
-- kept under the projection's name like its cursors: a rebuild's switch moves it with them
-- and a reset deletes it; without a row the next sweep walks every instance.
CREATE TABLE tenancy.sweeps (
    projection_name TEXT        NOT NULL PRIMARY KEY,
    swept_from      NUMERIC     NOT NULL,
    last_swept      TIMESTAMPTZ NOT NULL DEFAULT now()
);
