-- `tenancy.push` plans its insert once per session (issue 28: push at 0.7 of a plain
-- INSERT). PL/pgSQL caches the statement's plan, but the plan cache compares a generic
-- plan against the custom plans of the first calls: after pushes of one event, a custom
-- plan looks cheaper and every later call, whatever its size, was planned again (0.2 ms
-- of a 0.27 ms push of one event, measured in the server's log). The generic plan is the
-- one that fits every size: it probes each aggregate's latest sequence by the primary key
-- (sequential scans are off in the function) and inserts the rows as they come.
ALTER FUNCTION tenancy.push(text[], text[], text[], text[], int2[], timestamptz[], jsonb[], text[],
                            text[], int4[], bool[], int8[], int8[], text[], text, bool)
    SET plan_cache_mode = force_generic_plan;
