-- The destination kinds are the adapters compiled into pg_ves
-- (src/core/platforms/registry.cpp); SQL keeps no list of its own. What
-- ves.destination_kinds() lists is exactly what ves.destinations accepts.
\set SHOW_CONTEXT never
SELECT kind, description FROM ves.destination_kinds();

-- Every listed kind can be created (a commerce platform with the options
-- and credentials it cannot do without)...
SELECT k.kind, (ves.create_destination('kinds-' || k.kind, k.kind,
  CASE k.kind WHEN 'ves_postgres' THEN 'postgresql://example.com/k' ELSE 'https://example.com/k' END,
  CASE k.kind
    WHEN 'shopify' THEN '{"access_token": "shpat_x"}'
    WHEN 'tiktok_shop' THEN '{"app_key": "k", "app_secret": "s", "refresh_token": "r", "shop_cipher": "c"}'
    WHEN 'amazon_sp' THEN '{"seller_id": "A1", "marketplace_ids": ["ATVPDKIKX0DER"], "client_id": "c",
                            "client_secret": "s", "refresh_token": "r"}'
    WHEN 'meta_catalog' THEN '{"catalog_id": "1", "access_token": "t"}'
    ELSE '{}' END::jsonb
  || CASE WHEN k.kind IN ('shopify', 'tiktok_shop', 'amazon_sp', 'meta_catalog')
          THEN '{"tenant_id": "0190f1e2-7b3c-7d4e-8f50-123456789abc",
                 "store_id": "0190f1e2-7b3c-7d4e-8f50-cba987654321"}'::jsonb
          ELSE '{}' END)).kind = k.kind AS created
FROM ves.destination_kinds() k ORDER BY k.kind;
SELECT count(*) AS unlisted FROM ves.destinations d WHERE d.kind NOT IN (SELECT kind FROM ves.destination_kinds());

-- ...and nothing else, by the table itself: its CHECK asks the same registry.
SELECT pg_get_constraintdef(oid) AS kind_check FROM pg_constraint
WHERE conrelid = 'ves.destinations'::regclass AND conname = 'destinations_kind_check';
SELECT regress_try($q$INSERT INTO ves.destinations (name, kind, url) VALUES ('kinds-x', 'ebay', 'https://example.com/')$q$);
SELECT regress_try($q$INSERT INTO ves.destinations (name, kind, url) VALUES ('kinds-x', 'Webhook', 'https://example.com/')$q$);
SELECT regress_try($q$UPDATE ves.destinations SET kind = 'carrier-pigeon' WHERE name = 'kinds-http'$q$);
SELECT k.kind, ves._destination_kind_known(k.kind) AS known FROM ves.destination_kinds() k
UNION ALL SELECT x, ves._destination_kind_known(x) FROM unnest(ARRAY['', 'ebay', 'Shopify', 'HTTP']) x;

-- The hint for an unknown kind lists the same kinds, from create_destination
-- and from the C check alike.
SELECT regress_try($q$SELECT ves.create_destination('kinds-x', 'ebay', 'https://example.com/')$q$);
SELECT regress_try($q$SELECT * FROM ves._destination_check('ebay', NULL, '{}')$q$);

-- Admins may list the kinds; the worker may evaluate the CHECK when it
-- records a destination's health; nobody else needs either.
SELECT r AS role, has_function_privilege(r, 'ves.destination_kinds()', 'EXECUTE') AS list_kinds,
       has_function_privilege(r, 'ves._destination_kind_known(text)', 'EXECUTE') AS check_kind
FROM unnest(ARRAY['ves_reader', 'ves_writer', 'ves_admin', 'ves_worker']) r;

SELECT ves.drop_destination('kinds-' || kind) FROM ves.destination_kinds();
