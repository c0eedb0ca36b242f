-- The state changes of tenancy-core, one function per table: `tenancy.apply_<table>`
-- (the table's name in the registry, tenancy_core::state::Table) applies one change of that
-- table's own change type (`op` its variant's name, `d` its fields, `at` the event time).
-- Changing one table's logic replaces that table's function only. Replaces the single
-- dispatcher of 0004 (apply_op / apply_change / apply_changes). The repositories call a
-- table's function for one change; the projection's event-by-event path calls
-- tenancy.apply_changes, which finds each change's function by its table's name (no list
-- here to keep up when a table is added). Batches go set-based (tenancy_postgres::batch).
-- Tables are named unqualified and resolved through the session's search_path, as in 0004;
-- errors keep their SQLSTATE and constraint name (tenancy_postgres::on_constraint).
DROP FUNCTION tenancy.apply_changes(text[], jsonb[], timestamptz[]);
DROP FUNCTION tenancy.apply_change(jsonb, timestamptz);
DROP FUNCTION tenancy.apply_op(text, jsonb, timestamptz);

CREATE FUNCTION tenancy.apply_instances(op text, d jsonb, at timestamptz) RETURNS bigint
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
    ELSE
        RAISE invalid_parameter_value USING MESSAGE = format('unknown change of instances: %L', op);
    END CASE;
    RETURN n;
END;
$$;

CREATE FUNCTION tenancy.apply_organizations(op text, d jsonb, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    inst text := coalesce(d ->> 'instance_id', d ->> 'id');
    org text := coalesce(d ->> 'org_id', CASE WHEN d ? 'instance_id' THEN d ->> 'id' END);
    dom text := d ->> 'domain';
    n bigint := 0;
    m bigint := 0;
BEGIN
    CASE op
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
    ELSE
        RAISE invalid_parameter_value USING MESSAGE = format('unknown change of organizations: %L', op);
    END CASE;
    RETURN n;
END;
$$;

CREATE FUNCTION tenancy.apply_instance_domains(op text, d jsonb, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    inst text := coalesce(d ->> 'instance_id', d ->> 'id');
    org text := coalesce(d ->> 'org_id', CASE WHEN d ? 'instance_id' THEN d ->> 'id' END);
    dom text := d ->> 'domain';
    n bigint := 0;
    m bigint := 0;
BEGIN
    CASE op
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
    ELSE
        RAISE invalid_parameter_value USING MESSAGE = format('unknown change of instance_domains: %L', op);
    END CASE;
    RETURN n;
END;
$$;

CREATE FUNCTION tenancy.apply_org_domains(op text, d jsonb, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    inst text := coalesce(d ->> 'instance_id', d ->> 'id');
    org text := coalesce(d ->> 'org_id', CASE WHEN d ? 'instance_id' THEN d ->> 'id' END);
    dom text := d ->> 'domain';
    n bigint := 0;
    m bigint := 0;
BEGIN
    CASE op
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
    ELSE
        RAISE invalid_parameter_value USING MESSAGE = format('unknown change of org_domains: %L', op);
    END CASE;
    RETURN n;
END;
$$;

CREATE FUNCTION tenancy.apply_domains(op text, d jsonb, at timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    inst text := coalesce(d ->> 'instance_id', d ->> 'id');
    org text := coalesce(d ->> 'org_id', CASE WHEN d ? 'instance_id' THEN d ->> 'id' END);
    dom text := d ->> 'domain';
    n bigint := 0;
    m bigint := 0;
BEGIN
    CASE op
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
        RAISE invalid_parameter_value USING MESSAGE = format('unknown change of domains: %L', op);
    END CASE;
    RETURN n;
END;
$$;

-- Changes of any tables in order, in one round trip: parallel arrays of table names,
-- variant names, fields and event times. All or nothing.
CREATE FUNCTION tenancy.apply_changes(tables text[], ops text[], fields jsonb[], ats timestamptz[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
    m bigint;
BEGIN
    FOR i IN 1 .. coalesce(array_length(ops, 1), 0) LOOP
        EXECUTE format('SELECT tenancy.%I($1, $2, $3)', 'apply_' || tables[i])
            INTO m USING ops[i], fields[i], ats[i];
        n := n + m;
    END LOOP;
    RETURN n;
END;
$$;

-- As in 0004: plans cached while the tables were small must not stay sequential scans.
ALTER FUNCTION tenancy.apply_instances(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_organizations(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_instance_domains(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_org_domains(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_domains(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_changes(text[], text[], jsonb[], timestamptz[]) SET enable_seqscan = off;
