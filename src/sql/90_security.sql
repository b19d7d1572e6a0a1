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
  ves.member_for(text, text, int)
TO ves_reader;

GRANT EXECUTE ON FUNCTION
  ves.append(uuid, uuid, text, text, text, jsonb, bigint, text, jsonb, text, uuid),
  ves.append_batch(jsonb),
  ves.save_snapshot(uuid, text, text, bigint, jsonb),
  ves.create_subscription(uuid, text, text[], text[], int, bigint),
  ves.drop_subscription(uuid, text),
  ves.poll(uuid, text, int, int),
  ves.ack(uuid, text, int, bigint),
  ves.replay(uuid, text, bigint, bigint)
TO ves_writer;

GRANT EXECUTE ON FUNCTION
  ves.begin_maintenance(text),
  ves.ensure_partitions(timestamptz),
  ves.drop_expired_partitions(timestamptz),
  ves._read_fence_holders(),
  ves.debug_raise(text),
  ves.debug_live_objects()
TO ves_admin;

GRANT SELECT ON ves.events, ves.streams, ves.snapshots, ves.subscriptions,
  ves.subscription_members, ves.subscription_status, ves.event_partitions TO ves_reader;
GRANT SELECT ON ves.read_fence_holders, ves.maintenance_log, ves.partition_config TO ves_admin;
GRANT SELECT ON ves.idempotency_keys, ves.event_ids TO ves_admin;

DO $rls$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['events', 'streams', 'snapshots', 'subscriptions',
                           'subscription_members', 'idempotency_keys', 'event_ids'] LOOP
    EXECUTE format('ALTER TABLE ves.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_isolation ON ves.%I FOR SELECT USING (ves.tenant_visible(tenant_id))', t);
  END LOOP;
END
$rls$;
