// Delivery metrics as plain numbers: log-scale latency histograms and the
// counters the sync worker keeps per destination (src/pg/sync/metrics.cpp
// holds them in shared memory as one flat array of counters per destination,
// laid out as below), the percentiles read from them, and their Prometheus
// text exposition. Nothing here knows where the numbers are kept.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgves::core::metrics {

// --- latency histograms -----------------------------------------------------------

// Upper bounds of the finite buckets in seconds, 1-2-5 steps from 100 µs to
// 500 s; one more bucket counts everything above (+Inf).
constexpr int kFiniteBuckets = 21;
constexpr int kBuckets = kFiniteBuckets + 1;
const std::array<double, kFiniteBuckets> &bucket_bounds_seconds();

// The bucket a latency falls in (a value on a bound belongs to that bucket,
// as Prometheus' `le` says); negative latencies count as 0.
int bucket_of(std::int64_t micros);

// The q-quantile (0 < q <= 1) of a histogram in seconds, interpolated
// linearly inside the bucket that holds it (the first bucket from 0, the
// +Inf bucket answers its lower bound). Negative when the histogram is empty.
double quantile_seconds(const std::uint64_t *buckets, double q);

// --- what a row's delivery is about ------------------------------------------------

// Inventory and order events are held to different latency goals.
enum class EventClass { inventory, order, other };
constexpr int kEventClasses = 3;
const char *to_string(EventClass c);
// "inventory…" / "order…" in any case (inventory, InventoryItem, order,
// Order), everything else other.
EventClass event_class(std::string_view entity_type);

// Why an attempt failed.
enum class FailureClass {
  transport,  // no HTTP answer: connection refused or reset, timeout, DNS
  throttled,  // 429
  transient,  // 5xx, 408, 425 and other answers worth another attempt
  permanent,  // the destination refused the row for good
  gone,       // 410: the destination is gone
  local,      // the worker could not send it (configuration, export)
};
constexpr int kFailureClasses = 6;
const char *to_string(FailureClass c);
// The class of a failed attempt from its answer and what the scheduler
// decided (`permanent`/`gone`: the row is dead for that reason).
FailureClass failure_class(bool transport_error, long http_status, bool permanent, bool gone);

// --- the counters of one destination -------------------------------------------------

// One flat array of counters per destination: shared memory keeps it with
// atomics, ves.sync_history keeps per-minute differences of it as bigint[].
// Changing the layout changes what stored history means: append only.
enum Counter : int {
  kAttempts = 0,  // answers and local failures, each attempt once
  kSuccesses,
  kFailures,                               // kFailureClasses of them, by FailureClass
  kRetries = kFailures + kFailureClasses,  // attempts after a row's first
  kDead,                                   // rows that ended dead
  kRequests,                               // HTTP requests sent
  kItems,                                  // outbox rows those requests carried
  kSyncBuckets,                            // kEventClasses × kBuckets: commit → acknowledged
  kSyncSumMicros = kSyncBuckets + kEventClasses * kBuckets,  // kEventClasses sums
  kHttpBuckets = kSyncSumMicros + kEventClasses,             // kBuckets: HTTP round trip
  kHttpSumMicros = kHttpBuckets + kBuckets,
  // kBuckets: cross-platform, a SKU's change -> every mapped platform
  // acknowledged its count (counted on the destination whose answer
  // completed it).
  kCrossBuckets,
  kCrossSumMicros = kCrossBuckets + kBuckets,
  kCounters
};
using Counters = std::array<std::uint64_t, kCounters>;

constexpr int sync_bucket(EventClass c, int bucket) {
  return kSyncBuckets + static_cast<int>(c) * kBuckets + bucket;
}
constexpr int failure_counter(FailureClass c) { return kFailures + static_cast<int>(c); }

// What one finished row adds to its destination's counters.
struct RowFinished {
  EventClass event_class = EventClass::other;
  bool answered = false;  // an HTTP request was made (false: a local failure)
  bool synced = false;    // the destination acknowledged it
  bool dead = false;      // the row ended dead
  bool failed = false;    // the attempt failed (synced false)
  FailureClass failure = FailureClass::transient;
  bool retry = false;             // the row had been attempted before
  std::int64_t sync_micros = -1;  // synced: from the event's commit to the answer
  std::int64_t http_micros = -1;  // answered: the request's round trip
  int items = 1;                  // rows the request carried
};
// The counter increments of `row`, as (counter, amount) pairs.
std::vector<std::pair<int, std::uint64_t>> increments(const RowFinished &row);

// Sums of counters and figures read from them.
void add(Counters &into, const Counters &from);
std::uint64_t failures(const Counters &c);
double sync_quantile(const Counters &c, EventClass cls, double q);
double http_quantile(const Counters &c, double q);
double cross_platform_quantile(const Counters &c, double q);
// What one cross-platform sample of `micros` adds, as (counter, amount) pairs.
std::vector<std::pair<int, std::uint64_t>> cross_platform_increments(std::int64_t micros);

// --- Prometheus text exposition --------------------------------------------------------

struct DestinationSeries {
  std::string destination;  // its name, the `destination` label
  std::string kind;         // its kind (webhook, shopify, …), the `destination_kind` label
  Counters counters{};      // cumulative since the server started
  double queue_depth = 0;   // rows not yet delivered (pending, syncing, failed)
  double oldest_pending_seconds = 0;
  double dead_rows = 0;  // rows dead in the outbox now
  bool breaker_open = false;
  bool paused = false;
  // Share of listings equal at the last full reconciliation; negative when
  // the destination was never reconciled (its sample is then NaN).
  double consistency = -1;
  // The last recovery (breaker open or worker start -> backlog drained)
  // that ended in the last 5 minutes, or the one under way, in seconds;
  // negative when none (NaN).
  double recovery_seconds = -1;
};
struct Exposition {
  std::vector<DestinationSeries> destinations;
  double open_conflicts = 0;
  double workers_running = 0;
};
// Text format 0.0.4: # HELP and # TYPE once per family, histograms as
// _bucket{le}/_sum/_count with cumulative buckets, label values escaped.
std::string prometheus_text(const Exposition &e);
// The metric family names prometheus_text emits (for dashboards and tests).
std::vector<std::string> prometheus_families();

}  // namespace pgves::core::metrics
