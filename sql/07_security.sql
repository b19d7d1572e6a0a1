\set SHOW_CONTEXT never
-- Roles, grants and tenant isolation.
\set ta '''00000000-0000-0000-0000-00000000aaaa'''
\set tb '''00000000-0000-0000-0000-00000000bbbb'''
\set s '''00000000-0000-0000-0000-000000000701'''

SELECT rolname FROM pg_roles WHERE rolname LIKE 'ves\_%' ORDER BY 1;
-- Nothing is granted to PUBLIC.
SELECT count(*) AS public_functions FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'ves' AND has_function_privilege('public', p.oid, 'EXECUTE');
SELECT count(*) AS public_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ves' AND c.relkind IN ('r', 'p', 'v') AND has_table_privilege('public', c.oid, 'SELECT');

CREATE ROLE regress_ves_nobody;
CREATE ROLE regress_ves_reader IN ROLE ves_reader;
CREATE ROLE regress_ves_app IN ROLE ves_writer;
CREATE ROLE regress_ves_admin IN ROLE ves_admin;

SELECT position AS pa FROM ves.append(:ta, :s, 'Order', 'sec-a', 'order.created', '{"who": "a"}') \gset
SELECT position AS pb FROM ves.append(:tb, :s, 'Order', 'sec-b', 'order.created', '{"who": "b"}') \gset

-- A role with no pg_ves role can do nothing.
SET ROLE regress_ves_nobody;
SELECT * FROM ves.append(:ta, :s, 'Order', 'sec-a', 'order.created', '{}');
SELECT count(*) FROM ves.events;
RESET ROLE;

-- Readers read, and cannot write.
SET ROLE regress_ves_reader;
SELECT count(*) > 0 AS reads FROM ves.read_entity(:ta, 'Order', 'sec-a');
SELECT * FROM ves.append(:ta, :s, 'Order', 'sec-a', 'order.created', '{}');
INSERT INTO ves.events SELECT * FROM ves.events LIMIT 1;
SELECT ves.begin_maintenance('not allowed');
RESET ROLE;

-- Writers append and consume, but cannot maintain or touch tables directly.
SET ROLE regress_ves_app;
SELECT entity_version FROM ves.append(:ta, :s, 'Order', 'sec-a', 'order.updated', '{}');
SELECT ves.begin_maintenance('not allowed');
UPDATE ves.events SET payload = '{}' WHERE position = :pa;
SELECT count(*) FROM ves.idempotency_keys;
SELECT count(*) FROM ves.read_fence_holders;
RESET ROLE;

-- A session bound to tenant A sees and writes only tenant A.
SET ROLE regress_ves_app;
SET ves.tenant_id = :ta;
SELECT ves.current_tenant();
SELECT entity_version FROM ves.append(:ta, :s, 'Order', 'sec-a', 'order.updated', '{}');
SELECT * FROM ves.append(:tb, :s, 'Order', 'sec-b', 'order.updated', '{"evil": true}');
SELECT * FROM ves.append_batch(jsonb_build_array(jsonb_build_object('tenant_id', :tb, 'store_id', :s, 'entity_type', 'Order', 'entity_id', 'sec-b', 'event_type', 'order.updated', 'payload', '{}'::jsonb)));
SELECT count(*) FROM ves.read_entity(:tb, 'Order', 'sec-b');
SELECT count(*) FROM ves.read_all(0, 1000, :tb);
-- read_all without a tenant filter returns only the session's tenant.
SELECT count(*) AS foreign_rows FROM ves.read_all(0, 100000) WHERE tenant_id <> :ta;
-- Direct reads through row-level security, too.
SELECT count(*) AS foreign_rows FROM ves.events WHERE tenant_id <> :ta;
SELECT count(*) > 0 AS own_rows FROM ves.events WHERE tenant_id = :ta;
SELECT count(*) AS foreign_streams FROM ves.streams WHERE tenant_id <> :ta;
SELECT * FROM ves.create_subscription(:tb, 'spy');
SELECT * FROM ves.poll(:tb, 'audit');
SELECT * FROM ves.save_snapshot(:tb, 'Order', 'sec-b', 1, '{}');
SELECT * FROM ves.load_snapshot(:tb, 'Order', 'sec-b');
RESET ves.tenant_id;
RESET ROLE;
SELECT count(*) AS tenant_b_untouched FROM ves.events WHERE tenant_id = :tb;

-- ves.require_tenant: a role configured with it must name its tenant, and
-- cannot turn the requirement off.
SET ves.require_tenant = on;
SET ROLE regress_ves_app;
SELECT * FROM ves.append(:ta, :s, 'Order', 'sec-a', 'order.updated', '{}');
SELECT count(*) FROM ves.events;
SET ves.require_tenant = off;
SET ves.tenant_id = :ta;
SELECT entity_version FROM ves.append(:ta, :s, 'Order', 'sec-a', 'order.updated', '{}');
RESET ves.tenant_id;
RESET ROLE;
RESET ves.require_tenant;

-- Admins maintain.
SET ROLE regress_ves_admin;
SELECT count(*) >= 0 AS sees_holders FROM ves.read_fence_holders;
BEGIN;
SELECT ves.begin_maintenance('regression: admin may');
ROLLBACK;
RESET ROLE;

DROP ROLE regress_ves_nobody, regress_ves_reader, regress_ves_app, regress_ves_admin;
