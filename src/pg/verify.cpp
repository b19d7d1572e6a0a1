// ves.verify_event and ves.verify_events: recompute every event's payload
// hash and check its Ed25519 signature against the key registry.
#include "pg/boundary.hpp"
#include "pg/spi_plan.hpp"
#include "pg/progress.hpp"
#include "pg/stored_event.hpp"
#include "pg/tenant.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

#include <string>

using namespace pgves::pg;

namespace {

void connect() { pg_call_void([] { spi_connect(); }); }

}  // namespace

// ves.verify_event(event_id uuid) -> boolean
PGVES_FUNCTION(ves_verify_event) {
  StoredEvent e = stored_event_argument(fcinfo, 0);
  // The key registry reads through SPI too.
  connect();
  KeyRegistry keys;
  bool ok = verification_failure(e, keys) == nullptr;
  pg_call_void([] { SPI_finish(); });
  PG_RETURN_BOOL(ok);
}

// ves.verify_events(tenant_id, store_id, entity_type, entity_id,
//                   from_position, to_position) -> (position, event_id, reason)
// Returns only the events that fail. Reports progress in ves.progress and
// stops on cancel.
PGVES_FUNCTION(ves_verify_events) {
  ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  int64 from = PG_ARGISNULL(4) ? 1 : PG_GETARG_INT64(4);
  bool bounded = !PG_ARGISNULL(5);
  int64 to = bounded ? PG_GETARG_INT64(5) : PG_INT64_MAX;
  if (from < 0 || to < from)
    throw VesError(sqlstate::invalid_argument, "the position range is empty or negative", {},
                   "Pass 0 <= from_position <= to_position, or leave them NULL.");
  pg_uuid_t tenant_filter{}, session_tenant{};
  bool by_tenant = !PG_ARGISNULL(0);
  if (by_tenant) tenant_filter = *PG_GETARG_UUID_P(0);
  pg_call_void([&] {
    if (by_tenant) tenant::check_access(&tenant_filter);
    else if (tenant::session_tenant(&session_tenant)) {
      tenant_filter = session_tenant;
      by_tenant = true;
    }
    InitMaterializedSRF(fcinfo, 0);
  });
  Datum args[6] = {Int64GetDatum(from), Int64GetDatum(to), UUIDPGetDatum(&tenant_filter),
                   PG_ARGISNULL(1) ? (Datum)0 : PG_GETARG_DATUM(1),
                   PG_ARGISNULL(2) ? (Datum)0 : PG_GETARG_DATUM(2),
                   PG_ARGISNULL(3) ? (Datum)0 : PG_GETARG_DATUM(3)};
  char nulls[7] = {' ', ' ', by_tenant ? ' ' : 'n', PG_ARGISNULL(1) ? 'n' : ' ',
                   PG_ARGISNULL(2) ? 'n' : ' ', PG_ARGISNULL(3) ? 'n' : ' ', '\0'};
  std::string query = std::string("SELECT ") + kStoredEventColumns +
                      " FROM ves.events WHERE position BETWEEN $1 AND $2"
                      " AND ($3::uuid IS NULL OR tenant_id = $3) AND ($4::uuid IS NULL OR store_id = $4)"
                      " AND ($5::text IS NULL OR entity_type = $5) AND ($6::text IS NULL OR entity_id = $6)"
                      " ORDER BY position";
  connect();
  int64 last_position = pg_call([] {
    SPI_execute("SELECT last_value FROM ves.position_seq", true, 1);
    bool isnull;
    return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  });
  int64 span = (bounded ? to : last_position) - from + 1;
  Portal portal = pg_call([&] {
    Oid types[6] = {INT8OID, INT8OID, UUIDOID, UUIDOID, TEXTOID, TEXTOID};
    return SPI_cursor_open_with_args(nullptr, query.c_str(), 6, types, args, nulls, true, 0);
  });
  pg_call_void([&] { progress::start("verify_events", span > 0 ? span : 0); });
  KeyRegistry keys;
  int64 failed = 0;
  for (;;) {
    uint64 n = pg_call([&] {
      CHECK_FOR_INTERRUPTS();
      SPI_cursor_fetch(portal, true, 1000);
      return SPI_processed;
    });
    if (n == 0) break;
    int64 position = 0;
    SPITupleTable *batch = SPI_tuptable;
    for (uint64 i = 0; i < n; ++i) {
      StoredEvent e = read_stored_event(batch, i);
      position = e.position;
      const char *reason = verification_failure(e, keys);
      if (!reason) continue;
      ++failed;
      pg_uuid_t id = to_pg_uuid(e.event.event_id);
      pg_call_void([&] {
        MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
        pg_uuid_t *copy = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
        *copy = id;
        Datum values[3] = {Int64GetDatum(position), UUIDPGetDatum(copy), CStringGetTextDatum(reason)};
        bool isnull[3] = {false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
        MemoryContextSwitchTo(old);
      });
    }
    pg_call_void([&] {
      SPI_freetuptable(batch);
      progress::update(position - from + 1, failed);
    });
  }
  pg_call_void([&] {
    SPI_cursor_close(portal);
    SPI_finish();
    progress::finish();
  });
  return (Datum)0;
}
