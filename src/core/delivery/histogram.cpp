#include "core/delivery/histogram.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <utility>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::metrics {

const std::array<double, kFiniteBuckets> &bucket_bounds_seconds() {
  static const std::array<double, kFiniteBuckets> bounds = {
      0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
      0.5,    1,      2,      5,     10,    20,    50,   100,  200,  500};
  return bounds;
}

int bucket_of(std::int64_t micros) {
  // Bounds in whole microseconds, so a value on a bound lands in its bucket
  // without floating-point doubt.
  static const std::array<std::int64_t, kFiniteBuckets> bounds_us = [] {
    std::array<std::int64_t, kFiniteBuckets> b{};
    for (int i = 0; i < kFiniteBuckets; ++i)
      b[i] = static_cast<std::int64_t>(bucket_bounds_seconds()[i] * 1e6 + 0.5);
    return b;
  }();
  if (micros < 0) micros = 0;
  return static_cast<int>(std::lower_bound(bounds_us.begin(), bounds_us.end(), micros) -
                          bounds_us.begin());
}

double quantile_seconds(const std::uint64_t *buckets, double q) {
  std::uint64_t total = 0;
  for (int i = 0; i < kBuckets; ++i) total += buckets[i];
  if (total == 0) return -1;
  q = std::clamp(q, 0.0, 1.0);
  double rank = q * static_cast<double>(total);
  const auto &bounds = bucket_bounds_seconds();
  double below = 0;
  for (int i = 0; i < kBuckets; ++i) {
    if (buckets[i] == 0) continue;
    double here = static_cast<double>(buckets[i]);
    if (rank <= below + here || i == kBuckets - 1) {
      double lower = i == 0 ? 0.0 : bounds[i - 1];
      if (i == kFiniteBuckets) return lower;  // +Inf: no upper bound to interpolate to
      double upper = bounds[i];
      double within = std::clamp((rank - below) / here, 0.0, 1.0);
      return lower + (upper - lower) * within;
    }
    below += here;
  }
  return bounds[kFiniteBuckets - 1];
}

const char *to_string(EventClass c) {
  switch (c) {
    case EventClass::inventory:
      return "inventory";
    case EventClass::order:
      return "order";
    case EventClass::other:
      break;
  }
  return "other";
}

namespace {
bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}
}  // namespace

EventClass event_class(std::string_view entity_type) {
  if (starts_with_nocase(entity_type, "inventory")) return EventClass::inventory;
  if (starts_with_nocase(entity_type, "order")) return EventClass::order;
  return EventClass::other;
}

const char *to_string(FailureClass c) {
  switch (c) {
    case FailureClass::transport:
      return "transport";
    case FailureClass::throttled:
      return "throttled";
    case FailureClass::transient:
      return "transient";
    case FailureClass::permanent:
      return "permanent";
    case FailureClass::gone:
      return "gone";
    case FailureClass::local:
      break;
  }
  return "local";
}

FailureClass failure_class(bool transport_error, long http_status, bool permanent, bool gone) {
  if (gone) return FailureClass::gone;
  if (permanent) return FailureClass::permanent;
  if (transport_error) return FailureClass::transport;
  if (http_status == 429) return FailureClass::throttled;
  return FailureClass::transient;
}

std::vector<std::pair<int, std::uint64_t>> increments(const RowFinished &row) {
  std::vector<std::pair<int, std::uint64_t>> out;
  out.reserve(10);
  out.emplace_back(kAttempts, 1);
  if (row.retry) out.emplace_back(kRetries, 1);
  if (row.synced) {
    out.emplace_back(kSuccesses, 1);
    if (row.sync_micros >= 0) {
      out.emplace_back(sync_bucket(row.event_class, bucket_of(row.sync_micros)), 1);
      out.emplace_back(kSyncSumMicros + static_cast<int>(row.event_class),
                       static_cast<std::uint64_t>(row.sync_micros));
    }
  } else if (row.failed) {
    out.emplace_back(failure_counter(row.failure), 1);
  }
  if (row.dead) out.emplace_back(kDead, 1);
  if (row.answered) {
    out.emplace_back(kRequests, 1);
    out.emplace_back(kItems, static_cast<std::uint64_t>(std::max(row.items, 0)));
    if (row.http_micros >= 0) {
      out.emplace_back(kHttpBuckets + bucket_of(row.http_micros), 1);
      out.emplace_back(kHttpSumMicros, static_cast<std::uint64_t>(row.http_micros));
    }
  }
  return out;
}

void add(Counters &into, const Counters &from) {
  for (int i = 0; i < kCounters; ++i) into[i] += from[i];
}

std::uint64_t failures(const Counters &c) {
  std::uint64_t n = 0;
  for (int i = 0; i < kFailureClasses; ++i) n += c[kFailures + i];
  return n;
}

double sync_quantile(const Counters &c, EventClass cls, double q) {
  return quantile_seconds(&c[sync_bucket(cls, 0)], q);
}

double http_quantile(const Counters &c, double q) { return quantile_seconds(&c[kHttpBuckets], q); }

double cross_platform_quantile(const Counters &c, double q) {
  return quantile_seconds(&c[kCrossBuckets], q);
}

std::vector<std::pair<int, std::uint64_t>> cross_platform_increments(std::int64_t micros) {
  if (micros < 0) micros = 0;
  return {{kCrossBuckets + bucket_of(micros), 1},
          {kCrossSumMicros, static_cast<std::uint64_t>(micros)}};
}

// --- exposition ------------------------------------------------------------------------

namespace {

// A label value as the text format wants it: backslash, double quote and
// line feed escaped.
std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    if (ch == '\\')
      out += "\\\\";
    else if (ch == '"')
      out += "\\\"";
    else if (ch == '\n')
      out += "\\n";
    else
      out += ch;
  }
  return out;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Shortest form that reads back the same, for readable bounds ("0.0001").
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

std::string integer(std::uint64_t v) { return std::to_string(v); }

struct Family {
  const char *name;
  const char *type;
  const char *help;
};

const Family kFamilies[] = {
    {"pgves_sync_latency_seconds", "histogram",
     "From an event's commit to the destination acknowledging it, by event kind."},
    {"pgves_http_request_duration_seconds", "histogram",
     "Round trip of the sync worker's requests to the destination."},
    {"pgves_delivery_attempts_total", "counter",
     "Delivery attempts finished (answered or failed)."},
    {"pgves_delivery_successes_total", "counter", "Deliveries the destination acknowledged."},
    {"pgves_delivery_failures_total", "counter", "Failed delivery attempts, by class."},
    {"pgves_delivery_retries_total", "counter", "Attempts after a row's first."},
    {"pgves_delivery_dead_total", "counter", "Outbox rows that ended dead."},
    {"pgves_delivery_requests_total", "counter", "HTTP requests sent."},
    {"pgves_delivery_items_total", "counter", "Outbox rows carried by those requests."},
    {"pgves_outbox_queue_depth", "gauge",
     "Outbox rows not yet delivered (pending, syncing, failed)."},
    {"pgves_outbox_oldest_pending_seconds", "gauge", "Age of the oldest undelivered outbox row."},
    {"pgves_outbox_dead_rows", "gauge", "Outbox rows that are dead now."},
    {"pgves_destination_breaker_open", "gauge",
     "1 while the destination's circuit breaker is open."},
    {"pgves_destination_paused", "gauge", "1 while the destination is paused."},
    {"pgves_conflicts_open", "gauge", "Conflicts waiting for a decision."},
    {"pgves_workers_running", "gauge", "pg_ves sync workers running for this database."},
    {"pgves_cross_platform_sync_seconds", "histogram",
     "From a SKU's change until every platform it is mapped to has the count, on the destination "
     "that completed it."},
    {"pgves_data_consistency_score", "gauge",
     "Share of the destination's listings equal to the local count at its last full "
     "reconciliation."},
    {"pgves_recovery_seconds", "gauge",
     "The last recovery (breaker open or worker start until the backlog was delivered) that "
     "ended in the last 5 minutes, or the one under way."},
};

void header(std::string &out, const Family &f) {
  out += "# HELP ";
  out += f.name;
  out += ' ';
  out += f.help;
  out += "\n# TYPE ";
  out += f.name;
  out += ' ';
  out += f.type;
  out += '\n';
}

const Family &family(std::string_view name) {
  for (const Family &f : kFamilies)
    if (name == f.name) return f;
  return kFamilies[0];
}

void sample(std::string &out, std::string_view name, const std::string &labels,
            const std::string &value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

std::string join_labels(const std::string &a, const std::string &b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "," + b;
}

void histogram(std::string &out, const char *name, const std::string &labels,
               const std::uint64_t *buckets, std::uint64_t sum_micros) {
  const auto &bounds = bucket_bounds_seconds();
  std::uint64_t cumulative = 0;
  std::string bucket_name = std::string(name) + "_bucket";
  for (int i = 0; i < kBuckets; ++i) {
    cumulative += buckets[i];
    std::string le = i < kFiniteBuckets ? number(bounds[i]) : "+Inf";
    sample(out, bucket_name, join_labels(labels, "le=\"" + le + "\""), integer(cumulative));
  }
  sample(out, std::string(name) + "_sum", labels, number(static_cast<double>(sum_micros) / 1e6));
  sample(out, std::string(name) + "_count", labels, integer(cumulative));
}

}  // namespace

std::string prometheus_text(const Exposition &e) {
  std::string out;
  auto dest_labels = [](const DestinationSeries &d) {
    return "destination=\"" + escape_label(d.destination) + "\",destination_kind=\"" +
           escape_label(d.kind) + "\"";
  };

  header(out, family("pgves_sync_latency_seconds"));
  for (const DestinationSeries &d : e.destinations)
    for (int c = 0; c < kEventClasses; ++c) {
      auto cls = static_cast<EventClass>(c);
      histogram(out, "pgves_sync_latency_seconds",
                dest_labels(d) + ",kind=\"" + to_string(cls) + "\"",
                &d.counters[sync_bucket(cls, 0)], d.counters[kSyncSumMicros + c]);
    }
  header(out, family("pgves_http_request_duration_seconds"));
  for (const DestinationSeries &d : e.destinations)
    histogram(out, "pgves_http_request_duration_seconds", dest_labels(d), &d.counters[kHttpBuckets],
              d.counters[kHttpSumMicros]);

  auto counter = [&](const char *name, int index) {
    header(out, family(name));
    for (const DestinationSeries &d : e.destinations)
      sample(out, name, dest_labels(d), integer(d.counters[index]));
  };
  counter("pgves_delivery_attempts_total", kAttempts);
  counter("pgves_delivery_successes_total", kSuccesses);
  header(out, family("pgves_delivery_failures_total"));
  for (const DestinationSeries &d : e.destinations)
    for (int c = 0; c < kFailureClasses; ++c)
      sample(out, "pgves_delivery_failures_total",
             dest_labels(d) + ",class=\"" + to_string(static_cast<FailureClass>(c)) + "\"",
             integer(d.counters[kFailures + c]));
  counter("pgves_delivery_retries_total", kRetries);
  counter("pgves_delivery_dead_total", kDead);
  counter("pgves_delivery_requests_total", kRequests);
  counter("pgves_delivery_items_total", kItems);

  auto gauge = [&](const char *name, auto value) {
    header(out, family(name));
    for (const DestinationSeries &d : e.destinations)
      sample(out, name, dest_labels(d), number(value(d)));
  };
  gauge("pgves_outbox_queue_depth", [](const DestinationSeries &d) { return d.queue_depth; });
  gauge("pgves_outbox_oldest_pending_seconds",
        [](const DestinationSeries &d) { return d.oldest_pending_seconds; });
  gauge("pgves_outbox_dead_rows", [](const DestinationSeries &d) { return d.dead_rows; });
  gauge("pgves_destination_breaker_open",
        [](const DestinationSeries &d) { return d.breaker_open ? 1.0 : 0.0; });
  gauge("pgves_destination_paused",
        [](const DestinationSeries &d) { return d.paused ? 1.0 : 0.0; });

  header(out, family("pgves_conflicts_open"));
  sample(out, "pgves_conflicts_open", "", number(e.open_conflicts));
  header(out, family("pgves_workers_running"));
  sample(out, "pgves_workers_running", "", number(e.workers_running));

  header(out, family("pgves_cross_platform_sync_seconds"));
  for (const DestinationSeries &d : e.destinations)
    histogram(out, "pgves_cross_platform_sync_seconds", dest_labels(d), &d.counters[kCrossBuckets],
              d.counters[kCrossSumMicros]);
  header(out, family("pgves_data_consistency_score"));
  for (const DestinationSeries &d : e.destinations)
    sample(out, "pgves_data_consistency_score", dest_labels(d),
           d.consistency >= 0 ? number(d.consistency) : "NaN");
  header(out, family("pgves_recovery_seconds"));
  for (const DestinationSeries &d : e.destinations)
    sample(out, "pgves_recovery_seconds", dest_labels(d),
           d.recovery_seconds >= 0 ? number(d.recovery_seconds) : "NaN");
  return out;
}

std::vector<std::string> prometheus_families() {
  std::vector<std::string> names;
  for (const Family &f : kFamilies) names.emplace_back(f.name);
  return names;
}

}  // namespace pgves::core::metrics
