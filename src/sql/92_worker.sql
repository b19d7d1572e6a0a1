-- The rights of the sync worker when ves.worker_role names a role: grant
-- ves_worker to a LOGIN role (README "The worker's role and lifecycle").
-- Kept in one file that the upgrade scripts include as well.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'ves_worker') THEN
    CREATE ROLE ves_worker NOLOGIN;
  END IF;
END
$roles$;
GRANT USAGE ON SCHEMA ves TO ves_worker;

-- ves_worker: exactly what the sync worker does when ves.worker_role names
-- a role holding it. It reads the settings, the destinations and the events,
-- claims and records outbox rows, records the destinations' health; its
-- partition DDL and retention, purges and expiries and its reading of the credentials go
-- through definer functions that pin their search_path.
-- (A worker statement that writes another column needs it added here.)
GRANT SELECT ON ves.sync_settings, ves.events, ves.destinations, ves.outbox TO ves_worker;
GRANT UPDATE (status, attempts, next_attempt_at, lease_until, leased_by, last_status, last_error, last_response,
              updated_at, synced_at) ON ves.outbox TO ves_worker;
GRANT UPDATE (breaker_state, last_success_at, last_error, last_error_at, paused, paused_reason)
  ON ves.destinations TO ves_worker;
GRANT EXECUTE ON FUNCTION
  ves.tenant_visible(uuid),
  ves._worker_secrets(),
  ves._store_destination_token(int, bytea, bytea, timestamptz),
  ves.ensure_partitions(timestamptz, interval),
  ves.ensure_idempotency_partitions(timestamptz, int, interval),
  ves.expire_idempotency_records(timestamptz, interval),
  ves.expire_held_order_events(timestamptz),
  ves.drop_expired_partitions(timestamptz, interval),
  ves.purge_outbox(int)
TO ves_worker;
-- The CHECK on ves.destinations.kind, evaluated when the worker records a
-- destination's health.
GRANT EXECUTE ON FUNCTION ves._destination_kind_known(text) TO ves_worker;

-- The worker serves every tenant: it reads all events and claims and records
-- every outbox row, whatever ves.tenant_id its role might set.
CREATE POLICY sync_worker ON ves.outbox FOR ALL TO ves_worker USING (true) WITH CHECK (true);
CREATE POLICY sync_worker ON ves.events FOR SELECT TO ves_worker USING (true);

-- The worker stores the receipts of ves_sequencer destinations as it
-- records their rows, for every tenant (SELECT: ON CONFLICT reads the key).
GRANT SELECT, INSERT ON ves.sequencer_receipts TO ves_worker;
CREATE POLICY sync_worker ON ves.sequencer_receipts FOR ALL TO ves_worker USING (true) WITH CHECK (true);

-- Platform destinations: the worker reads the listings and the counts of
-- the SKUs it sends (what a row sends is read when it is claimed) and
-- records what each platform acknowledged.
GRANT SELECT ON ves.listings, ves.inventory TO ves_worker;
GRANT UPDATE (pushed_quantity, pushed_at, known_quantity, state, last_error, updated_at) ON ves.listings TO ves_worker;
CREATE POLICY sync_worker ON ves.listings FOR ALL TO ves_worker USING (true) WITH CHECK (true);
CREATE POLICY sync_worker ON ves.inventory FOR SELECT TO ves_worker USING (true);

-- Batches platforms accepted for later processing: the worker records them
-- as it records the rows, and asks about them (ves.follow_up_batches).
GRANT SELECT, INSERT ON ves.platform_batches TO ves_worker;
CREATE POLICY sync_worker ON ves.platform_batches FOR ALL TO ves_worker USING (true) WITH CHECK (true);
GRANT EXECUTE ON FUNCTION ves.follow_up_batches(int), ves._follow_ups_due(int), ves._follow_up_record(bigint[], jsonb)
  TO ves_worker;
