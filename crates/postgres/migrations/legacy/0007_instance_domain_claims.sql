-- no-transaction
-- Custom instance domains are unique across instances, while the projection moves each
-- instance on its own: before an instance takes a domain, the engine checks that no other
-- instance has an earlier, not yet projected add of it. This index answers that check (the
-- adds of one domain, in order) without reading other instances' streams. Only
-- `instance.domain.added` events are in it, so it stays small; it is built CONCURRENTLY
-- (outside a transaction, hence the directive above) so that writers pushing to events2
-- are not blocked while it is built on a large store.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events2_tenancy_instance_domain_added
    ON eventstore.events2 (lower(payload ->> 'domain'), "position", in_tx_order)
    WHERE aggregate_type = 'instance' AND event_type = 'instance.domain.added';
