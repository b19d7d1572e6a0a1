// ves.verify_event and ves.verify_events: recompute every event's payload
// hash and check its Ed25519 signature against the key registry; verify_events
// also checks that every entity's stream of versions is whole.
#include "core/crypto/thread_pool.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/settings.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/base/progress.hpp"
#include "pg/base/safe.hpp"
#include "pg/store/stored_event.hpp"
#include "pg/base/tenant.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace pgves::pg;

namespace {

// What the signatures cannot show: an event deleted from an entity's stream
// (versions run 1, 2, 3, ... with the stream row holding the last one), or a
// version stored twice. Retention drops whole old months, so a missing
// prefix or a stream with no events left is only reported when no partition
// was ever dropped (ves.maintenance_log).
const char *const kStreamGaps =
    "WITH kept AS (SELECT NOT EXISTS (SELECT FROM ves.maintenance_log l"
    "                                  WHERE l.action OPERATOR(pg_catalog.=) 'drop_partition') AS "
    "whole),"
    " ev AS (SELECT e.position, e.event_id, e.entity_type, e.entity_id, e.entity_version,"
    "               pg_catalog.lag(e.entity_version) OVER (PARTITION BY e.tenant_id, "
    "e.entity_type, e.entity_id"
    "                                                     ORDER BY e.position) AS prev"
    "        FROM ves.events e WHERE e.position BETWEEN $1 AND $2"
    "          AND ($3::uuid IS NULL OR e.tenant_id = $3) AND ($4::uuid IS NULL OR e.store_id = $4)"
    "          AND ($5::text IS NULL OR e.entity_type = $5) AND ($6::text IS NULL OR e.entity_id = "
    "$6))"
    " SELECT ev.position, ev.event_id,"
    "        CASE WHEN ev.entity_version = ev.prev THEN 'duplicate_version' ELSE 'missing_version' "
    "END,"
    "        CASE WHEN ev.entity_version = ev.prev"
    "             THEN pg_catalog.format('%s %s: version %s is stored twice', ev.entity_type, "
    "ev.entity_id,"
    "                                    ev.entity_version)"
    "             WHEN coalesce(ev.prev, 0) + 1 = ev.entity_version - 1"
    "             THEN pg_catalog.format('%s %s: version %s is missing', ev.entity_type, "
    "ev.entity_id,"
    "                                    ev.entity_version - 1)"
    "             ELSE pg_catalog.format('%s %s: versions %s to %s are missing', ev.entity_type, "
    "ev.entity_id,"
    "                                    coalesce(ev.prev, 0) + 1, ev.entity_version - 1) END"
    " FROM ev, kept"
    " WHERE CASE WHEN ev.prev IS NULL THEN $7 AND kept.whole AND ev.entity_version <> 1"
    "            ELSE ev.entity_version <> ev.prev + 1 END"
    " UNION ALL"
    " SELECT NULL::bigint, NULL::uuid, 'missing_version',"
    "        CASE WHEN coalesce(x.m, 0) + 1 = s.version"
    "             THEN pg_catalog.format('%s %s: version %s, the stream''s last, is missing',"
    "                                    s.entity_type, s.entity_id, s.version)"
    "             ELSE pg_catalog.format('%s %s: versions %s to %s, the stream''s last, are "
    "missing',"
    "                                    s.entity_type, s.entity_id, coalesce(x.m, 0) + 1, "
    "s.version) END"
    " FROM ves.streams s CROSS JOIN kept,"
    "      LATERAL (SELECT pg_catalog.max(e.entity_version) AS m FROM ves.events e"
    "               WHERE e.tenant_id = s.tenant_id AND e.entity_type = s.entity_type"
    "                 AND e.entity_id = s.entity_id) x"
    " WHERE $8 AND ($3::uuid IS NULL OR s.tenant_id = $3) AND ($4::uuid IS NULL OR s.store_id = $4)"
    "   AND ($5::text IS NULL OR s.entity_type = $5) AND ($6::text IS NULL OR s.entity_id = $6)"
    "   AND s.version > coalesce(x.m, 0) AND (x.m IS NOT NULL OR kept.whole)"
    " ORDER BY 1 NULLS LAST";

// What a verification failure means, for the detail column.
const char *failure_detail(const char *reason) {
  std::string r(reason);
  if (r == "payload_hash_mismatch")
    return "the stored payload does not hash to the payload hash that was signed";
  if (r == "payload_not_canonicalizable")
    return "the stored payload has no RFC 8785 canonical form";
  if (r == "unknown_key") return "the signing agent key is not in the key registry";
  if (r == "revoked_key") return "the event is dated after its signing key was revoked";
  if (r == "bad_signature") return "the Ed25519 signature does not match the event's signing hash";
  return "";
}

// Looks for the stream gaps in the scanned range; SPI connected. The rows
// stay in the returned SPI table until put_stream_gaps adds them to the
// result. `from_start`: the range starts at the first position; `to_end`: it
// runs to the last one, so the streams' current versions can be compared.
SPITupleTable *find_stream_gaps_unguarded(Datum *args, const char *nulls, bool from_start,
                                          bool to_end) {
  Datum all_args[8] = {args[0],
                       args[1],
                       args[2],
                       args[3],
                       args[4],
                       args[5],
                       BoolGetDatum(from_start),
                       BoolGetDatum(to_end)};
  char all_nulls[9];
  std::memcpy(all_nulls, nulls, 6);
  all_nulls[6] = all_nulls[7] = ' ';
  all_nulls[8] = '\0';
  Oid types[8] = {INT8OID, INT8OID, UUIDOID, UUIDOID, TEXTOID, TEXTOID, BOOLOID, BOOLOID};
  if (SPI_execute_with_args(kStreamGaps, 8, types, all_args, all_nulls, true, 0) != SPI_OK_SELECT)
    elog(ERROR, "pg_ves: cannot check the event streams for gaps");
  return SPI_tuptable;
}

// Adds a row for every gap found to the result and frees the table.
void put_stream_gaps_unguarded(ReturnSetInfo *rsinfo, SPITupleTable *gaps) {
  MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
  for (uint64 i = 0; i < gaps->numvals; ++i) {
    Datum values[4];
    bool isnull[4];
    for (int c = 0; c < 4; ++c)
      values[c] = SPI_getbinval(gaps->vals[i], gaps->tupdesc, c + 1, &isnull[c]);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
  }
  MemoryContextSwitchTo(old);
  SPI_freetuptable(gaps);
}

// --- PostgreSQL calls made while C++ objects are alive ----------------------

SPITupleTable *find_stream_gaps(Datum *args, const char *nulls, bool from_start, bool to_end) {
  return pg_call([&] { return find_stream_gaps_unguarded(args, nulls, from_start, to_end); });
}

void put_stream_gaps(ReturnSetInfo *rsinfo, SPITupleTable *gaps) {
  pg_call_void([&] { put_stream_gaps_unguarded(rsinfo, gaps); });
}

int64 last_position() {
  return pg_call([] {
    SPI_execute("SELECT last_value FROM ves.position_seq", true, 1);
    bool isnull;
    return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  });
}

void put_failure(FunctionCallInfo fcinfo, int64 position, pg_uuid_t id, const char *reason) {
  pg_call_void([&] {
    Datum values[4] = {Int64GetDatum(position), safe::uuid_datum(id), CStringGetTextDatum(reason),
                       CStringGetTextDatum(failure_detail(reason))};
    bool isnull[4] = {false, false, false, false};
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
  });
}

void progress_start(int64 span) {
  pg_call_void([&] { progress::start("verify_events", span); });
}
void progress_update(int64 done, int64 failed) {
  pg_call_void([&] { progress::update(done, failed); });
}
void progress_finish() {
  pg_call_void([] { progress::finish(); });
}

// --- range verification on the pool -----------------------------------------

constexpr long kChunk = 1000;     // rows fetched at a time
constexpr size_t kPerTask = 100;  // events one task checks

struct Check {
  StoredEvent event;
  const KeyRegistry::Key *key = nullptr;  // what the registry holds for its signer
  const char *reason = nullptr;           // written by the task
};

struct Chunk {
  std::vector<Check> checks;
  std::atomic<size_t> remaining{0};  // tasks not finished
  std::mutex mutex;                  // guards error
  std::exception_ptr error;
};

// Queues the checks of a chunk in tasks of kPerTask events. The tasks are
// pure C++ (payload_failure, signature_failure) and cannot throw but for
// want of memory; that error is kept in the chunk and raised by this thread.
void submit_checks(pgves::core::ThreadPool &pool, Chunk &chunk) {
  size_t n = chunk.checks.size();
  chunk.remaining.store((n + kPerTask - 1) / kPerTask, std::memory_order_relaxed);
  for (size_t begin = 0; begin < n; begin += kPerTask) {
    size_t end = std::min(n, begin + kPerTask);
    pool.submit([&chunk, begin, end] {
      try {
        for (size_t i = begin; i < end; ++i) {
          Check &c = chunk.checks[i];
          c.reason = payload_failure(c.event);
          if (!c.reason) c.reason = signature_failure(c.event, *c.key);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(chunk.mutex);
        if (!chunk.error) chunk.error = std::current_exception();
      }
      chunk.remaining.fetch_sub(1, std::memory_order_release);
    });
  }
}

}  // namespace

// ves.verify_event(event_id uuid) -> boolean
PGVES_FUNCTION(ves_verify_event) {
  StoredEvent e = stored_event_argument(fcinfo, 0);
  // The key registry reads through SPI too.
  safe::spi_connect();
  KeyRegistry keys;
  bool ok = verification_failure(e, keys) == nullptr;
  safe::spi_finish();
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
  if (by_tenant) {
    safe::check_tenant_access(tenant_filter);
  } else if (safe::session_tenant(&session_tenant)) {
    tenant_filter = session_tenant;
    by_tenant = true;
  }
  safe::init_materialized_srf(fcinfo);
  Datum args[6] = {Int64GetDatum(from),
                   Int64GetDatum(to),
                   UUIDPGetDatum(&tenant_filter),
                   PG_ARGISNULL(1) ? (Datum)0 : PG_GETARG_DATUM(1),
                   PG_ARGISNULL(2) ? (Datum)0 : PG_GETARG_DATUM(2),
                   PG_ARGISNULL(3) ? (Datum)0 : PG_GETARG_DATUM(3)};
  char nulls[7] = {' ',
                   ' ',
                   by_tenant ? ' ' : 'n',
                   PG_ARGISNULL(1) ? 'n' : ' ',
                   PG_ARGISNULL(2) ? 'n' : ' ',
                   PG_ARGISNULL(3) ? 'n' : ' ',
                   '\0'};
  std::string query =
      std::string("SELECT ") + kStoredEventColumns +
      " FROM ves.events WHERE position BETWEEN $1 AND $2"
      " AND ($3::uuid IS NULL OR tenant_id = $3) AND ($4::uuid IS NULL OR store_id = $4)"
      " AND ($5::text IS NULL OR entity_type = $5) AND ($6::text IS NULL OR entity_id = $6)"
      " ORDER BY position";
  safe::spi_connect();
  int64 span = (bounded ? to : last_position()) - from + 1;
  Oid types[6] = {INT8OID, INT8OID, UUIDOID, UUIDOID, TEXTOID, TEXTOID};
  Portal portal = safe::cursor_open(query, 6, types, args, nulls);
  progress_start(span > 0 ? span : 0);
  KeyRegistry keys;
  int64 failed = 0;
  // While the pool checks one chunk, this thread fetches the next and looks
  // up its keys; failures are reported chunk by chunk, in position order.
  std::unique_ptr<Chunk> checking, fetched;
  // This thread is one of ves.crypto_threads: between fetches it checks
  // queued events itself rather than sleep beside a third thread.
  pgves::core::ThreadPool pool(static_cast<unsigned>(settings::crypto_threads) - 1, true);
  auto report = [&](Chunk &chunk) {
    pool.work_until([&chunk] { return chunk.remaining.load(std::memory_order_acquire) == 0; },
                    safe::check_for_interrupts);
    if (chunk.error) std::rethrow_exception(chunk.error);
    for (const Check &c : chunk.checks) {
      if (!c.reason) continue;
      ++failed;
      put_failure(fcinfo, c.event.position, to_pg_uuid(c.event.event.event_id), c.reason);
    }
    progress_update(chunk.checks.back().event.position - from + 1, failed);
  };
  // The stream-gap query runs on this thread once two chunks are queued, so
  // the pool checks signatures meanwhile (or at the end for a short range);
  // its rows are added after the failures.
  SPITupleTable *gaps = nullptr;
  const bool from_start = from <= 1;
  int chunks = 0;
  for (;;) {
    uint64 n = safe::cursor_fetch(portal, kChunk);
    if (n > 0) {
      fetched = std::make_unique<Chunk>();
      fetched->checks.resize(n);
      SPITupleTable *batch = SPI_tuptable;
      for (uint64 i = 0; i < n; ++i) {
        Check &c = fetched->checks[i];
        c.event = read_stored_event(batch, i);
        const pgves::core::ves::Event &e = c.event.event;
        c.key = &keys.lookup(e.tenant_id, e.source_agent_id, e.agent_key_id);
      }
      safe::free_tuptable(batch);
      submit_checks(pool, *fetched);
      if (++chunks == 2) gaps = find_stream_gaps(args, nulls, from_start, !bounded);
    }
    if (checking) report(*checking);
    checking = std::move(fetched);
    if (!checking) break;
  }
  safe::cursor_close(portal);
  if (!gaps) gaps = find_stream_gaps(args, nulls, from_start, !bounded);
  put_stream_gaps(rsinfo, gaps);
  safe::spi_finish();
  progress_finish();
  return (Datum)0;
}
