// Recording a conflict: the row of ves.conflicts and the
// sync.conflict_detected event on the conflict's own stream that carries the
// whole record, so that every node the event reaches holds the same record
// (ves._apply_ingested_conflict). An open one also sends NOTIFY
// ves_conflicts (payload: the id). ves._record_conflict(c ves.conflicts)
// serves the plpgsql callers; ves._state_change calls record_conflict.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::conflicts {

// The columns of ves.conflicts, by name.
enum Column {
  conflict_id,
  tenant_id,
  store_id,
  entity_type,
  entity_id,
  conflict_type,
  status,
  rule,
  strategy,
  fields,  // text[]
  base_version,
  local_version,
  base_state,
  local_state,
  remote_state,
  proposed_state,
  resolved_state,
  local_source,
  remote_source,
  local_observed_at,
  remote_observed_at,
  detail,
  detected_at,
  resolved_at,
  resolved_by,  // name
  event_id,
  resolution_event_id,
  column_count
};

struct Row {
  Datum values[column_count];
  bool nulls[column_count];
};

// A row with every column NULL.
void clear(Row *row);

// Records the conflict (a missing conflict_id or detected_at is filled in);
// returns its id. SPI must be connected; only trivially destructible state,
// so C++ callers wrap it in pg_call.
pg_uuid_t record(Row *row);

}  // namespace pgves::pg::conflicts
