-- pg_ves 0.2.0 -> 0.3.0. Built into pg_ves--0.2.0--0.3.0.sql by build.awk;
-- test/t/031_upgrade.pl checks that a database upgraded through it (and
-- through 0.1.0 -> 0.2.0 -> 0.3.0) has exactly the schema of a fresh 0.3.0
-- install.
\echo Use "ALTER EXTENSION pg_ves UPDATE" to load this file. \quit

-- Conflict rules in one place (src/core/state decides; plpgsql gathers facts
-- and writes rows) and one keyed-call wrapper.
DROP FUNCTION ves._upsert_duplicate(jsonb);
DROP FUNCTION ves._stock_duplicate(jsonb);
DROP FUNCTION ves._reservation_conflict(ves.inventory, bigint, jsonb, text, timestamptz, text);
DROP FUNCTION ves._resolve_stock_conflict(ves.conflicts, text, jsonb);
-- @create function ves.conflict_vocabulary
-- @create function ves._check_resolution
-- @create function ves._resolution_effect
-- @create function ves._decide_stock
-- @create function ves._keyed_begin
-- @create function ves._keyed_end
-- @create function ves._resolve_state_conflict
-- @create function ves._resolve_stock_conflict
-- @create function ves._reservation_conflict
-- @replace function ves.upsert
-- @replace function ves.delete_entity
-- @replace function ves.adjust_stock
-- @replace function ves.set_stock
-- @replace function ves.reserve_stock
-- @replace function ves.record_order_event
-- @replace function ves.resolve_conflict
REVOKE ALL ON FUNCTION ves.conflict_vocabulary(), ves._check_resolution(uuid, text, jsonb),
  ves._resolution_effect(uuid, text, jsonb, text[], jsonb, text, timestamptz, jsonb, text, timestamptz, jsonb),
  ves._decide_stock(jsonb, bigint, bigint, bigint), ves._keyed_begin(uuid, text, text, jsonb, anyelement),
  ves._keyed_end(uuid, text, text, jsonb, anyelement), ves._resolve_state_conflict(ves.conflicts, text, jsonb),
  ves._resolve_stock_conflict(ves.conflicts, text, jsonb),
  ves._reservation_conflict(ves.inventory, bigint, text, text, text, bigint, text, timestamptz, text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.conflict_vocabulary() TO ves_reader;

-- Destination kinds come from the adapter registry (src/core/platforms/):
-- the CHECK on ves.destinations.kind and ves.create_destination ask C.
-- @create function ves.destination_kinds
-- @create function ves._destination_kind_known
ALTER TABLE ves.destinations DROP CONSTRAINT destinations_kind_check,
  ADD CONSTRAINT destinations_kind_check CHECK (ves._destination_kind_known(kind));
-- @replace function ves.create_destination
REVOKE ALL ON FUNCTION ves.destination_kinds(), ves._destination_kind_known(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.destination_kinds() TO ves_admin;
GRANT EXECUTE ON FUNCTION ves._destination_kind_known(text) TO ves_worker;

-- Retention: drop_expired_partitions takes a lock wait, so the sync worker
-- can run it daily without queueing appends behind it.
DROP FUNCTION ves.drop_expired_partitions(timestamptz);
-- @create function ves.drop_expired_partitions
REVOKE ALL ON FUNCTION ves.drop_expired_partitions(timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.drop_expired_partitions(timestamptz, interval) TO ves_admin, ves_worker;

-- VES sequencer push (destination kind ves_sequencer): a kind's own options
-- come from its adapter and are kept in ves.destinations.kind_options;
-- verified receipts go to ves.sequencer_receipts.
-- @create function ves._destination_kind_options
REVOKE ALL ON FUNCTION ves._destination_kind_options(text) FROM PUBLIC;
ALTER TABLE ves.destinations
  ADD COLUMN kind_options jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(kind_options) = 'object');
-- @replace function ves._destination_options
-- @replace function ves.create_destination
-- @replace function ves.alter_destination
-- @create table ves.sequencer_receipts
SELECT pg_catalog.pg_extension_config_dump('ves.sequencer_receipts', '');
REVOKE ALL ON ves.sequencer_receipts FROM PUBLIC;
ALTER TABLE ves.sequencer_receipts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.sequencer_receipts FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.sequencer_receipts TO ves_reader;
GRANT SELECT, INSERT ON ves.sequencer_receipts TO ves_worker;
CREATE POLICY sync_worker ON ves.sequencer_receipts FOR ALL TO ves_worker USING (true) WITH CHECK (true);

-- Commerce platform destinations: credentials sealed as a whole
-- (credentials_box), access tokens the worker obtains, and listings.
-- @create function ves._destination_kind_secret_options
-- @create function ves._destination_kind_platform
-- @create function ves._destination_kind_one_location
-- @create function ves._destination_kind_defaults
ALTER TABLE ves.destination_secrets ADD COLUMN credentials_box bytea;
-- @create table ves.destination_tokens
SELECT pg_catalog.pg_extension_config_dump('ves.destination_tokens', '');
DROP FUNCTION ves._destination_check(text, text, jsonb);
-- @create function ves._destination_check
DROP FUNCTION ves._store_destination_secrets(int, jsonb, bytea, bytea);
-- @create function ves._store_destination_secrets
DROP FUNCTION ves._worker_secrets();
-- @create function ves._worker_secrets
-- @create function ves._store_destination_token
-- @replace function ves._destination_options
-- @replace function ves.create_destination
-- @replace function ves.alter_destination
-- @create table ves.listings
CREATE INDEX listings_sku_idx ON ves.listings (tenant_id, store_id, sku, location);
CREATE INDEX listings_stale_idx ON ves.listings (destination_id) WHERE state = 'stale';
SELECT pg_catalog.pg_extension_config_dump('ves.listings', '');
-- @create function ves._listing_check
-- @replace view ves.platform_listings
-- @create function ves._queue_listing
-- @create function ves.map_listing
-- @create function ves.unmap_listing
REVOKE ALL ON ves.destination_tokens, ves.listings, ves.platform_listings FROM PUBLIC;
REVOKE ALL ON FUNCTION ves._destination_kind_secret_options(text), ves._destination_kind_platform(text),
  ves._destination_kind_one_location(text), ves._destination_kind_defaults(text), ves._destination_check(text, text, jsonb, jsonb, bytea),
  ves._store_destination_secrets(int, jsonb, bytea, bytea, bytea), ves._worker_secrets(),
  ves._store_destination_token(int, bytea, bytea, timestamptz), ves._listing_check(text, jsonb, jsonb),
  ves._queue_listing(ves.destinations, uuid, text), ves.map_listing(text, text, jsonb, text),
  ves.unmap_listing(text, text, text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.map_listing(text, text, jsonb, text), ves.unmap_listing(text, text, text) TO ves_admin;
ALTER TABLE ves.listings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ves.listings FOR SELECT USING (ves.tenant_visible(tenant_id));
GRANT SELECT ON ves.listings, ves.platform_listings TO ves_reader;
GRANT EXECUTE ON FUNCTION ves._worker_secrets(), ves._store_destination_token(int, bytea, bytea, timestamptz)
  TO ves_worker;
GRANT SELECT ON ves.listings, ves.inventory TO ves_worker;
GRANT UPDATE (pushed_quantity, pushed_at, known_quantity, state, last_error, updated_at) ON ves.listings TO ves_worker;
CREATE POLICY sync_worker ON ves.listings FOR ALL TO ves_worker USING (true) WITH CHECK (true);
CREATE POLICY sync_worker ON ves.inventory FOR SELECT TO ves_worker USING (true);

-- Delivery metrics: live counters and histograms in shared memory,
-- per-minute rollups in ves.sync_history, ves.sync_metrics(window),
-- ves.prometheus_metrics(); ves.get_sync_status gains the seeds' overview
-- (queue_depth, last_sync_at, open_conflicts) as new last columns (and, in
-- the same new definition, in_conflict, pull_head, pull_lag and the
-- sequencer's per-stream rows: tenant_id, store_id, sequencer_head,
-- committed_through).
DROP FUNCTION ves.get_sync_status();
-- @create function ves.get_sync_status
REVOKE ALL ON FUNCTION ves.get_sync_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.get_sync_status() TO ves_admin;
-- @include src/sql/94_metrics.sql
-- Alerts: rules over the metrics (defaults from the seeds), evaluated by the
-- worker, ves.alerts, NOTIFY ves_alerts.
-- @include src/sql/95_alerts.sql
-- ves.settings: every GUC, sync setting and conflict policy key in one view.
-- @include src/sql/96_settings.sql
-- The audit log: triggers on the administered tables, and the outbox verbs
-- record themselves.
-- @include src/sql/97_audit.sql
-- @replace function ves.acknowledge_events
-- @replace function ves.retry_events

-- Inbound webhooks, platform reports, reconciliation and security alerts
-- (93_inbound.sql, new as a whole); two more sync settings.
-- @replace function ves.set_sync_settings
-- @include src/sql/93_inbound.sql

-- Sequencer version conflicts: outbox rows in status 'conflict' (their
-- entity's later rows wait behind them), base_check, the conflicts the
-- worker opens and how ves.resolve_conflict closes them.
ALTER TABLE ves.outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE ves.outbox ADD CONSTRAINT outbox_status_check
  CHECK (status IN ('pending', 'synced', 'failed', 'dead', 'acknowledged', 'conflict'));
ALTER TABLE ves.outbox ADD COLUMN base_check boolean NOT NULL DEFAULT true;
DROP INDEX ves.outbox_entity_idx;
CREATE INDEX outbox_entity_idx ON ves.outbox (destination_id, tenant_id, entity_type, entity_id, event_position)
  WHERE status IN ('pending', 'failed', 'conflict');
CREATE INDEX outbox_dead_idx ON ves.outbox (destination_id) WHERE status = 'dead';
-- @replace function ves.list_outbox_events
-- @replace function ves.resolve_conflict
-- @include src/sql/98_sequencer_conflicts.sql

-- Meta's accepted batches followed up: ves.platform_batches and
-- ves.follow_up_batches (59_platform_batches.sql, new as a whole).
-- @include src/sql/59_platform_batches.sql
GRANT SELECT, INSERT ON ves.platform_batches TO ves_worker;
CREATE POLICY sync_worker ON ves.platform_batches FOR ALL TO ves_worker USING (true) WITH CHECK (true);
GRANT EXECUTE ON FUNCTION ves.follow_up_batches(int), ves._follow_ups_due(int), ves._follow_up_record(bigint[], jsonb)
  TO ves_worker;

-- Applying events from other nodes (98_apply.sql, new as a whole):
-- ves._apply_ingested; ves.upsert and ves.record_order_event share their
-- decision with it.
-- @create function ves._stream_version
-- @replace function ves._source_seen
DROP FUNCTION ves._state_at(uuid, text, text, bigint);
-- @create function ves._state_change
-- @replace function ves.upsert
-- @create function ves._upsert_keyed
REVOKE ALL ON FUNCTION ves._upsert_keyed(uuid, uuid, text, text, jsonb, bigint, text, text, timestamptz) FROM PUBLIC;
-- @replace function ves._check_entity
-- @create function ves._set_order_state
-- @replace function ves._apply_order_event
-- @create function ves._order_change
-- @replace function ves.record_order_event
-- @include src/sql/98_apply.sql

-- Pulling from sequencers: ves.pull_cursors, ves.pull_status,
-- ves.pull_events and the worker's helpers. The
-- acknowledgement that resumes a pulled stream is in 93_inbound.sql,
-- included above.
-- @include src/sql/93_pull.sql

-- pg_ves as the sequencer (98_sequencer.sql, new as a whole):
-- ves.sequence_events, sequenced events and their pull, batch commitments
-- and proofs, ves.sequencer_status.
-- @include src/sql/98_sequencer.sql
-- Destination kind ves_postgres: its url is a postgres:// URI.
ALTER TABLE ves.destinations DROP CONSTRAINT destinations_url_check,
  ADD CONSTRAINT destinations_url_check CHECK (url ~* '^(https?|postgres(ql)?)://');

-- Operations (issue 13): alert acknowledgement and delivery to destinations
-- with "alerts": true (new column ves.destinations.alerts, added by
-- 95_alerts.sql above), sync.* events on a sync stream, recoveries, and
-- data_consistency_score / recovery_time in ves.sync_metrics (94_metrics.sql
-- and 93_inbound.sql above carry those changes).
-- @replace function ves._destination_options
-- @replace function ves.create_destination
-- @replace function ves.alter_destination
-- @include src/sql/98_sync_events.sql

-- Conflict records travel as events: every conflict a node records, open or
-- resolved by a rule, is a sync.conflict_detected event carrying the whole
-- record, and the nodes that receive it hold the same record
-- (ves._apply_ingested_conflict, in 98_apply.sql above). The functions that
-- record conflicts (_state_change, _reservation_conflict, set_stock,
-- resolve_conflict) are created above from their current definitions.
-- @create function ves._record_conflict
-- @replace function ves._open_conflict
REVOKE ALL ON FUNCTION ves._record_conflict(ves.conflicts) FROM PUBLIC;

-- Operations (issue 13): pg_dump keeps ves.partition_config (when changed)
-- and ves.sync_settings; restoring either replaces the singleton row that
-- CREATE EXTENSION made (10_tables.sql, 55_outbox.sql).
-- @create function ves._restore_partition_config
CREATE TRIGGER restore BEFORE INSERT ON ves.partition_config
  FOR EACH ROW EXECUTE FUNCTION ves._restore_partition_config();
SELECT pg_catalog.pg_extension_config_dump('ves.partition_config',
  'WHERE (tenant_buckets, months_ahead) IS DISTINCT FROM (4, 2)');
REVOKE ALL ON FUNCTION ves._restore_partition_config() FROM PUBLIC;
-- @create function ves._restore_sync_settings
CREATE TRIGGER restore BEFORE INSERT ON ves.sync_settings
  FOR EACH ROW EXECUTE FUNCTION ves._restore_sync_settings();
SELECT pg_catalog.pg_extension_config_dump('ves.sync_settings', '');
REVOKE ALL ON FUNCTION ves._restore_sync_settings() FROM PUBLIC;

-- ves.append_batch(text) and (json): a batch read one event at a time
-- (issue 14).
-- @replace function ves.append_batch
REVOKE ALL ON FUNCTION ves.append_batch(text), ves.append_batch(json) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ves.append_batch(text), ves.append_batch(json) TO ves_writer;
