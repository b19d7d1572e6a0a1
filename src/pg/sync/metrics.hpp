// Delivery metrics in shared memory: one slot of counters and latency
// histograms (core/delivery/histogram.hpp) per (database, destination),
// written with atomics by whoever finishes a row (the sync worker, a backend
// in ves.push_events) and never by a table write per event. The worker of
// each database rolls them up into ves.sync_history once a minute.
//
// Without shared_preload_libraries there are no slots: nothing is counted,
// and the SQL functions return no live rows (ves.sync_metrics and
// ves.prometheus_metrics still answer, with what the tables hold).
#pragma once

#include "core/delivery/histogram.hpp"
#include "core/delivery/scheduler.hpp"
#include "pg/base/postgres.hpp"
#include "pg/sync/http_engine.hpp"

namespace pgves::pg::metrics {

void request_shmem();

// A row finished an attempt: `answer` is what the destination said (null
// when the worker failed the row itself), `decision` what became of the row,
// `request_items` the rows its request carried when this row reports the
// request (its first row), 0 for the other rows of a shared request,
// `committed_at` when its event's transaction wrote it (the outbox row's
// event_recorded_at). Never throws, never raises; a no-op when ves.metrics
// is off or pg_ves was not preloaded.
void row_finished(int destination, core::metrics::EventClass event_class, TimestampTz committed_at,
                  int attempts_before, const HttpResult *answer, const core::RowDecision &decision,
                  int request_items = 1) noexcept;

// For the sync worker's housekeeping: once a minute, writes what each of
// this database's destinations counted since the last rollup to
// ves.sync_history and drops rows older than ves.sync_history_retention,
// in a transaction of its own.
void flush_history();

// For the sync worker's housekeeping: about every 30 seconds, runs
// ves.evaluate_alerts() in a transaction of its own (when the installed
// extension has it). Errors are logged, never raised.
void evaluate_alerts();

// True while the sync worker runs its own update of pushed counts
// (outbox_sql::record_rows), which counts the cross-platform samples it
// completes in the same statement: the statement trigger on ves.listings
// (ves._listings_agree) then leaves them to it. Set only by that code, in
// this process; ves._listings_agree_counted() reads it.
extern bool agreements_counted_by_statement;

}  // namespace pgves::pg::metrics
