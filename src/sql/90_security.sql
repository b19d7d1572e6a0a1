-- Privileges: nothing for PUBLIC; ves_reader reads, ves_writer appends and
-- consumes, ves_admin also maintains. Row-level security limits direct
-- reads to the session's tenant (ves.tenant_id); the functions, which run
-- as the extension owner, check the tenant themselves.

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ves FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA ves FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
  ves.read_entity(uuid, text, text, bigint, int),
  ves.read_all(bigint, int, uuid),
  ves.read_fence(),
  ves.current_tenant(),
  ves.check_tenant(uuid),
  ves.tenant_visible(uuid),
  ves.load_snapshot(uuid, text, text),
  ves.member_for(text, text, int),
  ves.canonical_json(jsonb),
  ves.canonical_json_text(text),
  ves.payload_hash(jsonb),
  ves.signing_hash(uuid),
  ves.leaf_hash(uuid, uuid, bigint, bytea, bytea),
  ves.receipt_hash(uuid, uuid, uuid, bigint, bytea),
  ves.stream_id(uuid, uuid),
  ves.merkle_root(bytea[]),
  ves.merkle_proof(bytea[], int),
  ves.verify_merkle_proof(bytea, bytea[], bigint, bytea),
  ves.verify_event(uuid),
  ves.verify_events(uuid, uuid, text, text, bigint, bigint),
  ves.export_event(uuid),
  ves._progress()
TO ves_reader;

GRANT EXECUTE ON FUNCTION
  ves.append(uuid, uuid, text, text, text, jsonb, bigint, text, jsonb, text, uuid),
  ves.append_batch(jsonb),
  ves.append_batch(text),
  ves.append_batch(json),
  ves.save_snapshot(uuid, text, text, bigint, jsonb),
  ves.create_subscription(uuid, text, text[], text[], int, bigint),
  ves.drop_subscription(uuid, text),
  ves.poll(uuid, text, int, int),
  ves.ack(uuid, text, int, bigint),
  ves.replay(uuid, text, bigint, bigint),
  ves.ingest_event(jsonb)
TO ves_writer;

GRANT EXECUTE ON FUNCTION
  ves.begin_maintenance(text),
  ves.ensure_partitions(timestamptz, interval),
  ves.drop_expired_partitions(timestamptz, interval),
  ves._read_fence_holders(),
  ves.debug_raise(text),
  ves.debug_live_objects(),
  ves.create_agent_key(uuid, uuid, uuid),
  ves.rotate_agent_key(uuid, uuid),
  ves.register_agent_key(uuid, uuid, int, bytea),
  ves.revoke_agent_key(uuid, uuid, int),
  ves._keys_changed(),
  ves.create_destination(text, text, text, jsonb),
  ves.alter_destination(text, jsonb, text),
  ves.drop_destination(text),
  ves.map_listing(text, text, jsonb, text),
  ves.unmap_listing(text, text, text),
  ves.pause_destination(text, text),
  ves.resume_destination(text),
  ves.get_sync_status(),
  ves.list_outbox_events(text, text, int),
  ves.get_outbox_event(bigint),
  ves.acknowledge_events(bigint[]),
  ves.retry_events(bigint[]),
  ves.get_sync_settings(),
  ves.set_sync_settings(jsonb),
  ves.push_events(text, int),
  ves.purge_outbox(int),
  ves.start_worker(text),
  ves.stop_worker(text),
  ves._worker_status(),
  ves._wake_worker(),
  ves._destinations_changed()
TO ves_admin;

GRANT EXECUTE ON FUNCTION
  ves.get_state(uuid, text, text),
  ves.get_stock(uuid, uuid, text, text),
  ves.get_order(uuid, text),
  ves.get_conflict_policy(uuid, text)
TO ves_reader;

GRANT EXECUTE ON FUNCTION
  ves.upsert(uuid, uuid, text, text, jsonb, bigint, text, text, timestamptz),
  ves.delete_entity(uuid, uuid, text, text, bigint, text, text, timestamptz),
  ves.adjust_stock(uuid, uuid, text, bigint, text, text, text, text, timestamptz),
  ves.set_stock(uuid, uuid, text, bigint, text, text, text, timestamptz),
  ves.reserve_stock(uuid, uuid, text, bigint, text, text, text, text, text),
  ves.release_stock(uuid, text, text, text),
  ves.commit_reservation(uuid, text, text),
  ves.set_low_stock_threshold(uuid, uuid, text, bigint, text),
  ves.record_order_event(uuid, uuid, text, text, jsonb, text, text, timestamptz)
TO ves_writer;

GRANT EXECUTE ON FUNCTION
  ves.set_conflict_policy(uuid, text, jsonb),
  ves.resolve_conflict(uuid, text, jsonb),
  ves.ensure_idempotency_partitions(timestamptz, int, interval),
  ves.expire_idempotency_records(timestamptz, interval),
  ves.expire_held_order_events(timestamptz),
  ves.bind_role(regrole, uuid),
  ves.unbind_role(regrole, uuid)
TO ves_admin;
GRANT SELECT ON ves.role_bindings TO ves_admin;

GRANT SELECT ON ves.entity_state, ves.conflicts, ves.open_conflicts, ves.conflict_policies, ves.inventory,
  ves.reservations, ves.orders, ves.held_order_events TO ves_reader;
GRANT SELECT ON ves.idempotency_records TO ves_admin;
GRANT EXECUTE ON FUNCTION ves.conflict_vocabulary() TO ves_reader;

GRANT SELECT ON ves.events, ves.streams, ves.snapshots, ves.subscriptions,
  ves.subscription_members, ves.subscription_status, ves.event_partitions,
  ves.agent_keys, ves.progress TO ves_reader;
GRANT SELECT ON ves.read_fence_holders, ves.maintenance_log, ves.partition_config, ves.destinations,
  ves.outbox, ves.sync_settings, ves.worker_status TO ves_admin;
-- ves.destination_secrets: nothing for anyone; only the extension owner reads it.
GRANT SELECT ON ves.idempotency_keys, ves.event_ids, ves.local_agents TO ves_admin;
-- ves.agent_key_secrets: nothing for anyone; only the extension owner reads it.

DO $rls$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['events', 'streams', 'snapshots', 'subscriptions',
                           'subscription_members', 'idempotency_keys', 'event_ids',
                           'agent_key_store', 'agent_key_secrets', 'local_agents', 'outbox',
                           'entity_state', 'conflicts', 'conflict_policies', 'inventory', 'reservations',
                           'orders', 'held_order_events', 'idempotency_records', 'tenant_bindings',
                           'listings'] LOOP
    EXECUTE format('ALTER TABLE ves.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON ves.%I FOR SELECT USING (ves.tenant_visible(tenant_id))', t);
  END LOOP;
END
$rls$;

-- Sequencer receipts: readers see their tenants' (55_outbox.sql).
ALTER TABLE ves.sequencer_receipts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.sequencer_receipts FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.sequencer_receipts TO ves_reader;

-- Listings (57_listings.sql): readers see their tenants' through the view.
GRANT SELECT ON ves.listings, ves.platform_listings TO ves_reader;

-- Create this month's and the next months' partitions now, so appends never
-- run DDL (which would lock ves.events until they commit). Later months are
-- created by ves.ensure_partitions(), run from cron or the sync worker; an
-- append that finds its month missing creates it as a last resort.
-- A pg_dump script turns check_function_bodies off and brings its own
-- partitions; creating ours would collide with them.
SELECT ves.ensure_partitions() WHERE current_setting('check_function_bodies')::boolean;
SELECT ves.ensure_idempotency_partitions() WHERE current_setting('check_function_bodies')::boolean;

-- Partitions are data, not part of the extension: detach them from it so
-- pg_dump writes their definitions and rows like those created later.
DO $detach$
DECLARE part regclass;
BEGIN
  FOR part IN
    SELECT c.oid::regclass FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pg_ves')
      AND c.relispartition
  LOOP
    EXECUTE format('ALTER EXTENSION pg_ves DROP TABLE %s', part);
  END LOOP;
END
$detach$;

-- The destination kinds (src/core/platforms/registry.cpp), for whoever
-- creates destinations.
GRANT EXECUTE ON FUNCTION ves.destination_kinds() TO ves_admin;
