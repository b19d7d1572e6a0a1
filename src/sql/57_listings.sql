-- Listings: which SKU of a store is which item on a commerce platform
-- destination (kinds for which ves._destination_kind_platform is true).
--
-- A platform destination is sent counts, not events: every inventory event
-- of a mapped SKU queues an outbox row as for any destination, and when the
-- worker claims it, it reads the SKU's sellable count (available = on hand -
-- reserved) at that moment and sends it for every listing of the SKU whose
-- count differs from what the platform is known to have. Pending changes of
-- one SKU therefore collapse: the first row sends the latest count and the
-- rows after it find nothing to change. See src/pg/sync/deliverer.cpp.

CREATE TABLE ves.listings (
  destination_id    int         NOT NULL REFERENCES ves.destinations ON DELETE CASCADE,
  tenant_id         uuid        NOT NULL,
  store_id          uuid        NOT NULL,
  sku               text        NOT NULL CHECK (octet_length(sku) BETWEEN 1 AND 256),
  location          text        NOT NULL DEFAULT 'default' CHECK (octet_length(location) BETWEEN 1 AND 128),
  -- The platform's ids of the item, as its adapter accepted them, and the
  -- one string they make (core::Adapter::listing_key), which inbound
  -- reports and reads are matched by.
  platform_ref      jsonb       NOT NULL,
  platform_key      text        NOT NULL,
  -- The last count the platform acknowledged from us, and when.
  pushed_quantity   bigint,
  pushed_at         timestamptz,
  -- The last count the platform reported (a webhook, a read), and when.
  reported_quantity bigint,
  reported_at       timestamptz,
  -- What the platform is known to have now: the later of the two; NULL
  -- when unknown (never pushed, or a push ended in doubt). Shopify's
  -- changeFromQuantity.
  known_quantity    bigint,
  -- pending: a count is to be sent; synced: the platform has the count we
  -- last sent; stale: the platform moved on behind our back and its count
  -- is to be read; failed: the last push was refused (last_error says why).
  state             text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'synced', 'stale', 'failed')),
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (destination_id, sku, location),
  UNIQUE (destination_id, platform_key)
) WITH (fillfactor = 80);
-- A SKU's listings on every destination: what agreeing across platforms
-- (ves._listings_agree) looks up per pushed count.
CREATE INDEX listings_sku_idx ON ves.listings (tenant_id, store_id, sku, location);
-- Stale listings per destination: the worker looks for them about once a
-- second (ves._reconcile_due). Few, and a push that leaves a listing
-- synced does not change its state, so its update stays HOT.
CREATE INDEX listings_stale_idx ON ves.listings (destination_id) WHERE state = 'stale';
SELECT pg_catalog.pg_extension_config_dump('ves.listings', '');

-- The platform's ids of a listing checked by the kind's adapter; returns
-- the listing's key on the platform.
CREATE FUNCTION ves._listing_check(kind text, platform_ref jsonb, kind_options jsonb) RETURNS text
  AS 'MODULE_PATHNAME', 'ves_listing_check' LANGUAGE C STABLE;

-- Whether a kind's platform holds one count per item, so that a SKU is
-- mapped at one location only (core::Adapter::one_location_per_sku).
CREATE FUNCTION ves._destination_kind_one_location(kind text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'ves_destination_kind_one_location' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The listings with their destination's name and kind, of the session's
-- tenants only (as ves.listings' row-level security).
CREATE VIEW ves.platform_listings WITH (security_barrier) AS
  SELECT d.name AS destination, d.kind, l.tenant_id, l.store_id, l.sku, l.location, l.platform_ref,
         l.pushed_quantity, l.pushed_at, l.reported_quantity, l.reported_at, l.known_quantity,
         l.state, l.last_error, l.updated_at
  FROM ves.listings l JOIN ves.destinations d ON d.id = l.destination_id
  WHERE ves.tenant_visible(l.tenant_id);

-- Queues the latest inventory event of a mapped SKU for one destination, so
-- the worker sends the SKU's count (mapping, remapping, a stale count read
-- again). Returns false when the SKU has no inventory event yet (then the
-- first change sends it).
CREATE FUNCTION ves._queue_listing(dest ves.destinations, tenant_id uuid, sku text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE e record;
BEGIN
  SELECT x.position, x.event_id, x.recorded_at INTO e FROM ves.events x
  WHERE x.tenant_id = _queue_listing.tenant_id AND x.entity_type = 'inventory' AND x.entity_id = _queue_listing.sku
  ORDER BY x.entity_version DESC LIMIT 1;
  IF NOT FOUND THEN RETURN false; END IF;
  -- Always a row of its own: an open row of the SKU may be in a claim that
  -- has not committed yet and so read the listings as they were before.
  -- A row that finds the platform already has the count sends nothing.
  INSERT INTO ves.outbox (tenant_id, destination_id, event_position, event_id, event_recorded_at, entity_type, entity_id)
  VALUES (tenant_id, dest.id, e.position, e.event_id, e.recorded_at, 'inventory', sku);
  PERFORM ves._wake_worker();
  RETURN true;
END $$;

-- Maps a SKU (at a location) of the destination's store to an item on the
-- platform and queues its current count once (the initial sync). Mapping
-- again replaces platform_ref; a new item starts from an unknown count.
CREATE FUNCTION ves.map_listing(destination text, sku text, platform_ref jsonb, location text DEFAULT 'default')
  RETURNS SETOF ves.platform_listings
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d ves.destinations := ves._destination(destination, true);
  store uuid;
  key text;
  old ves.listings;
BEGIN
  IF NOT ves._destination_kind_platform(d.kind) THEN
    RAISE EXCEPTION 'destination "%" is of kind %, which has no listings', destination, d.kind USING ERRCODE = 'VE043',
      HINT = 'Map listings to a commerce platform destination (kinds ' || (SELECT string_agg(k.kind, ', ')
               FROM ves.destination_kinds() k WHERE ves._destination_kind_platform(k.kind)) || ').';
  END IF;
  IF sku IS NULL OR octet_length(sku) NOT BETWEEN 1 AND 256 THEN
    RAISE EXCEPTION 'sku must be 1 to 256 bytes' USING ERRCODE = 'VE006', HINT = 'Pass the SKU as ves.inventory has it.';
  END IF;
  IF location IS NULL OR octet_length(location) NOT BETWEEN 1 AND 128 THEN
    RAISE EXCEPTION 'location must be 1 to 128 bytes' USING ERRCODE = 'VE006',
      HINT = 'Leave the default ''default'' when the store has one location.';
  END IF;
  IF platform_ref IS NULL OR jsonb_typeof(platform_ref) <> 'object' THEN
    RAISE EXCEPTION 'platform_ref must be a JSON object' USING ERRCODE = 'VE010',
      HINT = 'Pass the platform''s ids of the item, e.g. ''{"inventory_item_id": "gid://shopify/InventoryItem/1"}''.';
  END IF;
  key := ves._listing_check(d.kind, platform_ref, d.kind_options);
  store := (d.kind_options->>'store_id')::uuid;
  IF d.tenant_id IS NULL OR store IS NULL THEN
    RAISE EXCEPTION 'destination "%" names no store', destination USING ERRCODE = 'VE043',
      HINT = 'Set its tenant_id and store_id with ves.alter_destination.';
  END IF;
  IF ves._destination_kind_one_location(d.kind) AND EXISTS (
       SELECT FROM ves.listings l WHERE l.destination_id = d.id AND l.sku = map_listing.sku
       AND l.location <> map_listing.location) THEN
    RAISE EXCEPTION 'SKU "%" is already mapped at another location of destination "%"', sku, destination
      USING ERRCODE = 'VE043', HINT = 'This platform holds one count per item: map one location of a SKU.';
  END IF;
  IF EXISTS (SELECT FROM ves.listings l WHERE l.destination_id = d.id AND l.platform_key = key
             AND (l.sku, l.location) <> (map_listing.sku, map_listing.location)) THEN
    RAISE EXCEPTION 'that platform item is already mapped to another SKU of destination "%"', destination
      USING ERRCODE = 'VE043', HINT = 'Unmap it first with ves.unmap_listing.';
  END IF;
  SELECT * INTO old FROM ves.listings l
  WHERE l.destination_id = d.id AND l.sku = map_listing.sku AND l.location = map_listing.location FOR UPDATE;
  IF FOUND AND old.platform_key = key THEN
    UPDATE ves.listings l SET platform_ref = map_listing.platform_ref, updated_at = now()
    WHERE l.destination_id = d.id AND l.sku = map_listing.sku AND l.location = map_listing.location;
  ELSE
    INSERT INTO ves.listings AS l (destination_id, tenant_id, store_id, sku, location, platform_ref, platform_key)
    VALUES (d.id, d.tenant_id, store, map_listing.sku, map_listing.location, map_listing.platform_ref, key)
    ON CONFLICT ON CONSTRAINT listings_pkey DO UPDATE
      SET platform_ref = excluded.platform_ref, platform_key = excluded.platform_key, pushed_quantity = NULL,
          pushed_at = NULL, reported_quantity = NULL, reported_at = NULL, known_quantity = NULL,
          state = 'pending', last_error = NULL, updated_at = now();
    PERFORM ves._queue_listing(d, d.tenant_id, sku);
  END IF;
  RETURN QUERY SELECT * FROM ves.platform_listings p
    WHERE p.destination = d.name AND p.sku = map_listing.sku AND p.location = map_listing.location;
END $$;

-- Removes a mapping; returns whether there was one. Rows already queued for
-- it find nothing to send.
CREATE FUNCTION ves.unmap_listing(destination text, sku text, location text DEFAULT 'default') RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE d ves.destinations := ves._destination(destination, true);
BEGIN
  DELETE FROM ves.listings l WHERE l.destination_id = d.id AND l.sku = unmap_listing.sku
    AND l.location = unmap_listing.location;
  RETURN FOUND;
END $$;
