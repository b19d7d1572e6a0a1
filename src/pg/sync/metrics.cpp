// Delivery metrics in shared memory (see metrics.hpp), their per-minute
// rollups in ves.sync_history and the SQL functions that read them.
//
// A slot belongs to one (database, destination) for the life of the server:
// it is taken with a compare-and-swap on its key, in slot order, and never
// given back, so every process finds the same slot for a key without a
// lock. Counters only grow (atomic adds); `flushed` is what the last rollup
// wrote, kept by the database's worker.
#include "pg/sync/metrics.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/settings.hpp"
#include "pg/base/shmem.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace pgves::pg::metrics {
namespace {

namespace m = core::metrics;

// Destinations across all databases whose deliveries are counted; rows of
// any further destination are counted in `unplaced` only.
constexpr int kSlots = 256;

struct Slot {
  pg_atomic_uint64 key;  // (database oid << 32) | destination id; 0 = free
  pg_atomic_uint64 now[m::kCounters];
  pg_atomic_uint64 flushed[m::kCounters];  // as of the last rollup to ves.sync_history
};

struct Shared {
  pg_atomic_uint64 unplaced;
  Slot slots[kSlots];
};

Shared *shared = nullptr;

Size size() { return sizeof(Shared); }

void init(void *segment) {
  auto *s = static_cast<Shared *>(segment);
  std::memset(s, 0, sizeof(Shared));
  pg_atomic_init_u64(&s->unplaced, 0);
  for (Slot &slot : s->slots) {
    pg_atomic_init_u64(&slot.key, 0);
    for (int i = 0; i < m::kCounters; ++i) {
      pg_atomic_init_u64(&slot.now[i], 0);
      pg_atomic_init_u64(&slot.flushed[i], 0);
    }
  }
}

void attach(void *segment) { shared = static_cast<Shared *>(segment); }

uint64 key_of(Oid database, int destination) {
  return (static_cast<uint64>(database) << 32) | static_cast<uint32>(destination);
}

Oid database_of(uint64 key) { return static_cast<Oid>(key >> 32); }
int destination_of(uint64 key) { return static_cast<int>(static_cast<uint32>(key)); }

// This process's last slot per destination (a hint; the key is checked).
struct CacheEntry {
  uint64 key;
  int index;
};
CacheEntry cache[64];

Slot *slot_for(int destination) {
  uint64 key = key_of(MyDatabaseId, destination);
  CacheEntry &hint = cache[static_cast<uint32>(destination) % 64];
  if (hint.key == key) return &shared->slots[hint.index];
  for (int i = 0; i < kSlots; ++i) {
    uint64 k = pg_atomic_read_u64(&shared->slots[i].key);
    if (k == 0) {
      // Slots are taken in order and never freed: whoever loses the race
      // for this one finds the winner's key in it.
      uint64 expected = 0;
      if (!pg_atomic_compare_exchange_u64(&shared->slots[i].key, &expected, key) && expected != key)
        continue;
    } else if (k != key) {
      continue;
    }
    hint = {key, i};
    return &shared->slots[i];
  }
  return nullptr;
}

m::Counters read(pg_atomic_uint64 *counters) {
  m::Counters c{};
  for (int i = 0; i < m::kCounters; ++i) c[i] = pg_atomic_read_u64(&counters[i]);
  return c;
}

// What a slot counted since its last rollup (all of it after a reset).
m::Counters since_flush(const m::Counters &now, const m::Counters &flushed) {
  m::Counters d{};
  for (int i = 0; i < m::kCounters; ++i) d[i] = now[i] >= flushed[i] ? now[i] - flushed[i] : now[i];
  return d;
}

bool any(const m::Counters &c) {
  for (std::uint64_t v : c)
    if (v) return true;
  return false;
}

struct SlotCopy {
  int index;
  int destination;
  m::Counters now;
  m::Counters flushed;
};

// This database's slots.
std::vector<SlotCopy> database_slots() {
  std::vector<SlotCopy> out;
  if (!shared) return out;
  for (int i = 0; i < kSlots; ++i) {
    uint64 key = pg_atomic_read_u64(&shared->slots[i].key);
    if (key == 0) break;
    if (database_of(key) != MyDatabaseId) continue;
    out.push_back(
        {i, destination_of(key), read(shared->slots[i].now), read(shared->slots[i].flushed)});
  }
  return out;
}

// --- arrays ------------------------------------------------------------------------

Datum counters_datum(const m::Counters &c) {
  Datum items[m::kCounters];
  for (int i = 0; i < m::kCounters; ++i) items[i] = Int64GetDatum(static_cast<int64>(c[i]));
  return pg_call([&] {
    return PointerGetDatum(
        construct_array(items, m::kCounters, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
  });
}

// A bigint[] of counters; elements past the layout are ignored, missing ones
// and NULLs are 0.
m::Counters counters_of(Datum array) {
  m::Counters c{};
  pg_call_void([&] {
    ArrayType *a = DatumGetArrayTypeP(array);
    Datum *items = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &items, &nulls, &n);
    for (int i = 0; i < n && i < m::kCounters; ++i)
      if (!nulls[i]) c[i] = static_cast<std::uint64_t>(DatumGetInt64(items[i]));
  });
  return c;
}

// --- rollups -------------------------------------------------------------------------

void log_line(const char *context, const std::string &message) {
  try {
    pg_call_void([&] {
      ereport(LOG, (errmsg("pg_ves worker: %s: %s", context, message.c_str()),
                    errhint("Delivery goes on; the next round tries again.")));
    });
  } catch (const std::exception &) {
  }
}

struct Rollup {
  int destination;
  m::Counters delta;
};

Datum quantile_or_null(double seconds, bool *isnull) {
  *isnull = seconds < 0;
  return Float8GetDatum(seconds < 0 ? 0 : seconds);
}

// Writes the rollups of `minute` and drops expired history in one
// transaction; returns false when ves.sync_history does not exist (an
// extension not yet updated to this version).
bool write_rollups(TimestampTz minute, const std::vector<Rollup> &rows, int retention_minutes) {
  std::vector<Datum> arrays;
  for (const Rollup &r : rows) arrays.push_back(counters_datum(r.delta));
  return pg_call([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    pg::spi_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_ves: sync metrics rollup");
    bool present = false;
    SPI_execute("SELECT pg_catalog.to_regclass('ves.sync_history') IS NOT NULL", true, 1);
    bool isnull;
    present = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    if (present) {
      Oid types[11] = {TIMESTAMPTZOID, INT4OID,   INT8OID,   INT8OID, INT8OID,     INT8OID,
                       FLOAT8OID,      FLOAT8OID, FLOAT8OID, INT8OID, INT8ARRAYOID};
      for (size_t k = 0; k < rows.size(); ++k) {
        const m::Counters &c = rows[k].delta;
        Datum values[11];
        char nulls[11];
        std::memset(nulls, ' ', sizeof nulls);
        bool n1, n2, n3;
        values[0] = TimestampTzGetDatum(minute);
        values[1] = Int32GetDatum(rows[k].destination);
        values[2] = Int64GetDatum(static_cast<int64>(c[m::kAttempts]));
        values[3] = Int64GetDatum(static_cast<int64>(c[m::kSuccesses]));
        values[4] = Int64GetDatum(static_cast<int64>(m::failures(c)));
        values[5] = Int64GetDatum(static_cast<int64>(c[m::kDead]));
        values[6] = quantile_or_null(m::sync_quantile(c, m::EventClass::inventory, 0.95), &n1);
        values[7] = quantile_or_null(m::sync_quantile(c, m::EventClass::order, 0.95), &n2);
        values[8] = quantile_or_null(m::http_quantile(c, 0.95), &n3);
        values[9] = Int64GetDatum(static_cast<int64>(c[m::kRetries]));
        values[10] = arrays[k];
        nulls[6] = n1 ? 'n' : ' ';
        nulls[7] = n2 ? 'n' : ' ';
        nulls[8] = n3 ? 'n' : ' ';
        SPI_execute_with_args(
            "INSERT INTO ves.sync_history (minute, destination_id, destination, attempts, "
            "successes, failures, dead, inventory_sync_p95, order_sync_p95, http_p95, retries, "
            "counters)"
            " SELECT $1, $2, coalesce((SELECT d.name FROM ves.destinations d WHERE d.id "
            "OPERATOR(pg_catalog.=) $2), ''), $3, $4, $5, $6, $7, $8, $9, $10, $11",
            11, types, values, nulls, false, 0);
      }
      Oid rtypes[1] = {INT4OID};
      Datum rvalues[1] = {Int32GetDatum(retention_minutes)};
      SPI_execute_with_args(
          "DELETE FROM ves.sync_history WHERE minute OPERATOR(pg_catalog.<) (pg_catalog.now() "
          "OPERATOR(pg_catalog.-) ($1 OPERATOR(pg_catalog.*) interval '1 minute'))",
          1, rtypes, rvalues, nullptr, false, 0);
    }
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
    return present;
  });
}

TimestampTz last_rollup_minute = 0;
TimestampTz last_alert_evaluation = 0;

// Runs ves.evaluate_alerts() in a transaction of its own; false when the
// installed extension does not have it yet.
bool run_alert_evaluation() {
  return pg_call([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    pg::spi_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_ves: evaluating alert rules");
    SPI_execute("SELECT pg_catalog.to_regprocedure('ves.evaluate_alerts()') IS NOT NULL", true, 1);
    bool isnull;
    bool present =
        DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    if (present) SPI_execute("SELECT ves.evaluate_alerts()", false, 1);
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
    return present;
  });
}

}  // namespace

void request_shmem() { shmem::register_segment("pg_ves delivery metrics", size, init, attach); }

void row_finished(int destination, core::metrics::EventClass event_class, TimestampTz committed_at,
                  int attempts_before, const HttpResult *answer, const core::RowDecision &decision,
                  int request_items) noexcept {
  if (!shared || !settings::metrics) return;
  try {
    m::RowFinished row;
    row.event_class = event_class;
    // One request, however many rows it carried.
    row.answered = answer != nullptr && request_items > 0;
    row.items = request_items;
    row.synced = decision.status == core::RowDecision::Status::synced;
    row.failed = !row.synced;
    row.dead = decision.status == core::RowDecision::Status::dead;
    row.retry = attempts_before > 0;
    if (answer) {
      row.failure = m::failure_class(answer->transport_error, answer->status,
                                     decision.why == core::RowDecision::Why::permanent,
                                     decision.why == core::RowDecision::Why::gone);
      row.http_micros = static_cast<std::int64_t>(answer->elapsed_ms * 1000.0);
    } else {
      row.failure = m::FailureClass::local;
    }
    if (row.synced && committed_at != 0) row.sync_micros = GetCurrentTimestamp() - committed_at;
    Slot *slot = slot_for(destination);
    if (!slot) {
      pg_atomic_fetch_add_u64(&shared->unplaced, 1);
      return;
    }
    for (const auto &[index, amount] : m::increments(row))
      pg_atomic_fetch_add_u64(&slot->now[index], amount);
  } catch (...) {
    // Counting never fails a delivery.
  }
}

void flush_history() {
  if (!shared) return;
  TimestampTz now = GetCurrentTimestamp();
  TimestampTz minute = now - now % USECS_PER_MINUTE;
  if (minute == last_rollup_minute) return;
  last_rollup_minute = minute;
  std::vector<SlotCopy> slots = database_slots();
  std::vector<Rollup> rows;
  for (const SlotCopy &s : slots) {
    m::Counters d = since_flush(s.now, s.flushed);
    if (any(d)) rows.push_back({s.destination, d});
  }
  bool written = false;
  try {
    // The counts were gathered during the minute that just ended.
    written = write_rollups(minute - USECS_PER_MINUTE, rows, settings::sync_history_retention);
  } catch (const PgError &e) {
    log_line("cannot write ves.sync_history", e.what());
    pg_call_void([] { AbortCurrentTransaction(); });
    return;
  }
  if (!written) return;
  for (const SlotCopy &s : slots)
    for (int i = 0; i < m::kCounters; ++i)
      pg_atomic_write_u64(&shared->slots[s.index].flushed[i], s.now[i]);
}

void evaluate_alerts() {
  TimestampTz now = GetCurrentTimestamp();
  if (now - last_alert_evaluation < 30 * USECS_PER_SEC) return;
  last_alert_evaluation = now;
  try {
    run_alert_evaluation();
  } catch (const PgError &e) {
    log_line("cannot evaluate the alert rules", e.what());
    pg_call_void([] { AbortCurrentTransaction(); });
  }
}

}  // namespace pgves::pg::metrics

using namespace pgves::pg;
namespace m = pgves::core::metrics;

// ves._sync_metrics_live(cumulative boolean, OUT destination_id int, OUT
// counters bigint[]): this database's slots, counted since the server
// started (cumulative) or since the last rollup to ves.sync_history.
PGVES_FUNCTION(ves_sync_metrics_live) {
  bool cumulative = PG_GETARG_BOOL(0);
  std::vector<metrics::SlotCopy> slots = metrics::database_slots();
  safe::init_materialized_srf(fcinfo);
  for (const metrics::SlotCopy &s : slots) {
    m::Counters c = cumulative ? s.now : metrics::since_flush(s.now, s.flushed);
    Datum values[2] = {Int32GetDatum(s.destination), metrics::counters_datum(c)};
    bool nulls[2] = {false, false};
    safe::put_row(fcinfo, values, nulls);
  }
  return (Datum)0;
}

// ves._add_counters(bigint[], bigint[]) -> bigint[]: the transition function
// of ves._sum_counters, element by element (NULL state: the other array).
PGVES_FUNCTION(ves_add_counters) {
  if (PG_ARGISNULL(0) && PG_ARGISNULL(1)) PG_RETURN_NULL();
  m::Counters sum{};
  if (!PG_ARGISNULL(0)) sum = metrics::counters_of(PG_GETARG_DATUM(0));
  if (!PG_ARGISNULL(1)) m::add(sum, metrics::counters_of(PG_GETARG_DATUM(1)));
  return metrics::counters_datum(sum);
}

// ves._counter_figures(counters bigint[]) -> the figures ves.sync_metrics
// shows: counts and latency percentiles in seconds (NULL without samples).
PGVES_FUNCTION(ves_counter_figures) {
  m::Counters c = metrics::counters_of(PG_GETARG_DATUM(0));
  Datum values[18];
  bool nulls[18] = {};
  values[0] = Int64GetDatum(static_cast<int64>(c[m::kAttempts]));
  values[1] = Int64GetDatum(static_cast<int64>(c[m::kSuccesses]));
  values[2] = Int64GetDatum(static_cast<int64>(m::failures(c)));
  values[3] = Int64GetDatum(static_cast<int64>(c[m::kRetries]));
  values[4] = Int64GetDatum(static_cast<int64>(c[m::kDead]));
  values[5] = Int64GetDatum(static_cast<int64>(c[m::kRequests]));
  values[6] = Int64GetDatum(static_cast<int64>(c[m::kItems]));
  const double qs[3] = {0.5, 0.95, 0.99};
  int k = 7;
  for (auto cls : {m::EventClass::inventory, m::EventClass::order}) {
    for (double q : qs) {
      values[k] = metrics::quantile_or_null(m::sync_quantile(c, cls, q), &nulls[k]);
      ++k;
    }
  }
  values[k] = metrics::quantile_or_null(m::sync_quantile(c, m::EventClass::other, 0.95), &nulls[k]);
  ++k;
  for (double q : qs) {
    values[k] = metrics::quantile_or_null(m::http_quantile(c, q), &nulls[k]);
    ++k;
  }
  values[k] = metrics::quantile_or_null(m::cross_platform_quantile(c, 0.95), &nulls[k]);
  return safe::composite_result(fcinfo, values, nulls);
}

bool metrics::agreements_counted_by_statement = false;

// ves._listings_agree_counted(): whether the statement that fired the
// trigger on ves.listings counts its cross-platform samples itself (the sync
// worker's record of pushed counts, metrics::agreements_counted_by_statement).
PGVES_FUNCTION(ves_listings_agree_counted) {
  PG_RETURN_BOOL(metrics::agreements_counted_by_statement);
}

// ves._record_cross_platform(destination_id int, seconds float8): one
// cross-platform sample (a SKU's change -> every mapped platform has its
// count), counted on the destination whose acknowledgement completed it.
// Called by the trigger on ves.listings and by the sync worker's record of
// pushed counts; a no-op when ves.metrics is off.
PGVES_FUNCTION(ves_record_cross_platform) {
  if (!metrics::shared || !settings::metrics) PG_RETURN_VOID();
  int destination = PG_GETARG_INT32(0);
  double seconds = PG_GETARG_FLOAT8(1);
  metrics::Slot *slot = metrics::slot_for(destination);
  if (!slot) {
    pg_atomic_fetch_add_u64(&metrics::shared->unplaced, 1);
    PG_RETURN_VOID();
  }
  for (const auto &[index, amount] :
       m::cross_platform_increments(static_cast<std::int64_t>(seconds * 1e6)))
    pg_atomic_fetch_add_u64(&slot->now[index], amount);
  PG_RETURN_VOID();
}

// ves.reset_sync_metrics(): this database's live counters start again from
// zero (ves.sync_history keeps what was rolled up).
PGVES_FUNCTION(ves_reset_sync_metrics) {
  std::vector<metrics::SlotCopy> slots = metrics::database_slots();
  for (const metrics::SlotCopy &s : slots)
    for (int i = 0; i < m::kCounters; ++i) {
      pg_atomic_write_u64(&metrics::shared->slots[s.index].now[i], 0);
      pg_atomic_write_u64(&metrics::shared->slots[s.index].flushed[i], 0);
    }
  PG_RETURN_VOID();
}

namespace {

// Booleans and ages as bigint (milliseconds), read with spi_int64.
SavedPlan exposition_destinations = {
    "SELECT d.id::bigint, d.name, d.kind, d.paused::int::bigint,"
    "  (d.breaker_state OPERATOR(pg_catalog.=) 'open')::int::bigint,"
    "  pg_catalog.count(o.id) FILTER (WHERE o.status OPERATOR(pg_catalog.=) ANY "
    "('{pending,failed}'::text[])),"
    "  coalesce((EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) "
    "pg_catalog.min(o.created_at) FILTER (WHERE o.status OPERATOR(pg_catalog.=) ANY "
    "('{pending,failed}'::text[]))) OPERATOR(pg_catalog.*) 1000)::bigint, 0),"
    "  pg_catalog.count(o.id) FILTER (WHERE o.status OPERATOR(pg_catalog.=) 'dead'),"
    // Parts per million; -1: never reconciled (or no ves.reconcile_runs yet).
    "  coalesce((SELECT (r.consistency_score OPERATOR(pg_catalog.*) 1000000)::bigint"
    "    FROM ves.reconcile_runs r WHERE r.destination_id OPERATOR(pg_catalog.=) d.id), -1),"
    // Milliseconds; -1: no recovery ended in the last 5 minutes or is under way.
    "  coalesce((EXTRACT(epoch FROM ves._recovery_time(d.id, interval '5 min'))"
    "    OPERATOR(pg_catalog.*) 1000)::bigint, -1)"
    " FROM ves.destinations d LEFT JOIN ves.outbox o ON o.destination_id OPERATOR(pg_catalog.=) "
    "d.id"
    " GROUP BY d.id ORDER BY d.name",
    0,
    {},
    nullptr};
SavedPlan exposition_totals = {
    "SELECT (SELECT pg_catalog.count(*) FROM ves.conflicts c WHERE c.status "
    "OPERATOR(pg_catalog.=) 'open'),"
    " (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a WHERE a.backend_type "
    "OPERATOR(pg_catalog.=) 'pg_ves worker' AND a.datname OPERATOR(pg_catalog.=) "
    "pg_catalog.current_database())",
    0,
    {},
    nullptr};

}  // namespace

// ves.prometheus_metrics() -> text: the Prometheus text exposition of this
// database's delivery metrics (cumulative since the server started) and the
// outbox's gauges.
PGVES_FUNCTION(ves_prometheus_metrics) {
  std::vector<metrics::SlotCopy> slots = metrics::database_slots();
  m::Exposition e;
  safe::spi_connect();
  safe::spi_run(exposition_destinations, nullptr, nullptr, true, SPI_OK_SELECT);
  uint64 n = SPI_processed;
  for (uint64 i = 0; i < n; ++i) {
    m::DestinationSeries d;
    int id = static_cast<int>(safe::spi_int64(i, 1, 0));
    d.destination = safe::spi_text(i, 2);
    d.kind = safe::spi_text(i, 3);
    d.paused = safe::spi_int64(i, 4, 0) != 0;
    d.breaker_open = safe::spi_int64(i, 5, 0) != 0;
    d.queue_depth = static_cast<double>(safe::spi_int64(i, 6, 0));
    d.oldest_pending_seconds = static_cast<double>(safe::spi_int64(i, 7, 0)) / 1000.0;
    d.dead_rows = static_cast<double>(safe::spi_int64(i, 8, 0));
    std::int64_t ppm = safe::spi_int64(i, 9, -1);
    d.consistency = ppm < 0 ? -1 : static_cast<double>(ppm) / 1e6;
    std::int64_t recovery_ms = safe::spi_int64(i, 10, -1);
    d.recovery_seconds = recovery_ms < 0 ? -1 : static_cast<double>(recovery_ms) / 1000.0;
    for (const metrics::SlotCopy &s : slots)
      if (s.destination == id) d.counters = s.now;
    e.destinations.push_back(std::move(d));
  }
  safe::spi_run(exposition_totals, nullptr, nullptr, true, SPI_OK_SELECT);
  e.open_conflicts = static_cast<double>(safe::spi_int64(0, 1, 0));
  e.workers_running = static_cast<double>(safe::spi_int64(0, 2, 0));
  safe::spi_finish();
  std::string text = m::prometheus_text(e);
  PG_RETURN_DATUM(safe::text_datum(text));
}
