-- Pull sources without a network: the options of a ves_sequencer source
-- (pull needs tenant_id and store_id; intervals and batch sizes in range,
-- checked when the destination is created or altered), who may pull,
-- ves.pull_events' own refusals (not a source, paused, since past the
-- cursor, max_count), a source that cannot be reached (nothing applied,
-- nothing moved), ves.pull_status and its tenant visibility, and an alert
-- held stream resumed by acknowledging its alert, and the sync.* events of
-- pull runs (from pg_ves as the sequencer in another database). Pulling from
-- the mock sequencer is test/t/033_pull.pl.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-0000000000a1'''
\set s '''00000000-0000-0000-0000-0000000000b1'''

CREATE ROLE regress_pull_admin IN ROLE ves_admin;
CREATE ROLE regress_pull_reader IN ROLE ves_reader;
CREATE ROLE regress_pull_writer IN ROLE ves_writer;

-- Options: pull needs the stream; types and ranges are checked.
SELECT regress_try($q$SELECT ves.create_destination('p1', 'ves_sequencer', 'http://127.0.0.1:9', '{"pull": true}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('p1', 'ves_sequencer', 'http://127.0.0.1:9',
  '{"pull": true, "tenant_id": "00000000-0000-0000-0000-0000000000a1"}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('p1', 'ves_sequencer', 'http://127.0.0.1:9',
  '{"pull": "yes", "tenant_id": "00000000-0000-0000-0000-0000000000a1", "store_id": "00000000-0000-0000-0000-0000000000b1"}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('p1', 'ves_sequencer', 'http://127.0.0.1:9',
  '{"pull": true, "tenant_id": "00000000-0000-0000-0000-0000000000a1", "store_id": "nope"}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('p1', 'ves_sequencer', 'http://127.0.0.1:9',
  '{"pull": true, "tenant_id": "00000000-0000-0000-0000-0000000000a1", "store_id": "00000000-0000-0000-0000-0000000000b1",
    "pull_batch": 1001}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('p1', 'ves_sequencer', 'http://127.0.0.1:9',
  '{"pull": true, "tenant_id": "00000000-0000-0000-0000-0000000000a1", "store_id": "00000000-0000-0000-0000-0000000000b1",
    "pull_interval_ms": 1.5}')$q$);
SELECT regress_try($q$SELECT ves.create_destination('p1', 'webhook', 'http://127.0.0.1:9', '{"pull": true}')$q$);

-- A valid source (port 9: nothing listens there). Its options are kept.
SELECT name, kind, tenant_id, kind_options FROM ves.create_destination('p1', 'ves_sequencer', 'http://127.0.0.1:9',
  '{"pull": true, "tenant_id": "00000000-0000-0000-0000-0000000000a1", "store_id": "00000000-0000-0000-0000-0000000000b1",
    "pull_interval_ms": 60000, "pull_batch": 50, "timeout_ms": 500, "entity_types": ["none"]}');
-- Altering is checked against what is stored: removing the store refuses,
-- changing only the batch is fine, a push-only destination becomes a
-- source only with its stream.
SELECT regress_try($q$SELECT ves.alter_destination('p1', '{"store_id": null}')$q$);
SELECT kind_options FROM ves.alter_destination('p1', '{"pull_batch": 10}');
SELECT name FROM ves.create_destination('push-only', 'ves_sequencer', 'http://127.0.0.1:9');
SELECT regress_try($q$SELECT ves.alter_destination('push-only', '{"pull": true}')$q$);

-- ves.pull_events refusals.
SELECT regress_try($q$SELECT * FROM ves.pull_events(NULL)$q$);
SELECT regress_try($q$SELECT * FROM ves.pull_events('nowhere')$q$);
SELECT regress_try($q$SELECT * FROM ves.pull_events('push-only')$q$);
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1', max_count => 0)$q$);
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1', since => 0)$q$);
SELECT name FROM ves.pause_destination('p1');
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1')$q$);
SELECT name FROM ves.resume_destination('p1');

-- Nothing listens: the read fails, nothing is applied, the cursor stays.
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1')$q$) ~ '^VE067: source "p1" could not be read' AS unreachable;
SELECT count(*) FROM ves.pull_cursors;

-- Who may pull: administrators; not readers or writers, nor the internals.
SET ROLE regress_pull_writer;
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1')$q$);
SELECT regress_try($q$SELECT ves._pull_apply(1, 1, false, '{"events": []}')$q$);
SET ROLE regress_pull_reader;
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1')$q$);
SELECT regress_try($q$SELECT * FROM ves.pull_cursors$q$);
RESET ROLE;

-- Applying pages (what the worker does after a read): an empty page, a
-- page that is not one, an item without a sequence number (alert).
SELECT * FROM ves._pull_apply((SELECT id FROM ves.destinations WHERE name = 'p1'), 1, false, '{"events": []}');
SELECT regress_try($q$SELECT ves._pull_apply((SELECT id FROM ves.destinations WHERE name = 'p1'), 1, false, 'nope')$q$);
SELECT source, tenant_id, store_id, cursor, head, lag, stopped, alert_id FROM ves.pull_status;
SELECT ves._pull_apply((SELECT id FROM ves.destinations WHERE name = 'p1'), 1, false,
  '{"events": [{"envelope": {"event_id": "x"}}]}') - 'alert_id';
SELECT source, cursor, stopped, stopped_at, alert_id IS NOT NULL AS has_alert FROM ves.pull_status;
SELECT kind, source, tenant_id, store_id, sequence_number, reason, acknowledged_at IS NULL AS open
  FROM ves.security_alerts WHERE source = 'p1' ORDER BY id;
-- While held, pulls apply nothing and say why (no read is made).
SELECT pulled, applied, cursor, stopped_at, stop_reason, alert_id IS NOT NULL AS has_alert
  FROM ves.pull_events('p1');
-- Readers of other tenants see no cursor.
SET ROLE regress_pull_reader;
SET ves.tenant_id = '00000000-0000-0000-0000-0000000000ff';
SELECT count(*) FROM ves.pull_status;
SET ves.tenant_id = '00000000-0000-0000-0000-0000000000a1';
SELECT source, cursor, stopped FROM ves.pull_status;
RESET ves.tenant_id;
RESET ROLE;

-- Acknowledging: 'skip' steps past the number and is audited.
SELECT action FROM ves.acknowledge_security_alert((SELECT max(id) FROM ves.security_alerts WHERE source = 'p1'), action => 'skip');
SELECT source, cursor, stopped, alert_id FROM ves.pull_status;
SELECT action, target, tenant_id, arguments - 'alert_id' - 'reason' AS arguments
  FROM ves.audit_log WHERE action LIKE '%pulled_event' ORDER BY audit_id;

-- since: on a cursor that has applied nothing it starts the stream there
-- (here the read then fails: nothing listens); once events were applied
-- (simulated here), only the cursor itself is accepted.
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1', since => 5)$q$) ~ '^VE067:' AS started_at_since;
UPDATE ves.pull_cursors SET next_sequence = 3, applied = 2, last_event_id = gen_random_uuid();
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1', since => 5)$q$);
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1', since => 2)$q$) ~ '^VE066:' AS no_repeat;
SELECT regress_try($q$SELECT * FROM ves.pull_events('p1', since => 3)$q$) ~ '^VE067:' AS at_cursor;
-- A page read before the cursor moved applies nothing.
SELECT ves._pull_apply((SELECT id FROM ves.destinations WHERE name = 'p1'), 1, false, '{"events": []}')
  ->> 'stop_reason' AS raced;
SELECT source, cursor, head, lag FROM ves.pull_status;

-- Applying a stored event is for administrators and the worker, not writers.
SET ROLE regress_pull_writer;
SELECT regress_try($q$SELECT ves._apply_ingested(gen_random_uuid())$q$);
RESET ROLE;

-- Pull runs on the source's sync stream (README "Sync events"): a pull that
-- applies events appends sync.started and sync.completed, an idle pull
-- nothing, a failing source one sync.failed per streak of failures. The
-- source is pg_ves as the sequencer in another database of this server,
-- read over libpq (a ves_postgres source).
SELECT current_database() AS regress_db \gset
CREATE DATABASE regress_pull_hub;
\c regress_pull_hub
SET client_min_messages = warning;
CREATE EXTENSION pg_ves;
SELECT agent_id AS hub_agent, key_id AS hub_key, encode(public_key, 'hex') AS hub_public
  FROM ves.create_agent_key(:t, :s) \gset
SELECT encode(public_key, 'hex') AS hub_sequencer FROM ves.sequencer_identity() \gset
CREATE TABLE ev AS
  SELECT g, (ves.append(:t, :s, 'Sku', 'sku-' || g, 'stock.set', jsonb_build_object('qty', g))).event_id AS id
  FROM generate_series(1, 3) g;
SELECT ves.sequence_events(:'hub_agent', jsonb_agg(ves.export_event(id) ORDER BY g)) ->> 'sequenceEnd' AS sequenced
FROM ev;
\c :regress_db
\set SHOW_CONTEXT never
SELECT key_id = :hub_key AS registered FROM ves.register_agent_key(:t, :'hub_agent', :hub_key, decode(:'hub_public', 'hex'));
SELECT format('host=%s port=%s dbname=regress_pull_hub',
              split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')) AS hub_conninfo \gset
SELECT name FROM ves.create_destination('hub', 'ves_postgres', 'postgresql://localhost/regress_pull_hub',
  jsonb_build_object('conninfo', :'hub_conninfo', 'sequencer_public_key', :'hub_sequencer', 'pull', true,
                     'tenant_id', :t, 'store_id', :s, 'entity_types', jsonb_build_array('none')));
-- The hub's socket trusts this server's account, so the hub does not ask
-- for a password (this conninfo has none): refused while
-- ves.remote_password_required is on, which only a superuser can turn off.
SELECT regress_try($q$SELECT * FROM ves.pull_events('hub')$q$) AS no_password;
SELECT count(*) AS sync_events FROM ves.events WHERE entity_type = 'sync' AND entity_id = 'hub';
SET ROLE regress_pull_admin;
SELECT regress_try('SET ves.remote_password_required = off') AS not_superuser;
RESET ROLE;
SET ves.remote_password_required = off;
-- Three events applied: one pair, sharing its run, on the entity 'sync' /
-- 'hub' of the source's tenant and store (not on the streams pulled).
SELECT pulled, applied, duplicates, cursor, stop_reason FROM ves.pull_events('hub');
SELECT event_type, entity_type, entity_id, tenant_id = :t AS tenant, store_id = :s AS store, source,
       payload - 'run' AS payload
  FROM ves.events WHERE entity_type = 'sync' AND entity_id = 'hub' ORDER BY position;
SELECT count(DISTINCT payload ->> 'run') AS runs FROM ves.events WHERE entity_type = 'sync' AND entity_id = 'hub';
SELECT count(*) AS verified FROM ves.events WHERE entity_type = 'sync' AND entity_id = 'hub' AND ves.verify_event(event_id);
-- An idle pull, and one more: nothing appended.
SELECT pulled, applied, cursor FROM ves.pull_events('hub');
SELECT pulled, applied, cursor FROM ves.pull_events('hub');
SELECT count(*) AS sync_events FROM ves.events WHERE entity_type = 'sync' AND entity_id = 'hub';
-- Failed reads (as the worker records them): the first of a streak appends
-- sync.failed, its retries nothing; a read that works ends the streak, and
-- the next failure starts another.
SELECT ves._pull_failed(id, 'remote pg_ves: connection refused') FROM ves.destinations WHERE name = 'hub';
SELECT ves._pull_failed(id, 'remote pg_ves: connection refused') FROM ves.destinations WHERE name = 'hub';
SELECT ves._pull_failed(id, 'remote pg_ves: timeout') FROM ves.destinations WHERE name = 'hub';
SELECT event_type, entity_id, payload FROM ves.events WHERE event_type = 'sync.failed' AND entity_id = 'hub' ORDER BY position;
SELECT pulled, applied, cursor FROM ves.pull_events('hub');
SELECT ves._pull_failed(id, 'remote pg_ves: timeout') FROM ves.destinations WHERE name = 'hub';
SELECT event_type, entity_id, payload FROM ves.events WHERE event_type = 'sync.failed' AND entity_id = 'hub' ORDER BY position;
-- A read that fails inside ves.pull_events raises, and what it would have
-- appended goes with it.
SELECT kind_options ->> 'pull' AS pull FROM ves.alter_destination('hub', jsonb_build_object('conninfo',
  :'hub_conninfo' || ' dbname=regress_pull_nowhere'));
SELECT regress_try($q$SELECT * FROM ves.pull_events('hub')$q$) ~ '^VE067:' AS unreadable;
SELECT count(*) AS sync_events FROM ves.events WHERE entity_type = 'sync' AND entity_id = 'hub';
RESET ves.remote_password_required;
SELECT ves.drop_destination('hub');
DROP DATABASE regress_pull_hub WITH (FORCE);

SELECT ves.drop_destination('p1');
SELECT ves.drop_destination('push-only');
SELECT count(*) FROM ves.pull_cursors;
DROP ROLE regress_pull_admin, regress_pull_reader, regress_pull_writer;
