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
port=$(free_port)
cleanup() {
  as_pg pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

as_pg initdb -D "$dir/data" -A trust -U postgres >/dev/null
cat test/pg_ves.conf >>"$dir/data/postgresql.conf"
{
  echo "listen_addresses = '127.0.0.1'"
  echo "port = $port"
  echo "unix_socket_directories = '$dir'"
} >>"$dir/data/postgresql.conf"
as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
echo "pg_ves demo: throwaway cluster on 127.0.0.1:$port"

as_pg psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
\pset footer off
CREATE EXTENSION pg_ves;
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
SQL
echo "pg_ves demo: done (cluster removed)"
