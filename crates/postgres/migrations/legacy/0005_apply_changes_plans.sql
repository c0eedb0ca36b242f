-- PL/pgSQL caches a generic plan per statement and session. Planned while the tables are
-- still small (a fresh database, the start of a catch-up), those plans are sequential
-- scans, and they stay for the life of the connection while the tables grow: measured,
-- the catch-up spent most of its time in them. Every statement of apply_op looks rows up
-- by key, so the entry points plan with sequential scans disabled: the index is chosen
-- whatever the statistics say. (The setting also covers the foreign-key checks these
-- statements fire, which are planned on first use as well.) apply_op is internal: call
-- one of the two entry points.
ALTER FUNCTION zitadel.apply_change(jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION zitadel.apply_changes(text[], jsonb[], timestamptz[]) SET enable_seqscan = off;
