-- The one implementation of the state changes of tenancy-core (`StateChange`, serialized
-- by serde: {"Variant": {fields}}): the repositories call tenancy.apply_change for one
-- change, the projection calls tenancy.apply_changes for a whole batch in one round trip.
-- The functions live in tenancy's schema; the tables they write are named unqualified and
-- resolved through the session's search_path (<relational schema>, tenancy), which every
-- tenancy connection sets (tenancy_postgres::pool). Errors keep their SQLSTATE and
-- constraint name, so tenancy-postgres maps them to domain errors in one place. Returns the
-- rows changed (0 when a change aims at no row).
-- One change: `op` is the variant's name, `d` its fields.
CREATE FUNCTION tenancy.apply_op(op text, d jsonb, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    inst text := coalesce(d ->> 'instance_id', d ->> 'id');
    org text := coalesce(d ->> 'org_id', CASE WHEN d ? 'instance_id' THEN d ->> 'id' END);
    dom text := d ->> 'domain';
    n bigint := 0;
    m bigint := 0;
BEGIN
    CASE op
    WHEN 'CreateInstance' THEN
        INSERT INTO instances (id, name, created_at, updated_at) VALUES (d ->> 'id', d ->> 'name', at, at)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, default_org_id = NULL, iam_project_id = NULL,
            console_client_id = NULL, console_app_id = NULL, default_language = NULL,
            created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, deleted_at = NULL
        WHERE instances.deleted_at IS NOT NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            RAISE unique_violation USING CONSTRAINT = 'instances_pkey',
                MESSAGE = 'duplicate key value violates unique constraint "instances_pkey"',
                DETAIL = format('Key (id)=(%s) already exists.', d ->> 'id');
        END IF;
    WHEN 'UpdateInstance' THEN
        UPDATE instances SET
            name = coalesce(d -> 'update' ->> 'name', name),
            default_org_id = coalesce(d -> 'update' ->> 'default_org_id', default_org_id),
            iam_project_id = coalesce(d -> 'update' ->> 'iam_project_id', iam_project_id),
            console_client_id = coalesce(d -> 'update' ->> 'console_client_id', console_client_id),
            console_app_id = coalesce(d -> 'update' ->> 'console_app_id', console_app_id),
            default_language = coalesce(d -> 'update' ->> 'default_language', default_language),
            updated_at = at
        WHERE id = inst AND deleted_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'RemoveInstance' THEN
        UPDATE instances SET deleted_at = at, updated_at = at WHERE id = inst AND deleted_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'CreateOrganization' THEN
        INSERT INTO organizations (instance_id, id, name, state, created_at, updated_at)
        VALUES (inst, org, d ->> 'name', 'active', at, at)
        ON CONFLICT (instance_id, id) DO UPDATE SET name = EXCLUDED.name, state = 'active',
            created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, deleted_at = NULL
        WHERE organizations.deleted_at IS NOT NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            RAISE unique_violation USING CONSTRAINT = 'organizations_pkey',
                MESSAGE = 'duplicate key value violates unique constraint "organizations_pkey"',
                DETAIL = format('Key (instance_id, id)=(%s, %s) already exists.', inst, org);
        END IF;
    WHEN 'UpdateOrganization' THEN
        UPDATE organizations SET name = coalesce(d -> 'update' ->> 'name', name),
            state = coalesce((d -> 'update' ->> 'state')::organization_state, state), updated_at = at
        WHERE instance_id = inst AND id = org AND deleted_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'RemoveOrganization' THEN
        UPDATE organizations SET deleted_at = at, updated_at = at
        WHERE instance_id = inst AND id = org AND deleted_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'RemoveOrganizationsOfInstance' THEN
        UPDATE organizations SET deleted_at = at, updated_at = at WHERE instance_id = inst AND deleted_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;

    WHEN 'InsertInstanceDomain' THEN
        IF jsonb_typeof(d -> 'kind') = 'object' THEN
            INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated, created_at, updated_at)
            VALUES (inst, dom, 'custom', (d -> 'kind' -> 'Custom' ->> 'is_primary')::boolean,
                    (d -> 'kind' -> 'Custom' ->> 'is_generated')::boolean, at, at);
        ELSE
            INSERT INTO instance_domains (instance_id, domain, type, created_at, updated_at)
            VALUES (inst, dom, 'trusted', at, at);
        END IF;
        n := 1;
    WHEN 'SetPrimaryInstanceDomain' THEN
        -- Unique indexes are checked per row: demote first, then promote; the lock
        -- serializes concurrent switches of one instance.
        PERFORM pg_advisory_xact_lock(hashtextextended('tenancy.primary:instance:' || inst, 0));
        IF EXISTS (SELECT 1 FROM instance_domains
                   WHERE instance_id = inst AND type = 'custom' AND lower(domain) = lower(dom)) THEN
            UPDATE instance_domains SET is_primary = false, updated_at = at
            WHERE instance_id = inst AND type = 'custom' AND is_primary AND lower(domain) <> lower(dom);
            GET DIAGNOSTICS m = ROW_COUNT;
            UPDATE instance_domains SET is_primary = true, updated_at = at
            WHERE instance_id = inst AND type = 'custom' AND lower(domain) = lower(dom);
            GET DIAGNOSTICS n = ROW_COUNT;
            n := n + m;
        END IF;
    WHEN 'DeleteInstanceDomain' THEN
        DELETE FROM instance_domains
        WHERE instance_id = inst AND type = (d ->> 'domain_type')::domain_type AND lower(domain) = lower(dom);
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'DeleteInstanceDomainsOfInstance' THEN
        DELETE FROM instance_domains WHERE instance_id = inst;
        GET DIAGNOSTICS n = ROW_COUNT;

    WHEN 'InsertOrgDomain' THEN
        INSERT INTO org_domains (instance_id, org_id, domain, created_at, updated_at) VALUES (inst, org, dom, at, at);
        n := 1;
    WHEN 'SetOrgDomainValidation' THEN
        UPDATE org_domains SET validation_type = (d ->> 'validation_type')::domain_validation_type,
            updated_at = at
        WHERE instance_id = inst AND org_id = org AND lower(domain) = lower(dom);
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetOrgDomainVerified' THEN
        UPDATE org_domains SET is_verified = true, updated_at = at
        WHERE instance_id = inst AND org_id = org AND lower(domain) = lower(dom);
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetPrimaryOrgDomain' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('tenancy.primary:org:' || inst || ':' || org, 0));
        IF EXISTS (SELECT 1 FROM org_domains
                   WHERE instance_id = inst AND org_id = org AND lower(domain) = lower(dom)) THEN
            UPDATE org_domains SET is_primary = false, updated_at = at
            WHERE instance_id = inst AND org_id = org AND is_primary AND lower(domain) <> lower(dom);
            GET DIAGNOSTICS m = ROW_COUNT;
            UPDATE org_domains SET is_primary = true, updated_at = at
            WHERE instance_id = inst AND org_id = org AND lower(domain) = lower(dom);
            GET DIAGNOSTICS n = ROW_COUNT;
            n := n + m;
        END IF;
    WHEN 'DeleteOrgDomain' THEN
        DELETE FROM org_domains WHERE instance_id = inst AND org_id = org AND lower(domain) = lower(dom);
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'DeleteOrgDomainsOfOrg' THEN
        DELETE FROM org_domains WHERE instance_id = inst AND org_id = org;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'DeleteOrgDomainsOfInstance' THEN
        DELETE FROM org_domains WHERE instance_id = inst;
        GET DIAGNOSTICS n = ROW_COUNT;

    WHEN 'AddInstanceDomain' THEN
        INSERT INTO domains (instance_id, org_id, domain, is_verified, is_primary, created_at, updated_at)
        VALUES (inst, NULL, dom, true, false, at, at);
        n := 1;
    WHEN 'AddOrganizationDomain' THEN
        INSERT INTO domains (instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at)
        VALUES (inst, org, dom, false, false,
                CASE d ->> 'validation_type' WHEN 'http' THEN 1 WHEN 'dns' THEN 2 END, at, at);
        n := 1;
    WHEN 'SetInstanceDomainPrimary', 'SetOrganizationDomainPrimary' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('tenancy.primary:domains:' || inst || ':' || coalesce(org, ''), 0));
        IF EXISTS (SELECT 1 FROM domains WHERE instance_id = inst AND org_id IS NOT DISTINCT FROM org
                   AND deleted_at IS NULL AND lower(domain) = lower(dom)) THEN
            UPDATE domains SET is_primary = false, updated_at = at
            WHERE instance_id = inst AND org_id IS NOT DISTINCT FROM org AND deleted_at IS NULL AND is_primary
              AND lower(domain) <> lower(dom);
            GET DIAGNOSTICS m = ROW_COUNT;
            UPDATE domains SET is_primary = true, updated_at = at
            WHERE instance_id = inst AND org_id IS NOT DISTINCT FROM org AND deleted_at IS NULL
              AND lower(domain) = lower(dom);
            GET DIAGNOSTICS n = ROW_COUNT;
            n := n + m;
        END IF;
    WHEN 'RemoveInstanceDomain', 'RemoveOrganizationDomain' THEN
        UPDATE domains SET deleted_at = at, updated_at = at
        WHERE instance_id = inst AND org_id IS NOT DISTINCT FROM org AND deleted_at IS NULL AND lower(domain) = lower(dom);
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetOrganizationDomainValidationType' THEN
        UPDATE domains SET validation_type = CASE d ->> 'validation_type' WHEN 'http' THEN 1 WHEN 'dns' THEN 2 END,
            updated_at = at
        WHERE instance_id = inst AND org_id = org AND deleted_at IS NULL AND lower(domain) = lower(dom);
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetOrganizationDomainVerified' THEN
        UPDATE domains SET is_verified = true, updated_at = at
        WHERE instance_id = inst AND org_id = org AND deleted_at IS NULL AND lower(domain) = lower(dom);
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'RemoveDomainsOfOrganization' THEN
        UPDATE domains SET deleted_at = at, updated_at = at
        WHERE instance_id = inst AND org_id = org AND deleted_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'RemoveDomainsOfInstance' THEN
        UPDATE domains SET deleted_at = at, updated_at = at WHERE instance_id = inst AND deleted_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
    ELSE
        RAISE invalid_parameter_value USING MESSAGE = format('unknown state change %L', op);
    END CASE;
    RETURN n;
END;
$$;

-- One change as serde writes it: {"Variant": {fields}}.
CREATE FUNCTION tenancy.apply_change(c jsonb, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    op text := (SELECT k FROM jsonb_object_keys(c) AS k LIMIT 1);
BEGIN
    RETURN tenancy.apply_op(op, c -> op, at);
END;
$$;

-- A batch in one round trip, applied in order: parallel arrays of variant names, fields
-- and event times (no per-change key lookup).
CREATE FUNCTION tenancy.apply_changes(ops text[], fields jsonb[], ats timestamptz[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
BEGIN
    FOR i IN 1 .. coalesce(array_length(ops, 1), 0) LOOP
        n := n + tenancy.apply_op(ops[i], fields[i], ats[i]);
    END LOOP;
    RETURN n;
END;
$$;

-- PL/pgSQL caches a generic plan per statement and session. Planned while the tables are
-- still small (a fresh database, the start of a catch-up), those plans are sequential
-- scans, and they stay for the life of the connection while the tables grow. Every
-- statement of apply_op looks rows up by key, so the entry points plan with sequential
-- scans disabled (this also covers the foreign-key checks they fire). apply_op is
-- internal: call one of the two entry points.
ALTER FUNCTION tenancy.apply_change(jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_changes(text[], jsonb[], timestamptz[]) SET enable_seqscan = off;
