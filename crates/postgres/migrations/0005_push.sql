-- The push of tenancy-eventstore as one call: the per-instance shared locks (held until
-- commit; the gap-safe read waits them out; the same key ZITADEL's pushers use), the rows —
-- each with its given sequence or the aggregate's latest plus the event's rank among the
-- batch's events of that aggregate (counted by the caller: no sort here); a concurrent push
-- that took the same one makes the primary key fail — `position` stamped per row with
-- clock_timestamp(), and the notifications (sent at commit). A function, so that its plan
-- is cached once per session with sequential scans disabled.
--
-- The events whose rows tenancy's commands wrote (`v3`) are listed in
-- tenancy.written_events, in the same statement: the projection skips exactly those.
-- `adopted`: the event store is ZITADEL's (tenancy_postgres::layout). Its written_by_v3
-- column (if it has one: older stores do not) is ZITADEL's and keeps its default, so
-- ZITADEL's own handlers still project these events into ZITADEL's tables. In a store
-- tenancy owns, written_by_v3 is set as events.md says. PL/pgSQL plans a statement when it
-- first runs, so the branch that names written_by_v3 is never planned on a store without
-- that column.
CREATE FUNCTION tenancy.push(
    instance_ids text[], aggregate_types text[], aggregate_ids text[], event_types text[],
    revisions int2[], created_ats timestamptz[], payloads jsonb[], creators text[], owners text[],
    orders int4[], v3 bool[], sequences int8[], ranks int8[], instances text[], channel text,
    adopted bool)
RETURNS TABLE (in_tx_order int4, "sequence" int8, "position" numeric, created_at timestamptz)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared('eventstore.events2'::regclass::oid::int4, hashtext(i))
    FROM unnest(instances) AS i ORDER BY i;
    IF NOT adopted THEN
        RETURN QUERY
        WITH inserted AS (
            INSERT INTO eventstore.events2 AS t (instance_id, aggregate_type, aggregate_id, event_type, "sequence",
                revision, created_at, payload, creator, "owner", "position", in_tx_order, written_by_v3)
            SELECT e.i, e.t, e.id, e.et,
                   coalesce(e.seq, coalesce((SELECT x."sequence" FROM eventstore.events2 x
                                              WHERE x.instance_id = e.i AND x.aggregate_type = e.t AND x.aggregate_id = e.id
                                              ORDER BY x."sequence" DESC LIMIT 1), 0) + e.rank),
                   e.rev, coalesce(e.at, statement_timestamp()), e.p, e.c, e.o,
                   EXTRACT(EPOCH FROM clock_timestamp()), e.ord, e.v3
            -- unnest yields the arrays in order and nothing here reorders the rows, so
            -- positions rise with in_tx_order without a sort.
            FROM unnest(instance_ids, aggregate_types, aggregate_ids, event_types, revisions, created_ats,
                        payloads, creators, owners, orders, v3, sequences, ranks)
                     AS e(i, t, id, et, rev, at, p, c, o, ord, v3, seq, rank)
            RETURNING t.instance_id, t.aggregate_type, t.aggregate_id, t.in_tx_order, t."sequence",
                      t."position", t.created_at),
        written AS (
            INSERT INTO tenancy.written_events (instance_id, aggregate_type, aggregate_id, "sequence")
            SELECT n.instance_id, n.aggregate_type, n.aggregate_id, n."sequence"
            FROM inserted n
            WHERE (v3)[n.in_tx_order])
        SELECT n.in_tx_order, n."sequence", n."position", n.created_at FROM inserted n;
    ELSE
        RETURN QUERY
        WITH inserted AS (
            INSERT INTO eventstore.events2 AS t (instance_id, aggregate_type, aggregate_id, event_type, "sequence",
                revision, created_at, payload, creator, "owner", "position", in_tx_order)
            SELECT e.i, e.t, e.id, e.et,
                   coalesce(e.seq, coalesce((SELECT x."sequence" FROM eventstore.events2 x
                                              WHERE x.instance_id = e.i AND x.aggregate_type = e.t AND x.aggregate_id = e.id
                                              ORDER BY x."sequence" DESC LIMIT 1), 0) + e.rank),
                   e.rev, coalesce(e.at, statement_timestamp()), e.p, e.c, e.o,
                   EXTRACT(EPOCH FROM clock_timestamp()), e.ord
            FROM unnest(instance_ids, aggregate_types, aggregate_ids, event_types, revisions, created_ats,
                        payloads, creators, owners, orders, sequences, ranks)
                     AS e(i, t, id, et, rev, at, p, c, o, ord, seq, rank)
            RETURNING t.instance_id, t.aggregate_type, t.aggregate_id, t.in_tx_order, t."sequence",
                      t."position", t.created_at),
        written AS (
            INSERT INTO tenancy.written_events (instance_id, aggregate_type, aggregate_id, "sequence")
            SELECT n.instance_id, n.aggregate_type, n.aggregate_id, n."sequence"
            FROM inserted n
            WHERE (v3)[n.in_tx_order])
        SELECT n.in_tx_order, n."sequence", n."position", n.created_at FROM inserted n;
    END IF;
    PERFORM pg_notify(channel, i) FROM unnest(instances) AS i;
END;
$$;
