\set SHOW_CONTEXT never
-- Listings of commerce platform destinations: mapping is checked by the
-- kind's adapter and queues the SKU's count once; credentials are sealed
-- and checked as a whole set; readers see their tenants' listings only.
\set ta '''00000000-0000-0000-0000-0000000019aa'''
\set tb '''00000000-0000-0000-0000-0000000019bb'''
\set s '''00000000-0000-0000-0000-000000001901'''

SELECT (ves.create_destination('l-shop', 'shopify', 'https://acme.myshopify.com',
  jsonb_build_object('tenant_id', :ta, 'store_id', :s, 'access_token', 'shpat_regress_secret',
                     'location_id', 'gid://shopify/Location/7'))).name AS created;
SELECT kind, entity_types, tenant_id = :ta AS own_tenant, kind_options, rate_limit, burst, concurrency
FROM ves.destinations WHERE name = 'l-shop';
-- The credential is in no column anyone can read, only in the sealed box.
SELECT count(*) AS plain_anywhere FROM ves.destinations d WHERE d::text LIKE '%shpat_regress_secret%';
SELECT position('shpat_regress_secret' IN encode(credentials_box, 'escape')) AS in_box
FROM ves.destination_secrets s JOIN ves.destinations d ON d.id = s.destination_id WHERE d.name = 'l-shop';

-- An alter is checked with the stored options and credentials: changing one
-- option keeps the rest; removing a required credential is refused whole.
SELECT (ves.alter_destination('l-shop', '{"api_version": "2026-07"}')).kind_options->>'api_version' AS api_version;
SELECT regress_try($q$SELECT ves.alter_destination('l-shop', '{"access_token": null}')$q$);
SELECT regress_try($q$SELECT ves.alter_destination('l-shop', '{"api_version": "2020-01"}')$q$);
SELECT kind_options->>'api_version' AS unchanged FROM ves.destinations WHERE name = 'l-shop';
SELECT regress_try($q$SELECT ves.create_destination('l-bad', 'shopify', 'https://acme.myshopify.com', '{"access_token": "x"}')$q$);

-- Mapping: checked, one platform item per SKU, queued once.
SELECT outcome, available FROM ves.set_stock(:ta, :s, 'TEE-M', 12);
SELECT count(*) AS queued_before FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
WHERE d.name = 'l-shop' AND o.status = 'pending';
SELECT destination, sku, location, platform_ref, state, known_quantity
FROM ves.map_listing('l-shop', 'TEE-M', '{"inventory_item_id": "gid://shopify/InventoryItem/42"}');
SELECT count(*) AS queued_after FROM ves.outbox o JOIN ves.destinations d ON d.id = o.destination_id
WHERE d.name = 'l-shop' AND o.status = 'pending' AND o.entity_id = 'TEE-M';
SELECT platform_key FROM ves.listings WHERE sku = 'TEE-M';
SELECT regress_try($q$SELECT ves.map_listing('l-shop', 'TEE-L', '{"inventory_item_id": "gid://shopify/InventoryItem/42"}')$q$);
SELECT regress_try($q$SELECT ves.map_listing('l-shop', 'TEE-L', '{"inventory_item_id": "42"}')$q$);
SELECT regress_try($q$SELECT ves.map_listing('l-shop', 'TEE-L', '[1]')$q$);
SELECT regress_try($q$SELECT ves.map_listing('l-shop', '', '{"inventory_item_id": "gid://shopify/InventoryItem/43"}')$q$);
SELECT regress_try($q$SELECT ves.map_listing('nowhere', 'TEE-L', '{}')$q$);
SELECT (ves.create_destination('l-hook', 'webhook', 'https://example.com/hook')).name AS hook;
SELECT regress_try($q$SELECT ves.map_listing('l-hook', 'TEE-L', '{}')$q$);
-- A SKU with no stock yet is mapped and waits for its first change.
SELECT state FROM ves.map_listing('l-shop', 'TEE-L', '{"inventory_item_id": "gid://shopify/InventoryItem/43"}');
SELECT count(*) AS nothing_queued FROM ves.outbox WHERE entity_id = 'TEE-L';
-- Remapping to another item starts from an unknown count.
UPDATE ves.listings SET known_quantity = 12, state = 'synced' WHERE sku = 'TEE-M';
SELECT state, known_quantity FROM ves.map_listing('l-shop', 'TEE-M', '{"inventory_item_id": "gid://shopify/InventoryItem/44"}');
SELECT ves.unmap_listing('l-shop', 'TEE-L') AS unmapped, ves.unmap_listing('l-shop', 'TEE-L') AS again;

-- Amazon holds one count per item: one location per SKU.
SELECT (ves.create_destination('l-amz', 'amazon_sp', 'https://sellingpartnerapi-na.amazon.com',
  jsonb_build_object('tenant_id', :ta, 'store_id', :s, 'seller_id', 'A1', 'marketplace_ids', '["ATVPDKIKX0DER"]'::jsonb,
                     'client_id', 'c', 'client_secret', 's', 'refresh_token', 'r'))).name AS amazon;
SELECT state FROM ves.map_listing('l-amz', 'TEE-M', '{"sku": "TEE-M"}');
SELECT regress_try($q$SELECT ves.map_listing('l-amz', 'TEE-M', '{"sku": "TEE-M-2"}', 'back-room')$q$);

-- Who may do what: admins map, readers read their own tenant's listings.
CREATE ROLE regress_l_reader IN ROLE ves_reader;
CREATE ROLE regress_l_writer IN ROLE ves_writer;
SELECT r AS role, has_function_privilege(r, 'ves.map_listing(text, text, jsonb, text)', 'EXECUTE') AS map,
       has_function_privilege(r, 'ves.unmap_listing(text, text, text)', 'EXECUTE') AS unmap,
       has_table_privilege(r, 'ves.platform_listings', 'SELECT') AS read,
       has_table_privilege(r, 'ves.destination_tokens', 'SELECT') AS tokens
FROM unnest(ARRAY['regress_l_reader', 'regress_l_writer', 'ves_admin', 'ves_worker']) r;
INSERT INTO ves.listings (destination_id, tenant_id, store_id, sku, platform_ref, platform_key)
SELECT id, :tb, :s, 'OTHER', '{"inventory_item_id": "gid://shopify/InventoryItem/99"}', 'other-tenant'
FROM ves.destinations WHERE name = 'l-shop';
SET ROLE regress_l_reader;
SET ves.tenant_id = :ta;
SELECT destination, sku FROM ves.platform_listings ORDER BY 1, 2;
SELECT count(*) AS own_rows FROM ves.listings;
SET ves.tenant_id = :tb;
SELECT destination, sku FROM ves.platform_listings ORDER BY 1, 2;
RESET ves.tenant_id;
SELECT regress_try($q$SELECT ves.map_listing('l-shop', 'X', '{"inventory_item_id": "gid://shopify/InventoryItem/5"}')$q$);
SELECT regress_try($q$SELECT * FROM ves.destination_secrets$q$);
RESET ROLE;
DROP ROLE regress_l_reader, regress_l_writer;

-- Recording pushed counts costs what the pushed listings cost, not what the
-- store has: ves._listings_agree looks each SKU's other listings up by key
-- (listings_sku_idx). 20,000 listings of one store (written around the
-- audit trigger, which is not under test here), 10 of them pushed to their
-- counts in one statement, as the worker records them: about 150 blocks;
-- a lookup that reads every listing reads hundreds more.
SELECT count(*) AS stocked FROM generate_series(1, 10) g, ves.set_stock(:ta, :s, 'BULK-' || g, 7);
SET session_replication_role = replica;
INSERT INTO ves.listings (destination_id, tenant_id, store_id, sku, platform_ref, platform_key)
SELECT d.id, :ta, :s, 'BULK-' || g, jsonb_build_object('inventory_item_id', 'gid://shopify/InventoryItem/' || (100000 + g)),
       'bulk-' || g
FROM ves.destinations d, generate_series(1, 20000) g WHERE d.name = 'l-shop';
RESET session_replication_role;
ANALYZE ves.listings;
CREATE TEMP VIEW listing_blocks AS
SELECT sum(pg_stat_get_xact_blocks_fetched(c.oid)) AS blocks FROM pg_class c
WHERE c.oid = 'ves.listings'::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'ves.listings'::regclass);
BEGIN;
SELECT blocks AS blocks_before FROM listing_blocks \gset
UPDATE ves.listings l SET known_quantity = 7, state = 'synced'
WHERE l.destination_id = (SELECT id FROM ves.destinations WHERE name = 'l-shop')
  AND l.sku IN ('BULK-1', 'BULK-2', 'BULK-3', 'BULK-4', 'BULK-5', 'BULK-6', 'BULK-7', 'BULK-8', 'BULK-9', 'BULK-10');
SELECT blocks - :blocks_before < 400 AS blocks_bounded FROM listing_blocks;
ROLLBACK;
SET session_replication_role = replica;
DELETE FROM ves.listings WHERE sku LIKE 'BULK-%';
RESET session_replication_role;

SELECT ves.drop_destination(n) FROM unnest(ARRAY['l-shop', 'l-hook', 'l-amz']) n;
SELECT count(*) AS listings_left FROM ves.listings;

-- Mapping and unmapping are administrative calls: the audit log has them.
SELECT action, target, arguments->>'location' AS location FROM ves.audit_log
WHERE action IN ('map_listing', 'unmap_listing') ORDER BY audit_id;
