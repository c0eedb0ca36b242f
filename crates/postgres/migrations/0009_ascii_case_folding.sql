-- One case folding (security review M3, L3, L4). `lower()` follows the database's locale
-- (`ΟΔΟΣ` -> `οδοσ` under a glibc locale, `I` -> `ı` under a Turkish one), while the
-- in-memory model, which the bulk path and `verify` fold with, lower-cased by Unicode's
-- rules (final sigma `ς`): the two write paths judged the same names differently. Names
-- and domains now compare by ASCII case folding only — `lower(x COLLATE "C")` here,
-- `to_ascii_lowercase` in the model — which is the same on every database and in Rust:
-- `ACME` equals `acme`, `ΟΔΟΣ` and `οδος` are different names. Domains are ASCII (punycode)
-- anyway. The unique indexes keep their names (tenancy_postgres::on_constraint maps them);
-- names that differed only in non-ASCII case could not coexist before, so no row breaks
-- the new indexes. The five apply functions of 0008 are re-created with the new
-- comparison, otherwise unchanged.

DROP INDEX organizations_live_name_key;
CREATE UNIQUE INDEX organizations_live_name_key
    ON organizations (instance_id, lower(name COLLATE "C")) WHERE deleted_at IS NULL;
DROP INDEX instance_domains_custom_key;
CREATE UNIQUE INDEX instance_domains_custom_key
    ON instance_domains (lower(domain COLLATE "C")) WHERE type = 'custom';
DROP INDEX instance_domains_trusted_key;
CREATE UNIQUE INDEX instance_domains_trusted_key
    ON instance_domains (instance_id, lower(domain COLLATE "C")) WHERE type = 'trusted';
DROP INDEX org_domains_domain_key;
CREATE UNIQUE INDEX org_domains_domain_key
    ON org_domains (instance_id, org_id, lower(domain COLLATE "C"));
DROP INDEX org_domains_verified_key;
CREATE UNIQUE INDEX org_domains_verified_key
    ON org_domains (instance_id, lower(domain COLLATE "C")) WHERE is_verified;
DROP INDEX domains_live_key;
CREATE UNIQUE INDEX domains_live_key
    ON domains (instance_id, coalesce(org_id, ''), lower(domain COLLATE "C")) WHERE deleted_at IS NULL;
DROP INDEX domains_instance_domain_key;
CREATE UNIQUE INDEX domains_instance_domain_key
    ON domains (lower(domain COLLATE "C")) WHERE org_id IS NULL AND deleted_at IS NULL;
DROP INDEX domains_verified_org_domain_key;
CREATE UNIQUE INDEX domains_verified_org_domain_key
    ON domains (instance_id, lower(domain COLLATE "C"))
    WHERE org_id IS NOT NULL AND is_verified AND deleted_at IS NULL;
DROP INDEX domains_lower_domain_idx;
CREATE INDEX domains_lower_domain_idx ON domains (lower(domain COLLATE "C")) WHERE deleted_at IS NULL;

CREATE OR REPLACE FUNCTION tenancy.apply_instances(op text, d jsonb, at timestamptz) RETURNS bigint
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

CREATE OR REPLACE FUNCTION tenancy.apply_organizations(op text, d jsonb, at timestamptz) RETURNS bigint
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

CREATE OR REPLACE FUNCTION tenancy.apply_instance_domains(op text, d jsonb, at timestamptz) RETURNS bigint
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
                   WHERE instance_id = inst AND type = 'custom' AND lower(domain COLLATE "C") = lower(dom COLLATE "C")) THEN
            UPDATE instance_domains SET is_primary = false, updated_at = at
            WHERE instance_id = inst AND type = 'custom' AND is_primary AND lower(domain COLLATE "C") <> lower(dom COLLATE "C");
            GET DIAGNOSTICS m = ROW_COUNT;
            UPDATE instance_domains SET is_primary = true, updated_at = at
            WHERE instance_id = inst AND type = 'custom' AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
            GET DIAGNOSTICS n = ROW_COUNT;
            n := n + m;
        END IF;
    WHEN 'DeleteInstanceDomain' THEN
        DELETE FROM instance_domains
        WHERE instance_id = inst AND type = (d ->> 'domain_type')::domain_type AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
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

CREATE OR REPLACE FUNCTION tenancy.apply_org_domains(op text, d jsonb, at timestamptz) RETURNS bigint
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
        WHERE instance_id = inst AND org_id = org AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetOrgDomainVerified' THEN
        UPDATE org_domains SET is_verified = true, updated_at = at
        WHERE instance_id = inst AND org_id = org AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetPrimaryOrgDomain' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('tenancy.primary:org:' || inst || ':' || org, 0));
        IF EXISTS (SELECT 1 FROM org_domains
                   WHERE instance_id = inst AND org_id = org AND lower(domain COLLATE "C") = lower(dom COLLATE "C")) THEN
            UPDATE org_domains SET is_primary = false, updated_at = at
            WHERE instance_id = inst AND org_id = org AND is_primary AND lower(domain COLLATE "C") <> lower(dom COLLATE "C");
            GET DIAGNOSTICS m = ROW_COUNT;
            UPDATE org_domains SET is_primary = true, updated_at = at
            WHERE instance_id = inst AND org_id = org AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
            GET DIAGNOSTICS n = ROW_COUNT;
            n := n + m;
        END IF;
    WHEN 'DeleteOrgDomain' THEN
        DELETE FROM org_domains WHERE instance_id = inst AND org_id = org AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
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

CREATE OR REPLACE FUNCTION tenancy.apply_domains(op text, d jsonb, at timestamptz) RETURNS bigint
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
                   AND deleted_at IS NULL AND lower(domain COLLATE "C") = lower(dom COLLATE "C")) THEN
            UPDATE domains SET is_primary = false, updated_at = at
            WHERE instance_id = inst AND org_id IS NOT DISTINCT FROM org AND deleted_at IS NULL AND is_primary
              AND lower(domain COLLATE "C") <> lower(dom COLLATE "C");
            GET DIAGNOSTICS m = ROW_COUNT;
            UPDATE domains SET is_primary = true, updated_at = at
            WHERE instance_id = inst AND org_id IS NOT DISTINCT FROM org AND deleted_at IS NULL
              AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
            GET DIAGNOSTICS n = ROW_COUNT;
            n := n + m;
        END IF;
    WHEN 'RemoveInstanceDomain', 'RemoveOrganizationDomain' THEN
        UPDATE domains SET deleted_at = at, updated_at = at
        WHERE instance_id = inst AND org_id IS NOT DISTINCT FROM org AND deleted_at IS NULL AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetOrganizationDomainValidationType' THEN
        UPDATE domains SET validation_type = CASE d ->> 'validation_type' WHEN 'http' THEN 1 WHEN 'dns' THEN 2 END,
            updated_at = at
        WHERE instance_id = inst AND org_id = org AND deleted_at IS NULL AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
        GET DIAGNOSTICS n = ROW_COUNT;
    WHEN 'SetOrganizationDomainVerified' THEN
        UPDATE domains SET is_verified = true, updated_at = at
        WHERE instance_id = inst AND org_id = org AND deleted_at IS NULL AND lower(domain COLLATE "C") = lower(dom COLLATE "C");
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

-- CREATE OR REPLACE resets a function's settings: set again as 0008 did.
ALTER FUNCTION tenancy.apply_instances(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_organizations(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_instance_domains(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_org_domains(text, jsonb, timestamptz) SET enable_seqscan = off;
ALTER FUNCTION tenancy.apply_domains(text, jsonb, timestamptz) SET enable_seqscan = off;
