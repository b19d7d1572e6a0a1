-- Inventory: counts, reservations that never oversell, reservation and
-- platform conflicts, low-stock alerts, and the events each change appends.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000000e01'''
\set s '''00000000-0000-0000-0000-000000000f01'''

CREATE FUNCTION inv(r ves.stock_result) RETURNS text LANGUAGE plpgsql AS $$
DECLARE c text;
BEGIN
  SELECT ' (' || x.conflict_type || ', ' || x.rule || ')' INTO c FROM ves.conflicts x WHERE x.conflict_id = r.conflict_id;
  RETURN coalesce(r.outcome, 'current') || ': on_hand=' || r.on_hand || ' reserved=' || r.reserved
         || ' available=' || r.available || coalesce(c, '');
END $$;
CREATE FUNCTION stock_events(tenant uuid, since bigint) RETURNS TABLE (event_type text, payload jsonb) LANGUAGE sql AS $$
  SELECT e.event_type, e.payload - 'sku' - 'location' FROM ves.events e
  WHERE e.tenant_id = tenant AND e.entity_type = 'inventory' AND e.position > since ORDER BY e.position
$$;
SELECT coalesce(max(position), 0) AS p0 FROM ves.events \gset

-- Counts.
SELECT inv(ves.set_stock(:t, :s, 'MUG', 10));
SELECT inv(ves.adjust_stock(:t, :s, 'MUG', 5, reason => 'received'));
SELECT inv(ves.adjust_stock(:t, :s, 'MUG', -2, reason => 'damaged'));
SELECT inv(ves.get_stock(:t, :s, 'MUG'));
SELECT inv(ves.get_stock(:t, :s, 'NOPE'));
SELECT regress_try($q$SELECT ves.adjust_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'MUG', -14)$q$);
SELECT regress_try($q$SELECT ves.adjust_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'MUG', 0)$q$);
SELECT regress_try($q$SELECT ves.set_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'MUG', -1)$q$);
SELECT regress_try($q$SELECT ves.set_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'MUG', 1, location => '')$q$);
-- Locations are counted apart.
SELECT inv(ves.set_stock(:t, :s, 'MUG', 4, location => 'berlin'));
SELECT location, on_hand FROM ves.inventory WHERE tenant_id = :t ORDER BY location;

-- Reservations: held units leave available; oversell is refused (VE031)
-- and changes nothing.
SELECT inv(r), r.reservation_id FROM ves.reserve_stock(:t, :s, 'MUG', 5, 'order-1/line-1', order_id => 'order-1') r;
SELECT inv(ves.reserve_stock(:t, :s, 'MUG', 8, 'order-2/line-1'));
SELECT regress_try($q$SELECT ves.reserve_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'MUG', 1, 'order-3/line-1')$q$);
SELECT regress_try($q$SELECT ves.reserve_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'CUP', 1)$q$);
SELECT regress_try($q$SELECT ves.reserve_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'MUG', 0)$q$);
SELECT count(*) AS reservations FROM ves.reservations WHERE tenant_id = :t;
-- The same reservation again is a duplicate; the same id for something else is refused.
SELECT inv(ves.reserve_stock(:t, :s, 'MUG', 5, 'order-1/line-1', order_id => 'order-1'));
SELECT regress_try($q$SELECT ves.reserve_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'MUG', 2, 'order-1/line-1')$q$);
-- Release, commit (on shipment), and closing twice.
SELECT inv(ves.release_stock(:t, 'order-2/line-1'));
SELECT inv(ves.release_stock(:t, 'order-2/line-1'));
SELECT inv(ves.commit_reservation(:t, 'order-1/line-1'));
SELECT regress_try($q$SELECT ves.release_stock('00000000-0000-0000-0000-000000000e01', 'order-1/line-1')$q$);
SELECT regress_try($q$SELECT ves.commit_reservation('00000000-0000-0000-0000-000000000e01', 'order-2/line-1')$q$);
SELECT regress_try($q$SELECT ves.commit_reservation('00000000-0000-0000-0000-000000000e01', 'nope')$q$);
SELECT reservation_id, quantity, status FROM ves.reservations WHERE tenant_id = :t ORDER BY reservation_id;

-- Reservations win over adjustments: a count below what is reserved stops
-- at the reserved quantity, and the conflict is recorded as resolved.
SELECT inv(ves.reserve_stock(:t, :s, 'MUG', 6, 'order-4/line-1'));
SELECT inv(ves.adjust_stock(:t, :s, 'MUG', -7, reason => 'stock take'));
SELECT conflict_type, status, rule, local_state, remote_state, detail - 'sku' - 'location' AS detail
FROM ves.conflicts WHERE tenant_id = :t ORDER BY detected_at DESC LIMIT 1;
-- With reservations_win off the change waits for a person...
SELECT ves.set_conflict_policy(:t, 'inventory', '{"reservations_win": false}') ->> 'reservations_win';
SELECT inv(ves.adjust_stock(:t, :s, 'MUG', -6, reason => 'lost'));
SELECT conflict_type, rule, remote_state FROM ves.open_conflicts WHERE tenant_id = :t;
-- ...who may not take on_hand below the reservations, but may keep it.
SELECT regress_try(format('SELECT ves.resolve_conflict(%L, %L)', conflict_id, 'accept_remote')) FROM ves.open_conflicts WHERE tenant_id = :t;
SELECT r.outcome FROM ves.open_conflicts c, ves.resolve_conflict(c.conflict_id, 'accept_local') r WHERE c.tenant_id = :t;
SELECT inv(ves.release_stock(:t, 'order-4/line-1'));
SELECT ves.set_conflict_policy(:t, 'inventory', '{"reservations_win": true}') ->> 'reservations_win';

-- Platform counts. The base of a platform's report is its previous report:
-- a platform that has not yet seen our sales does not undo them.
SELECT ves.set_conflict_policy(:t, 'inventory', '{"review_window_ms": 0}') ->> 'review_window_ms';
SELECT inv(ves.set_stock(:t, :s, 'TEE', 10, source => 'shopify', observed_at => '2026-01-01 10:00:00+00'));
SELECT inv(ves.adjust_stock(:t, :s, 'TEE', -1, reason => 'sold in shop', observed_at => '2026-01-01 10:01:00+00'));
-- shopify still says 10 (it has not seen the sale): nothing changes.
SELECT inv(ves.set_stock(:t, :s, 'TEE', 10, source => 'shopify', observed_at => '2026-01-01 10:02:00+00'));
-- shopify says 12 (restocked there): stock reductions win over increases.
SELECT inv(ves.set_stock(:t, :s, 'TEE', 12, source => 'shopify', observed_at => '2026-01-01 10:03:00+00'));
-- shopify says 7 (sold 3 there): its reduction wins.
SELECT inv(ves.set_stock(:t, :s, 'TEE', 7, source => 'shopify', observed_at => '2026-01-01 10:04:00+00'));
-- Without our own change in between, a platform count simply applies.
SELECT inv(ves.set_stock(:t, :s, 'TEE', 20, source => 'shopify', observed_at => '2026-01-01 10:05:00+00'));
-- A stale report (observed earlier than the last one) changes nothing.
SELECT inv(ves.set_stock(:t, :s, 'TEE', 3, source => 'shopify', observed_at => '2026-01-01 09:00:00+00'));
-- A platform count below the reservations: reservations win.
SELECT inv(ves.reserve_stock(:t, :s, 'TEE', 15, 'order-5/line-1'));
SELECT inv(ves.set_stock(:t, :s, 'TEE', 12, source => 'shopify', observed_at => '2026-01-01 10:06:00+00'));
SELECT conflict_type, rule FROM ves.conflicts WHERE tenant_id = :t ORDER BY detected_at DESC LIMIT 1;
-- Within the review window, a disagreement goes to a person.
SELECT ves.set_conflict_policy(:t, 'inventory', '{"review_window_ms": 30000}') ->> 'review_window_ms';
SELECT inv(ves.set_stock(:t, :s, 'CAP', 5, observed_at => '2026-01-01 10:00:00+00'));
SELECT inv(ves.set_stock(:t, :s, 'CAP', 9, source => 'tiktok', observed_at => '2026-01-01 10:00:10+00'));
SELECT conflict_type, rule, local_state, remote_state FROM ves.open_conflicts WHERE tenant_id = :t;
SELECT r.outcome FROM ves.open_conflicts c,
  ves.resolve_conflict(c.conflict_id, 'merge', '{"on_hand": 8}') r WHERE c.tenant_id = :t AND c.entity_id = 'CAP';
SELECT inv(ves.get_stock(:t, :s, 'CAP'));

-- Low-stock alerts: once per crossing, re-armed when stock rises above.
SELECT inv(ves.set_stock(:t, :s, 'PEN', 10));
SELECT coalesce(max(position), 0) AS p1 FROM ves.events \gset
SELECT inv(ves.set_low_stock_threshold(:t, :s, 'PEN', 3));
SELECT inv(ves.adjust_stock(:t, :s, 'PEN', -6));
SELECT inv(ves.reserve_stock(:t, :s, 'PEN', 1, 'pen-1'));
SELECT inv(ves.adjust_stock(:t, :s, 'PEN', -1));
SELECT inv(ves.adjust_stock(:t, :s, 'PEN', -1));
SELECT inv(ves.adjust_stock(:t, :s, 'PEN', 5));
SELECT inv(ves.release_stock(:t, 'pen-1'));
SELECT inv(ves.adjust_stock(:t, :s, 'PEN', -5));
SELECT * FROM stock_events(:t, :p1);

-- Every change so far appended its event, in order, with the counts after it.
SELECT event_type, count(*) FROM ves.events WHERE tenant_id = :t AND entity_type = 'inventory' GROUP BY 1 ORDER BY 1;
SELECT event_type, payload - 'sku' - 'location' AS payload FROM ves.events
WHERE tenant_id = :t AND entity_type = 'inventory' AND entity_id = 'MUG' ORDER BY position LIMIT 6;
SELECT bool_and(ves.verify_event(event_id)) AS all_signed FROM ves.events WHERE tenant_id = :t;

-- Keyed calls: the repeat returns the first response.
SELECT inv(ves.adjust_stock(:t, :s, 'PEN', 1, idempotency_key => 'scan-1'));
SELECT inv(ves.adjust_stock(:t, :s, 'PEN', 1, idempotency_key => 'scan-1'));
SELECT on_hand FROM ves.get_stock(:t, :s, 'PEN');
SELECT regress_try($q$SELECT ves.adjust_stock('00000000-0000-0000-0000-000000000e01', '00000000-0000-0000-0000-000000000f01', 'PEN', 2, idempotency_key => 'scan-1')$q$);

-- The table refuses an oversold row even when written directly.
SELECT regress_try($q$UPDATE ves.inventory SET reserved = on_hand + 1 WHERE sku = 'PEN'$q$);
