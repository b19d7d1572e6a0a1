\set SHOW_CONTEXT never
-- Tenants: views that respect the session's tenant, key functions that
-- check it, event ids unique across tenants, and roles bound to tenants.
\set ta '''00000000-0000-0000-0000-0000000015aa'''
\set tb '''00000000-0000-0000-0000-0000000015bb'''
\set tc '''00000000-0000-0000-0000-0000000015cc'''
\set s '''00000000-0000-0000-0000-000000001501'''

SELECT event_id AS ea FROM ves.append(:ta, :s, 'Order', 't-a', 'order.created', '{"who": "a"}') \gset
SELECT event_id AS eb FROM ves.append(:tb, :s, 'Order', 't-b', 'order.created', '{"who": "b"}') \gset
SELECT ves.create_subscription(:ta, 'sub-a') IS NOT NULL AS sub_a;
SELECT ves.create_subscription(:tb, 'sub-b') IS NOT NULL AS sub_b;

SELECT current_user AS regress_user \gset
CREATE ROLE regress_ten_reader IN ROLE ves_reader;
CREATE ROLE regress_ten_admin IN ROLE ves_admin;

-- Views over tenant data show the session's tenant only.
SET ROLE regress_ten_reader;
SET ves.tenant_id = :ta;
SELECT count(*) AS foreign_keys FROM ves.agent_keys WHERE tenant_id <> :ta;
SELECT count(*) > 0 AS own_keys FROM ves.agent_keys WHERE tenant_id = :ta;
SELECT subscription FROM ves.subscription_status ORDER BY 1;
RESET ves.tenant_id;
SELECT count(DISTINCT tenant_id) >= 2 AS unscoped_sees_all FROM ves.agent_keys WHERE tenant_id IN (:ta, :tb);
RESET ROLE;

-- Key creation and rotation act for the session's tenant only.
SET ROLE regress_ten_admin;
SET ves.tenant_id = :ta;
SELECT regress_try($$SELECT ves.rotate_agent_key('00000000-0000-0000-0000-0000000015bb', '00000000-0000-0000-0000-000000001501')$$);
SELECT regress_try($$SELECT ves.create_agent_key('00000000-0000-0000-0000-0000000015bb', '00000000-0000-0000-0000-000000001599')$$);
SELECT (ves.rotate_agent_key(:ta, :s)).key_id AS rotated_own;
RESET ves.tenant_id;
RESET ROLE;

-- Event ids are unique across tenants: tenant B cannot take an id tenant A
-- holds, generated or given, and A's event still exports and verifies.
SELECT regexp_replace(regress_try(format($$SELECT ves.append(%L, %L, 'Order', 'steal', 'order.created', '{}', id => %L)$$, :tb, :s, :'ea')), :'ea', '<a''s id>');
SELECT id AS given FROM (SELECT '00000000-0000-7000-8000-0000000015ee'::uuid AS id) x \gset
SELECT duplicate FROM ves.append(:ta, :s, 'Order', 'given', 'order.created', '{"n": 1}', id => :'given');
SELECT duplicate FROM ves.append(:ta, :s, 'Order', 'given', 'order.created', '{"n": 1}', id => :'given');
SELECT regress_try(format($$SELECT ves.append(%L, %L, 'Order', 'given', 'order.created', '{"n": 1}', id => %L)$$, :tb, :s, :'given'));
SELECT regexp_replace(regress_try(format($$SELECT ves.append_batch('[{"tenant_id": "%s", "store_id": "%s", "entity_type": "Order", "entity_id": "x", "event_type": "order.created", "payload": {}, "id": "%s"}]')$$, :tb, :s, :'ea')), :'ea', '<a''s id>');
SELECT count(*) AS holders FROM ves.events WHERE event_id = :'ea';
SELECT ves.verify_event(:'ea') AS a_verifies, (ves.export_event(:'ea'))->>'entity_id' AS a_exports;

-- Roles bound to tenants.
CREATE ROLE regress_ten_shop_a IN ROLE ves_writer;
CREATE ROLE regress_ten_shop_a_login LOGIN IN ROLE regress_ten_shop_a;
CREATE ROLE regress_ten_multi IN ROLE ves_writer;
CREATE ROLE regress_ten_super SUPERUSER;
SELECT ves.bind_role('regress_ten_shop_a', :ta);
SELECT ves.bind_role('regress_ten_shop_a', :ta);   -- again: nothing changes
SELECT ves.bind_role('regress_ten_multi', :ta);
SELECT ves.bind_role('regress_ten_multi', :tb);
SELECT regress_try($$SELECT ves.bind_role('regress_ten_super', '00000000-0000-0000-0000-0000000015aa')$$);
SELECT regress_try($$SELECT ves.bind_role(NULL, '00000000-0000-0000-0000-0000000015aa')$$);
SELECT regress_try($$SELECT ves.bind_role('no_such_role', '00000000-0000-0000-0000-0000000015aa')$$);
SELECT role_name, tenant_id = :ta AS is_a FROM ves.role_bindings WHERE role_name LIKE 'regress_ten%' ORDER BY 1, 2;

-- A bound role acts for its tenant without setting anything, and setting
-- or resetting ves.tenant_id does not widen what it sees or writes.
SET ROLE regress_ten_shop_a;
SELECT ves.current_tenant() = :ta AS scoped_to_a;
SELECT entity_version FROM ves.append(:ta, :s, 'Order', 't-a', 'order.updated', '{}');
SELECT regress_try(format($$SELECT ves.append(%L, %L, 'Order', 't-b', 'order.updated', '{}')$$, :tb, :s));
SELECT count(*) AS foreign_rows FROM ves.events WHERE tenant_id <> :ta;
SELECT count(*) AS foreign_read_all FROM ves.read_all(0, 100000) WHERE tenant_id <> :ta;
SET ves.tenant_id = :tb;
SELECT regress_try('SELECT ves.current_tenant()');
SELECT regress_try(format($$SELECT ves.append(%L, %L, 'Order', 't-b', 'order.updated', '{}')$$, :tb, :s));
SELECT count(*) AS rows_seen FROM ves.events;
SELECT regress_try(format($$SELECT count(*) FROM ves.read_entity(%L, 'Order', 't-b')$$, :tb));
RESET ves.tenant_id;
SELECT count(*) AS foreign_rows FROM ves.events WHERE tenant_id <> :ta;
SELECT count(*) AS foreign_keys FROM ves.agent_keys WHERE tenant_id <> :ta;
SELECT count(*) AS foreign_subscriptions FROM ves.subscription_status WHERE tenant_id <> :ta;
RESET ROLE;

-- Members of a bound role are bound too, and cannot step out with SET ROLE.
\c - regress_ten_shop_a_login
SELECT ves.current_tenant() = :ta AS login_scoped_to_a;
SET ROLE ves_writer;
SELECT ves.current_tenant() = :ta AS still_scoped_to_a;
SELECT regress_try(format($$SELECT ves.append(%L, %L, 'Order', 't-b', 'order.updated', '{}')$$, :tb, :s));
SELECT count(*) AS foreign_rows FROM ves.events WHERE tenant_id <> :ta;
RESET ROLE;
\c - :regress_user

-- A role bound to several tenants acts for any of them and must choose one
-- where a call needs a single tenant.
SET ROLE regress_ten_multi;
SELECT entity_version > 0 AS wrote_a FROM ves.append(:ta, :s, 'Order', 'm-a', 'order.created', '{}');
SELECT entity_version > 0 AS wrote_b FROM ves.append(:tb, :s, 'Order', 'm-b', 'order.created', '{}');
SELECT regress_try(format($$SELECT ves.append(%L, %L, 'Order', 'm-c', 'order.created', '{}')$$, :tc, :s));
SELECT regress_try('SELECT ves.current_tenant()');
SELECT count(DISTINCT tenant_id) AS tenants_seen FROM ves.events;
SET ves.tenant_id = :tb;
SELECT count(DISTINCT tenant_id) AS tenants_seen FROM ves.events;
RESET ves.tenant_id;
RESET ROLE;

-- A bound administrator cannot change bindings, its own or others'.
CREATE ROLE regress_ten_bound_admin IN ROLE ves_admin;
SELECT ves.bind_role('regress_ten_bound_admin', :ta);
SET ROLE regress_ten_bound_admin;
SELECT regress_try($$SELECT ves.unbind_role('regress_ten_bound_admin')$$);
SELECT regress_try($$SELECT ves.bind_role('regress_ten_bound_admin', '00000000-0000-0000-0000-0000000015bb')$$);
SELECT role_name FROM ves.role_bindings WHERE tenant_id <> :ta;
RESET ROLE;

-- Unbinding gives the role back the unbound behaviour.
SELECT ves.unbind_role('regress_ten_shop_a');
SELECT regress_try($$SELECT ves.unbind_role('regress_ten_shop_a')$$);
SET ROLE regress_ten_shop_a;
SELECT ves.current_tenant() IS NULL AS unbound_again;
SELECT count(DISTINCT tenant_id) >= 2 AS sees_all FROM ves.events WHERE tenant_id IN (:ta, :tb);
RESET ROLE;
SELECT action FROM ves.maintenance_log WHERE action LIKE '%bind_role' AND detail LIKE 'regress_ten%' ORDER BY id;
