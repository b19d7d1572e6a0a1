// Recording a conflict (conflict_record.hpp). The event's payload is the
// record under the names other nodes read (ves._apply_ingested_conflict),
// each value as jsonb_build_object writes it.
#include "pg/state/conflict_record.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/jsonb_value.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/store/append.hpp"

extern "C" {
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace pgves::pg::conflicts {

namespace {

const char *const kNames[column_count] = {"conflict_id",
                                          "tenant_id",
                                          "store_id",
                                          "entity_type",
                                          "entity_id",
                                          "conflict_type",
                                          "status",
                                          "rule",
                                          "strategy",
                                          "fields",
                                          "base_version",
                                          "local_version",
                                          "base_state",
                                          "local_state",
                                          "remote_state",
                                          "proposed_state",
                                          "resolved_state",
                                          "local_source",
                                          "remote_source",
                                          "local_observed_at",
                                          "remote_observed_at",
                                          "detail",
                                          "detected_at",
                                          "resolved_at",
                                          "resolved_by",
                                          "event_id",
                                          "resolution_event_id"};

const Oid kTypes[column_count] = {
    UUIDOID,  UUIDOID,        UUIDOID,        TEXTOID, TEXTOID, TEXTOID,        TEXTOID,
    TEXTOID,  TEXTOID,        TEXTARRAYOID,   INT8OID, INT8OID, JSONBOID,       JSONBOID,
    JSONBOID, JSONBOID,       JSONBOID,       TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
    JSONBOID, TIMESTAMPTZOID, TIMESTAMPTZOID, NAMEOID, UUIDOID, UUIDOID};

// The event's payload: key and column.
struct Member {
  const char *key;
  Column column;
};
const Member kPayload[] = {
    {"conflict_id", conflict_id},
    {"conflict_type", conflict_type},
    {"rule", rule},
    {"status", status},
    {"strategy", strategy},
    {"entity_type", entity_type},
    {"entity_id", entity_id},
    {"fields", fields},
    {"base_version", base_version},
    {"local_version", local_version},
    {"local", local_state},
    {"remote", remote_state},
    {"base", base_state},
    {"proposed", proposed_state},
    {"resolved", resolved_state},
    {"local_source", local_source},
    {"remote_source", remote_source},
    {"local_observed_at", local_observed_at},
    {"remote_observed_at", remote_observed_at},
    {"detail", detail},
    {"detected_at", detected_at},
    {"resolved_at", resolved_at},
    {"resolved_by", resolved_by},
};

SavedPlan insert_row = {nullptr, column_count, {}, nullptr};
static_assert(column_count <= sizeof insert_row.argtypes / sizeof(Oid),
              "SavedPlan holds too few arguments");

// INSERT INTO ves.conflicts (every column) VALUES ($1, ...), made once.
void prepare_insert() {
  if (insert_row.sql) return;
  StringInfoData sql;
  initStringInfo(&sql);
  appendStringInfoString(&sql, "INSERT INTO ves.conflicts (");
  for (int i = 0; i < column_count; ++i) appendStringInfo(&sql, "%s%s", i ? ", " : "", kNames[i]);
  appendStringInfoString(&sql, ") VALUES (");
  for (int i = 0; i < column_count; ++i) appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
  appendStringInfoChar(&sql, ')');
  char *kept = MemoryContextStrdup(TopMemoryContext, sql.data);
  for (int i = 0; i < column_count; ++i) insert_row.argtypes[i] = kTypes[i];
  insert_row.sql = kept;
}

Jsonb *payload_of(const Row &row) {
  JsonbParseState *ps = nullptr;
  pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
  for (const Member &m : kPayload) {
    jsonb_push_key(&ps, m.key);
    jsonb_push_datum(&ps, WJB_VALUE, kTypes[m.column], row.values[m.column], row.nulls[m.column]);
  }
  return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, nullptr));
}

Jsonb *empty_object() {
  JsonbParseState *ps = nullptr;
  pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
  return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, nullptr));
}

}  // namespace

void clear(Row *row) {
  for (int i = 0; i < column_count; ++i) {
    row->values[i] = (Datum)0;
    row->nulls[i] = true;
  }
}

pg_uuid_t record(Row *row) {
  if (row->nulls[conflict_id]) {  // a random (version 4) UUID, as gen_random_uuid()
    pg_uuid_t *u = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
    if (!pg_strong_random(u->data, UUID_LEN))
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random values")));
    u->data[6] = (u->data[6] & 0x0f) | 0x40;
    u->data[8] = (u->data[8] & 0x3f) | 0x80;
    row->values[conflict_id] = UUIDPGetDatum(u);
    row->nulls[conflict_id] = false;
  }
  if (row->nulls[detected_at]) {
    row->values[detected_at] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    row->nulls[detected_at] = false;
  }
  pg_uuid_t id = *DatumGetUUIDP(row->values[conflict_id]);
  char *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, row->values[conflict_id]));

  AppendInput in;
  memset(&in, 0, sizeof in);
  in.tenant = *DatumGetUUIDP(row->values[tenant_id]);
  in.store = *DatumGetUUIDP(row->values[store_id]);
  in.entity_type = cstring_to_text("sync.conflict");
  in.entity_id = cstring_to_text(id_text);
  in.event_type = cstring_to_text("sync.conflict_detected");
  in.payload = payload_of(*row);
  in.has_expected = true;
  in.expected = 0;
  in.idempotency_key = nullptr;
  in.metadata = empty_object();
  in.source = DatumGetTextPP(row->values[remote_source]);
  in.has_id = false;
  in.presigned = false;
  AppendResult r = append_one(in);
  if (!r.duplicate) notify_appended();
  pg_uuid_t *event = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
  *event = r.event_id;
  row->values[event_id] = UUIDPGetDatum(event);
  row->nulls[event_id] = false;

  prepare_insert();
  char nulls[column_count + 1];
  for (int i = 0; i < column_count; ++i) nulls[i] = row->nulls[i] ? 'n' : ' ';
  nulls[column_count] = '\0';
  spi_run(insert_row, row->values, nulls, false, SPI_OK_INSERT);

  if (!row->nulls[status] && strcmp(TextDatumGetCString(row->values[status]), "open") == 0) {
    PreventCommandDuringRecovery("NOTIFY");
    Async_Notify("ves_conflicts", id_text);
  }
  return id;
}

}  // namespace pgves::pg::conflicts

using namespace pgves::pg;

// ves._record_conflict(c ves.conflicts) -> uuid. No C++ object lives in this
// frame: it calls PostgreSQL directly.
PGVES_FUNCTION(ves_record_conflict) {
  if (PG_ARGISNULL(0)) elog(ERROR, "pg_ves: ves._record_conflict called with NULL");
  HeapTupleHeader c = PG_GETARG_HEAPTUPLEHEADER(0);
  conflicts::Row row;
  for (int i = 0; i < conflicts::column_count; ++i)
    row.values[i] = GetAttributeByName(c, conflicts::kNames[i], &row.nulls[i]);
  spi_connect();
  pg_uuid_t id = conflicts::record(&row);
  SPI_finish();
  pg_uuid_t *out = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
  *out = id;
  PG_RETURN_UUID_P(out);
}
