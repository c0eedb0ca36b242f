-- Host resolution caches (tenancy_postgres::hosts) learn of every committed change that
-- can alter a mapping — host -> instance (live custom instance domains) and verified
-- domain -> organization — through NOTIFY on channel `tenancy_hosts`. The notifications
-- come from triggers on the tables, so v3 commands, the projection's batches and bulk
-- writes, and hand-written SQL alike send them; PostgreSQL delivers them at commit, and
-- not at all on rollback.
--
-- Payload: lines "<instance_id> <lower(domain)>", or "*" (forget everything) for large
-- statements, TRUNCATE, and instances or organizations removed or restored. A payload
-- stays far below NOTIFY's 8000-byte limit.

-- Sends `lines` (at most 17 asked for: more than 16 means "many"), or `*`.
CREATE FUNCTION tenancy.notify_hosts(lines text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    payload text := array_to_string(lines, E'\n');
BEGIN
    IF cardinality(lines) = 0 THEN
        RETURN;
    END IF;
    -- 16 lines of at most 255 + 1 + an id stay below the limit; an id longer than 200
    -- characters is not a ZITADEL id, but must not fail the write either.
    IF cardinality(lines) > 16 OR octet_length(payload) > 7900 THEN
        payload := '*';
    END IF;
    PERFORM pg_notify('tenancy_hosts', payload);
END
$$;

CREATE FUNCTION tenancy.notify_domain_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- PL/pgSQL plans a statement when it first runs: each branch names only the
    -- transition tables its event has.
    IF TG_OP = 'INSERT' THEN
        PERFORM tenancy.notify_hosts(ARRAY(
            SELECT DISTINCT r.instance_id || ' ' || lower(r.domain) FROM new_rows AS r LIMIT 17));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM tenancy.notify_hosts(ARRAY(
            SELECT DISTINCT r.instance_id || ' ' || lower(r.domain) FROM old_rows AS r LIMIT 17));
    ELSE
        PERFORM tenancy.notify_hosts(ARRAY(
            SELECT DISTINCT r.instance_id || ' ' || lower(r.domain)
              FROM (SELECT instance_id, domain FROM old_rows
                    UNION ALL SELECT instance_id, domain FROM new_rows) AS r LIMIT 17));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION tenancy.notify_hosts_flush() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenancy_hosts', '*');
    RETURN NULL;
END
$$;

-- An instance or organization removed or restored: the domains it owns resolve
-- differently. Row-level, so that only real changes of deleted_at notify. The tables are
-- named through TG_TABLE_SCHEMA: triggers also fire in sessions with another search_path.
CREATE FUNCTION tenancy.notify_owner_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owner_row record;
    lines text[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        owner_row := OLD;
    ELSE
        owner_row := NEW;
    END IF;
    IF TG_TABLE_NAME = 'instances' THEN
        EXECUTE format(
            'SELECT ARRAY(SELECT DISTINCT instance_id || '' '' || lower(domain) FROM %I.instance_domains
                           WHERE instance_id = $1 AND type = ''custom'' LIMIT 17)',
            TG_TABLE_SCHEMA)
        INTO lines USING owner_row.id;
    ELSE
        EXECUTE format(
            'SELECT ARRAY(SELECT DISTINCT instance_id || '' '' || lower(domain) FROM %I.org_domains
                           WHERE instance_id = $1 AND org_id = $2 AND is_verified LIMIT 17)',
            TG_TABLE_SCHEMA)
        INTO lines USING owner_row.instance_id, owner_row.id;
    END IF;
    PERFORM tenancy.notify_hosts(lines);
    RETURN NULL;
END
$$;

CREATE TRIGGER instance_domains_notify_insert AFTER INSERT ON instance_domains
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_domain_rows();
CREATE TRIGGER instance_domains_notify_update AFTER UPDATE ON instance_domains
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_domain_rows();
CREATE TRIGGER instance_domains_notify_delete AFTER DELETE ON instance_domains
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_domain_rows();
CREATE TRIGGER instance_domains_notify_truncate AFTER TRUNCATE ON instance_domains
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_hosts_flush();

CREATE TRIGGER org_domains_notify_insert AFTER INSERT ON org_domains
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_domain_rows();
CREATE TRIGGER org_domains_notify_update AFTER UPDATE ON org_domains
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_domain_rows();
CREATE TRIGGER org_domains_notify_delete AFTER DELETE ON org_domains
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_domain_rows();
CREATE TRIGGER org_domains_notify_truncate AFTER TRUNCATE ON org_domains
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_hosts_flush();

CREATE TRIGGER instances_notify_removal AFTER UPDATE OF deleted_at ON instances
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION tenancy.notify_owner_row();
CREATE TRIGGER instances_notify_delete AFTER DELETE ON instances
    FOR EACH ROW EXECUTE FUNCTION tenancy.notify_owner_row();
CREATE TRIGGER instances_notify_truncate AFTER TRUNCATE ON instances
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_hosts_flush();
CREATE TRIGGER organizations_notify_removal AFTER UPDATE OF deleted_at ON organizations
    FOR EACH ROW WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION tenancy.notify_owner_row();
CREATE TRIGGER organizations_notify_delete AFTER DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION tenancy.notify_owner_row();
CREATE TRIGGER organizations_notify_truncate AFTER TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.notify_hosts_flush();
