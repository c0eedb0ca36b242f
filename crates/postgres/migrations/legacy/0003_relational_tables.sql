-- The state-persisted tables (schema.md). Uniqueness rules are partial unique indexes,
-- not triggers: triggers race under concurrent transactions. Index and constraint names
-- are mapped to domain errors in tenancy-postgres (`on_constraint`): rename both together.
CREATE SCHEMA IF NOT EXISTS zitadel;

-- Stamps updated_at only when the statement left it NULL, so projections can write the
-- event time explicitly.
CREATE OR REPLACE FUNCTION zitadel.stamp_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NULL THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TYPE zitadel.organization_state AS ENUM ('active', 'inactive');
CREATE TYPE zitadel.domain_type AS ENUM ('custom', 'trusted');
CREATE TYPE zitadel.domain_validation_type AS ENUM ('http', 'dns');

CREATE TABLE zitadel.instances (
    id                TEXT        NOT NULL,
    name              TEXT        NOT NULL,
    default_org_id    TEXT,
    iam_project_id    TEXT,
    console_client_id TEXT,
    console_app_id    TEXT,
    default_language  TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at        TIMESTAMPTZ,
    CONSTRAINT instances_pkey PRIMARY KEY (id),
    CONSTRAINT instances_id_not_empty CHECK (id <> ''),
    CONSTRAINT instances_name_not_empty CHECK (name <> '')
);

CREATE TABLE zitadel.organizations (
    instance_id TEXT                       NOT NULL,
    id          TEXT                       NOT NULL,
    name        TEXT                       NOT NULL,
    state       zitadel.organization_state NOT NULL DEFAULT 'active',
    created_at  TIMESTAMPTZ                NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ                NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ,
    CONSTRAINT organizations_pkey PRIMARY KEY (instance_id, id),
    CONSTRAINT organizations_instance_fkey FOREIGN KEY (instance_id) REFERENCES zitadel.instances (id),
    CONSTRAINT organizations_id_not_empty CHECK (id <> ''),
    CONSTRAINT organizations_name_not_empty CHECK (name <> '')
);
CREATE UNIQUE INDEX organizations_live_name_key
    ON zitadel.organizations (instance_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE zitadel.instance_domains (
    instance_id  TEXT                NOT NULL,
    domain       TEXT                NOT NULL,
    type         zitadel.domain_type NOT NULL,
    is_primary   BOOLEAN,
    is_generated BOOLEAN,
    created_at   TIMESTAMPTZ         NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ         NOT NULL DEFAULT now(),
    CONSTRAINT instance_domains_pkey PRIMARY KEY (instance_id, type, domain),
    CONSTRAINT instance_domains_instance_fkey FOREIGN KEY (instance_id) REFERENCES zitadel.instances (id),
    CONSTRAINT instance_domains_domain_length CHECK (length(domain) BETWEEN 1 AND 255),
    CONSTRAINT instance_domains_flags CHECK (
        (type = 'custom' AND is_primary IS NOT NULL AND is_generated IS NOT NULL)
        OR (type = 'trusted' AND is_primary IS NULL AND is_generated IS NULL))
);
-- A host resolves to exactly one instance.
CREATE UNIQUE INDEX instance_domains_custom_key
    ON zitadel.instance_domains (lower(domain)) WHERE type = 'custom';
CREATE UNIQUE INDEX instance_domains_trusted_key
    ON zitadel.instance_domains (instance_id, lower(domain)) WHERE type = 'trusted';
CREATE UNIQUE INDEX instance_domains_primary_key
    ON zitadel.instance_domains (instance_id) WHERE is_primary;

CREATE TABLE zitadel.org_domains (
    instance_id     TEXT                           NOT NULL,
    org_id          TEXT                           NOT NULL,
    domain          TEXT                           NOT NULL,
    is_verified     BOOLEAN                        NOT NULL DEFAULT false,
    is_primary      BOOLEAN                        NOT NULL DEFAULT false,
    validation_type zitadel.domain_validation_type,
    created_at      TIMESTAMPTZ                    NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ                    NOT NULL DEFAULT now(),
    CONSTRAINT org_domains_pkey PRIMARY KEY (instance_id, org_id, domain),
    CONSTRAINT org_domains_org_fkey FOREIGN KEY (instance_id, org_id)
        REFERENCES zitadel.organizations (instance_id, id),
    CONSTRAINT org_domains_domain_length CHECK (length(domain) BETWEEN 1 AND 255)
);
CREATE UNIQUE INDEX org_domains_domain_key
    ON zitadel.org_domains (instance_id, org_id, lower(domain));
CREATE UNIQUE INDEX org_domains_verified_key
    ON zitadel.org_domains (instance_id, lower(domain)) WHERE is_verified;
CREATE UNIQUE INDEX org_domains_primary_key
    ON zitadel.org_domains (instance_id, org_id) WHERE is_primary;

CREATE TABLE zitadel.domains (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    instance_id     TEXT        NOT NULL,
    org_id          TEXT,
    domain          TEXT        NOT NULL,
    is_verified     BOOLEAN     NOT NULL DEFAULT false,
    is_primary      BOOLEAN     NOT NULL DEFAULT false,
    validation_type SMALLINT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at      TIMESTAMPTZ,
    CONSTRAINT domains_pkey PRIMARY KEY (id),
    CONSTRAINT domains_instance_fkey FOREIGN KEY (instance_id) REFERENCES zitadel.instances (id),
    CONSTRAINT domains_org_fkey FOREIGN KEY (instance_id, org_id)
        REFERENCES zitadel.organizations (instance_id, id),
    CONSTRAINT domains_domain_length CHECK (length(domain) BETWEEN 1 AND 255),
    CONSTRAINT domains_validation_type_check CHECK (validation_type >= 0)
);
-- NULL org ids compare equal: coalesce to ''.
CREATE UNIQUE INDEX domains_live_key
    ON zitadel.domains (instance_id, coalesce(org_id, ''), lower(domain)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX domains_instance_domain_key
    ON zitadel.domains (lower(domain)) WHERE org_id IS NULL AND deleted_at IS NULL;
CREATE UNIQUE INDEX domains_verified_org_domain_key
    ON zitadel.domains (instance_id, lower(domain))
    WHERE org_id IS NOT NULL AND is_verified AND deleted_at IS NULL;
CREATE UNIQUE INDEX domains_instance_primary_key
    ON zitadel.domains (instance_id) WHERE org_id IS NULL AND is_primary AND deleted_at IS NULL;
CREATE UNIQUE INDEX domains_org_primary_key
    ON zitadel.domains (instance_id, org_id)
    WHERE org_id IS NOT NULL AND is_primary AND deleted_at IS NULL;
-- Lookup by domain across instances (host lookups) and listing by instance / org / flags.
CREATE INDEX domains_lower_domain_idx ON zitadel.domains (lower(domain)) WHERE deleted_at IS NULL;
CREATE INDEX domains_instance_idx ON zitadel.domains (instance_id, created_at, id);
CREATE INDEX domains_org_idx ON zitadel.domains (instance_id, org_id) WHERE org_id IS NOT NULL;
CREATE INDEX domains_flags_idx ON zitadel.domains (instance_id, is_primary, is_verified)
    WHERE deleted_at IS NULL;

CREATE TRIGGER instances_updated_at BEFORE INSERT OR UPDATE ON zitadel.instances
    FOR EACH ROW EXECUTE FUNCTION zitadel.stamp_updated_at();
CREATE TRIGGER organizations_updated_at BEFORE INSERT OR UPDATE ON zitadel.organizations
    FOR EACH ROW EXECUTE FUNCTION zitadel.stamp_updated_at();
CREATE TRIGGER instance_domains_updated_at BEFORE INSERT OR UPDATE ON zitadel.instance_domains
    FOR EACH ROW EXECUTE FUNCTION zitadel.stamp_updated_at();
CREATE TRIGGER org_domains_updated_at BEFORE INSERT OR UPDATE ON zitadel.org_domains
    FOR EACH ROW EXECUTE FUNCTION zitadel.stamp_updated_at();
CREATE TRIGGER domains_updated_at BEFORE INSERT OR UPDATE ON zitadel.domains
    FOR EACH ROW EXECUTE FUNCTION zitadel.stamp_updated_at();
