-- Resolving a stored conflict by hand. What each strategy does is decided in
-- src/core/state (ves._check_resolution, ves._resolution_effect):
-- accept_local keeps the entity as it is now; accept_remote applies the
-- incoming side's changes on top of it; merge stores `merged` (a whole state;
-- it may be omitted when no field conflicts); last_write_wins does whichever
-- of the two wins the order automatic resolution uses (source priority,
-- then the later observation). The store that holds the entity applies it:
-- ves._resolve_stock_conflict (80_inventory.sql) for the counts of
-- ves.inventory, ves._resolve_state_conflict (75_state.sql) for
-- ves.entity_state.

-- Emits sync.conflict_resolved on the conflict's stream and, when the entity
-- changes, its own event.
CREATE FUNCTION ves.resolve_conflict(conflict_id uuid, strategy text, merged jsonb DEFAULT NULL)
  RETURNS ves.upsert_result
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c        ves.conflicts;
  done     record;
  ar       ves.append_result;
  res      ves.upsert_result;
  chosen   text;
BEGIN
  PERFORM ves._check_resolution(conflict_id, strategy, merged);
  SELECT * INTO c FROM ves.conflicts x WHERE x.conflict_id = resolve_conflict.conflict_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'conflict % does not exist', conflict_id USING ERRCODE = 'VE012',
      HINT = 'See ves.open_conflicts for the conflicts waiting for a decision.';
  END IF;
  PERFORM ves.check_tenant(c.tenant_id);
  IF EXISTS (SELECT 1 FROM ves.applied_events a WHERE a.tenant_id = c.tenant_id AND a.event_id = c.event_id) THEN
    RAISE EXCEPTION 'conflict % was recorded by another node', conflict_id USING ERRCODE = 'VE057',
      DETAIL = format('recorded by agent %s', (SELECT e.source_agent_id FROM ves.events e WHERE e.event_id = c.event_id)),
      HINT = 'Resolve it on the node that recorded it; its resolution arrives here as a sync.conflict_resolved event.';
  END IF;
  IF c.status <> 'open' THEN
    RAISE EXCEPTION 'conflict % is already resolved', conflict_id USING ERRCODE = 'VE030',
      DETAIL = format('resolved with %s by %s at %s', c.strategy, c.resolved_by, c.resolved_at),
      HINT = 'A conflict is resolved once; to change the entity again use ves.upsert.';
  END IF;
  c.strategy := strategy;
  IF c.rule = 'sequencer_version_conflict' THEN
    -- A sequencer refused the event: what becomes of its outbox row
    -- (98_sequencer_conflicts.sql); the entity is not touched.
    SELECT * INTO done FROM ves._resolve_outbox_conflict(c, strategy);
  ELSE
    chosen := ves._resolution_effect(conflict_id, strategy, merged, c.fields,
                                     ves.get_conflict_policy(c.tenant_id, c.entity_type),
                                     c.local_source, c.local_observed_at, c.local_state,
                                     c.remote_source, c.remote_observed_at, c.remote_state);
    IF c.entity_type = 'inventory' AND c.detail ? 'sku' THEN
      SELECT * INTO done FROM ves._resolve_stock_conflict(c, chosen, merged);
    ELSE
      SELECT * INTO done FROM ves._resolve_state_conflict(c, chosen, merged);
    END IF;
  END IF;
  res.version := done.version;
  res.event_id := done.event_id;

  SELECT * INTO ar FROM ves.append(c.tenant_id, c.store_id, 'sync.conflict', c.conflict_id::text,
    'sync.conflict_resolved',
    jsonb_build_object('conflict_id', c.conflict_id, 'strategy', strategy, 'entity_type', c.entity_type,
                       'entity_id', c.entity_id, 'version', res.version, 'resolved_by', session_user,
                       'resolved', done.resolved_state, 'resolved_at', now()),
    source => 'manual');
  UPDATE ves.conflicts x SET status = 'resolved', strategy = resolve_conflict.strategy,
    resolved_state = done.resolved_state, resolved_at = now(),
    resolved_by = session_user, resolution_event_id = ar.event_id
  WHERE x.conflict_id = resolve_conflict.conflict_id;
  res.outcome := 'resolved';
  res.conflict_id := conflict_id;
  res.original_outcome := 'resolved';
  RETURN res;
END $$;
