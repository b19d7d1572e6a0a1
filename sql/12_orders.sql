-- Orders follow their state machine; platform events that arrive early are
-- held and released in order; impossible events are refused.
\set SHOW_CONTEXT never
\set t '''00000000-0000-0000-0000-000000000e02'''
\set s '''00000000-0000-0000-0000-000000000f02'''

CREATE FUNCTION ord(r ves.order_result) RETURNS text LANGUAGE sql AS $$
  SELECT r.outcome || ': ' || r.status || ' payment=' || r.payment_status || ' return=' || r.return_status
         || ' v' || r.version || CASE WHEN r.released > 0 THEN ' released=' || r.released ELSE '' END
$$;

-- The happy path, payment and a return.
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'order.created', '{"total": 30, "currency": "EUR"}'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'payment.authorized'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'payment.captured'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'order.updated', '{"note": "gift wrap"}'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'order.shipped', '{"tracking_number": "1Z999", "carrier": "UPS"}'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'order.delivered'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'return.requested', '{"reason": "too small"}'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'return.approved'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'return.received'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'return.refunded'));
SELECT ord(ves.record_order_event(:t, :s, 'A-1', 'payment.refunded'));
SELECT status, payment_status, return_status, tracking_number, data FROM ves.get_order(:t, 'A-1');
SELECT entity_version, event_type FROM ves.events WHERE tenant_id = :t AND entity_id = 'A-1' ORDER BY position;

-- Refused: a shipment without tracking number, anything after a cancel,
-- delivery twice, cancelling what shipped, unknown events. Nothing is written.
SELECT ord(ves.record_order_event(:t, :s, 'B-1', 'order.created'));
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'B-1', 'order.shipped')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'B-1', 'order.shipped', '{"tracking_number": ""}')$q$);
SELECT ord(ves.record_order_event(:t, :s, 'B-1', 'order.cancelled', '{"reason": "customer"}'));
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'B-1', 'order.shipped', '{"tracking_number": "1Z"}')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'B-1', 'order.shipped', '{"tracking_number": "1Z"}', source => 'shopify')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'B-1', 'order.updated')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'B-1', 'return.requested')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'A-1', 'order.cancelled')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'A-1', 'order.delivered')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'A-1', 'order.created')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'A-1', 'order.teleported')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'A-1', 'payment.captured')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'A-1', 'order.updated', '[]')$q$);
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'A-1', NULL)$q$);
SELECT status FROM ves.get_order(:t, 'B-1');
SELECT count(*) AS b1_events FROM ves.events WHERE tenant_id = :t AND entity_id = 'B-1';

-- Out of order from a person: refused, with the way out in the hint.
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'C-1', 'order.shipped', '{"tracking_number": "1Z"}')$q$);
SELECT count(*) AS c1_rows FROM ves.orders WHERE tenant_id = :t AND order_id = 'C-1';

-- Out of order from a platform: held, then released in arrival order as soon
-- as the order can take them.
SELECT ord(ves.record_order_event(:t, :s, 'D-1', 'order.delivered', source => 'tiktok'));
SELECT ord(ves.record_order_event(:t, :s, 'D-1', 'payment.captured', source => 'tiktok'));
SELECT ord(ves.record_order_event(:t, :s, 'D-1', 'order.shipped', '{"tracking_number": "TT1"}', source => 'tiktok'));
-- (a shipment without tracking number is refused at once: it can never become valid)
SELECT regress_try($q$SELECT ves.record_order_event('00000000-0000-0000-0000-000000000e02', '00000000-0000-0000-0000-000000000f02', 'D-1', 'order.shipped', '{}', source => 'tiktok')$q$);
SELECT event_type, status, reason FROM ves.held_order_events WHERE tenant_id = :t AND order_id = 'D-1' ORDER BY hold_id;
SELECT ord(ves.record_order_event(:t, :s, 'D-1', 'order.created', '{"total": 5}', source => 'tiktok'));
SELECT event_type, status FROM ves.held_order_events WHERE tenant_id = :t AND order_id = 'D-1' ORDER BY hold_id;
SELECT entity_version, event_type FROM ves.events WHERE tenant_id = :t AND entity_id = 'D-1' ORDER BY position;
-- A held event the order can no longer take is closed as rejected, not applied.
SELECT ord(ves.record_order_event(:t, :s, 'E-1', 'order.delivered', source => 'amazon'));
SELECT ord(ves.record_order_event(:t, :s, 'E-1', 'order.created', source => 'amazon'));
SELECT ord(ves.record_order_event(:t, :s, 'E-1', 'order.cancelled', source => 'amazon'));
SELECT ord(ves.record_order_event(:t, :s, 'E-1', 'payment.authorized', source => 'amazon'));
SELECT event_type, status, reason FROM ves.held_order_events WHERE tenant_id = :t AND order_id = 'E-1' ORDER BY hold_id;

-- Held events whose prerequisite never comes expire after the sync setting
-- order_hold (7 days); the worker closes them.
SELECT ord(ves.record_order_event(:t, :s, 'G-1', 'order.delivered', source => 'shopify'));
SELECT ves.get_sync_settings() ->> 'order_hold' AS order_hold;
SELECT ves.expire_held_order_events(now() + interval '6 days') AS expired_early;
SELECT ves.expire_held_order_events(now() + interval '8 days') AS expired_later;
SELECT event_type, status, reason FROM ves.held_order_events WHERE tenant_id = :t AND order_id = 'G-1';
SELECT regress_try($q$SELECT ves.set_sync_settings('{"order_hold": "soon"}')$q$);

-- Webhook retries with an idempotency key return the first response.
SELECT ord(ves.record_order_event(:t, :s, 'F-1', 'order.created', idempotency_key => 'wh-1', source => 'shopify'));
SELECT ord(ves.record_order_event(:t, :s, 'F-1', 'order.created', idempotency_key => 'wh-1', source => 'shopify'));
SELECT count(*) AS f1_events FROM ves.events WHERE tenant_id = :t AND entity_id = 'F-1';
