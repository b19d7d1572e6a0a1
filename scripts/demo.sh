#!/usr/bin/env bash
# The pg_ves demo: installs what is missing, builds and installs the
# extension, starts a throwaway cluster on a free loopback port, and walks
# through the event store. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
. scripts/common.sh
build_and_install

dir=$(scratch_dir demo)
PG_CWD=$dir
port=$(free_port)
sink_pid=""
cleanup() {
  as_pg pg_ctl -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# The mock commerce platform: records every request it receives.
python3 test/mock/sink.py --port 0 --port-file "$dir/sink.port" --quiet &
sink_pid=$!
for _ in $(seq 50); do [ -s "$dir/sink.port" ] && break; sleep 0.1; done
sink_port=$(cat "$dir/sink.port")

echo "ves.databases = 'postgres'" | start_throwaway_cluster "$dir" "$port"
echo "pg_ves demo: throwaway cluster on 127.0.0.1:$port"

as_pg psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -v sink_port="$sink_port" <<'SQL'
\pset footer off
CREATE EXTENSION pg_ves;
\echo '--- the mock platform is a Standard Webhooks destination; the sync worker drains the outbox to it'
SELECT name, kind, url FROM ves.create_destination('mock-platform', 'webhook',
  'http://127.0.0.1:' || :'sink_port' || '/webhooks/inventory',
  '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "entity_types": ["InventoryItem", "inventory"]}');
SELECT database, pid IS NOT NULL AS running FROM ves.worker_status;
\set tenant '''00000000-0000-0000-0000-000000000001'''
\set store '''00000000-0000-0000-0000-000000000002'''

\echo '--- a shop receives stock and sells, each change an event'
SELECT 'WIDGET-001' AS entity_id, entity_version, position, duplicate
FROM ves.append(:tenant, :store, 'InventoryItem', 'WIDGET-001', 'inventory.adjusted',
                '{"delta": 100, "reason": "shipment_receive"}', expected_version => 0);
SELECT 'WIDGET-001' AS entity_id, entity_version, position, duplicate
FROM ves.append(:tenant, :store, 'InventoryItem', 'WIDGET-001', 'inventory.adjusted',
                '{"delta": -2, "reason": "order", "order": "1001"}', expected_version => 1,
                idempotency_key => 'order-1001-line-1', source => 'shopify');

\echo '--- the platform retries the same webhook: same result, nothing written'
SELECT entity_version, position, duplicate
FROM ves.append(:tenant, :store, 'InventoryItem', 'WIDGET-001', 'inventory.adjusted',
                '{"delta": -2, "reason": "order", "order": "1001"}', idempotency_key => 'order-1001-line-1',
                source => 'shopify');

\echo '--- a stale writer is refused with the current version'
\set ON_ERROR_STOP 0
SELECT * FROM ves.append(:tenant, :store, 'InventoryItem', 'WIDGET-001', 'inventory.adjusted',
                         '{"delta": 5}', expected_version => 1);
\set ON_ERROR_STOP 1

\echo '--- a batch: many SKUs, all or nothing'
SELECT count(*) AS appended FROM ves.append_batch(
  (SELECT jsonb_agg(jsonb_build_object('tenant_id', :tenant, 'store_id', :store,
          'entity_type', 'InventoryItem', 'entity_id', 'SKU-' || g, 'event_type', 'inventory.adjusted',
          'payload', jsonb_build_object('delta', g))) FROM generate_series(1, 500) g));

\echo '--- stock with reservations: available never goes below zero'
SELECT sku, on_hand, reserved, available, outcome FROM ves.set_stock(:tenant, :store, 'MUG-1', 3, source => 'shopify');
SELECT sku, on_hand, reserved, available, outcome, reservation_id
FROM ves.reserve_stock(:tenant, :store, 'MUG-1', 2, 'order-1002/line-1', order_id => 'order-1002');
\set ON_ERROR_STOP 0
SELECT * FROM ves.reserve_stock(:tenant, :store, 'MUG-1', 2, 'order-1003/line-1');
\set ON_ERROR_STOP 1

\echo '--- the shop sells one; shopify, not having seen it, reports an increase: the reduction wins'
SELECT sku, on_hand, reserved, available, outcome FROM ves.adjust_stock(:tenant, :store, 'MUG-1', -1, reason => 'shop sale');
SELECT sku, on_hand, reserved, available, outcome
FROM ves.set_stock(:tenant, :store, 'MUG-1', 5, source => 'shopify', observed_at => now() + interval '1 minute');
SELECT conflict_type, status, rule, local_state, remote_state FROM ves.conflicts;

\echo '--- a consumer subscribes, polls behind the read fence, and acks'
SELECT name FROM ves.create_subscription(:tenant, 'warehouse-sync', entity_types => '{InventoryItem}');
SELECT position, entity_id, payload FROM ves.poll(:tenant, 'warehouse-sync', max_count => 3);
SELECT ves.ack(:tenant, 'warehouse-sync', 0, 3) AS checkpoint;
SELECT * FROM ves.subscription_status;

\echo '--- events are immutable'
\set ON_ERROR_STOP 0
UPDATE ves.events SET payload = '{"delta": 1000000}' WHERE entity_id = 'WIDGET-001';
\set ON_ERROR_STOP 1

\echo '--- the whole log, gap-safe, first page'
SELECT position, entity_id, entity_version, event_type, source FROM ves.read_all(0, 5);
SELECT count(*) AS events, max(position) AS last_position, ves.read_fence() AS read_fence FROM ves.events;

\echo '--- every event is signed and verifies'
SELECT count(*) AS failing FROM ves.verify_events();

\echo '--- the worker was woken at each commit and delivered everything'
DO $$
BEGIN
  FOR i IN 1 .. 200 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM ves.outbox WHERE status IN ('pending', 'syncing', 'failed'));
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT destination, pending, syncing, synced, failed, dead, breaker FROM ves.get_sync_status();
SQL
echo "--- what the mock platform received"
python3 - "$sink_port" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
data = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_requests?after=0"))
reqs = data["requests"]
print(f"{len(reqs)} webhook requests; the first:")
first = reqs[0]
for h in ("webhook-id", "webhook-timestamp", "webhook-signature"):
    print(f"  {h}: {first['headers'].get(h)}")
body = json.loads(first["body"])
print(f"  body: VES v1 envelope of {body['entity_type']}/{body['entity_id']} {body['event_type']}, "
      f"signed by agent {body['source_agent_id']} key {body['agent_key_id']}")
PY
echo "pg_ves demo: done (cluster removed)"
