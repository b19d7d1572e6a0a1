-- PLACEHOLDER, replaced at merge: ves._apply_ingested(event_id) applies an
-- ingested or pulled event's effect to entity state, inventory and orders
-- (written on another branch). The puller (src/pg/sync/pull.cpp) calls it
-- for every event it stores, in the transaction that stores it; until the
-- real one is merged it does nothing.
CREATE FUNCTION ves._apply_ingested(event_id uuid) RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT
$$;
REVOKE ALL ON FUNCTION ves._apply_ingested(uuid) FROM PUBLIC;
