#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <sstream>
#include <string>

#include "core/delivery/histogram.hpp"

namespace m = pgves::core::metrics;

TEST(Histogram, BucketsAreLogScaleAndBoundsInclusive) {
  EXPECT_EQ(m::bucket_of(-5), 0);
  EXPECT_EQ(m::bucket_of(0), 0);
  EXPECT_EQ(m::bucket_of(100), 0);  // 100 µs is the first bound, le="0.0001"
  EXPECT_EQ(m::bucket_of(101), 1);
  EXPECT_EQ(m::bucket_of(1000), 3);        // 1 ms
  EXPECT_EQ(m::bucket_of(5'000'000), 14);  // 5 s
  EXPECT_EQ(m::bucket_of(5'000'001), 15);
  EXPECT_EQ(m::bucket_of(500'000'000), 20);                 // the last finite bound
  EXPECT_EQ(m::bucket_of(500'000'001), m::kFiniteBuckets);  // +Inf
  const auto &b = m::bucket_bounds_seconds();
  for (int i = 1; i < m::kFiniteBuckets; ++i) EXPECT_LT(b[i - 1], b[i]);
}

TEST(Histogram, QuantilesInterpolateInsideTheirBucket) {
  std::uint64_t h[m::kBuckets] = {};
  EXPECT_LT(m::quantile_seconds(h, 0.5), 0) << "empty";
  // 100 values in (1 ms, 2 ms]: every quantile lies in that bucket.
  h[m::bucket_of(1500)] = 100;
  EXPECT_NEAR(m::quantile_seconds(h, 0.5), 0.0015, 1e-9);
  EXPECT_NEAR(m::quantile_seconds(h, 0.95), 0.00195, 1e-9);
  EXPECT_NEAR(m::quantile_seconds(h, 1.0), 0.002, 1e-9);
  // 90 fast, 10 slow: p50 is fast, p95 and p99 are slow.
  std::uint64_t g[m::kBuckets] = {};
  g[m::bucket_of(800)] = 90;        // (0.5 ms, 1 ms]
  g[m::bucket_of(3'000'000)] = 10;  // (2 s, 5 s]
  EXPECT_LE(m::quantile_seconds(g, 0.5), 0.001);
  EXPECT_GT(m::quantile_seconds(g, 0.95), 2.0);
  EXPECT_LE(m::quantile_seconds(g, 0.99), 5.0);
  // Everything above the last bound answers the last bound.
  std::uint64_t inf[m::kBuckets] = {};
  inf[m::kFiniteBuckets] = 3;
  EXPECT_EQ(m::quantile_seconds(inf, 0.5), 500.0);
}

TEST(Histogram, EventAndFailureClasses) {
  EXPECT_EQ(m::event_class("inventory"), m::EventClass::inventory);
  EXPECT_EQ(m::event_class("InventoryItem"), m::EventClass::inventory);
  EXPECT_EQ(m::event_class("order"), m::EventClass::order);
  EXPECT_EQ(m::event_class("Order"), m::EventClass::order);
  EXPECT_EQ(m::event_class("customer"), m::EventClass::other);
  EXPECT_EQ(m::event_class(""), m::EventClass::other);
  EXPECT_EQ(m::failure_class(true, 0, false, false), m::FailureClass::transport);
  EXPECT_EQ(m::failure_class(false, 429, false, false), m::FailureClass::throttled);
  EXPECT_EQ(m::failure_class(false, 503, false, false), m::FailureClass::transient);
  EXPECT_EQ(m::failure_class(false, 400, true, false), m::FailureClass::permanent);
  EXPECT_EQ(m::failure_class(false, 410, true, true), m::FailureClass::gone);
}

TEST(Histogram, IncrementsOfFinishedRows) {
  m::Counters c{};
  m::RowFinished ok;
  ok.event_class = m::EventClass::order;
  ok.answered = ok.synced = true;
  ok.sync_micros = 2500;
  ok.http_micros = 700;
  for (auto [i, n] : m::increments(ok)) c[i] += n;
  m::RowFinished dead;
  dead.answered = dead.failed = dead.dead = dead.retry = true;
  dead.failure = m::FailureClass::permanent;
  dead.http_micros = 900;
  for (auto [i, n] : m::increments(dead)) c[i] += n;
  m::RowFinished local;
  local.failed = true;
  local.failure = m::FailureClass::local;
  for (auto [i, n] : m::increments(local)) c[i] += n;

  EXPECT_EQ(c[m::kAttempts], 3u);
  EXPECT_EQ(c[m::kSuccesses], 1u);
  EXPECT_EQ(m::failures(c), 2u);
  EXPECT_EQ(c[m::failure_counter(m::FailureClass::permanent)], 1u);
  EXPECT_EQ(c[m::failure_counter(m::FailureClass::local)], 1u);
  EXPECT_EQ(c[m::kRetries], 1u);
  EXPECT_EQ(c[m::kDead], 1u);
  EXPECT_EQ(c[m::kRequests], 2u) << "a local failure sends no request";
  EXPECT_EQ(c[m::kItems], 2u);
  EXPECT_EQ(c[m::sync_bucket(m::EventClass::order, m::bucket_of(2500))], 1u);
  EXPECT_EQ(c[m::kSyncSumMicros + static_cast<int>(m::EventClass::order)], 2500u);
  EXPECT_EQ(c[m::kHttpSumMicros], 1600u);
  EXPECT_NEAR(m::sync_quantile(c, m::EventClass::order, 0.5), 0.0035, 1e-9);
  EXPECT_LT(m::sync_quantile(c, m::EventClass::inventory, 0.5), 0);
  EXPECT_GT(m::http_quantile(c, 0.99), 0.0005);
}

TEST(Histogram, CrossPlatformSamplesKeepTheirOwnHistogram) {
  m::Counters c{};
  for (std::int64_t micros : {3'000'000, 4'000'000, 7'000'000, -5})
    for (auto [i, n] : m::cross_platform_increments(micros)) c[i] += n;
  EXPECT_EQ(c[m::kCrossSumMicros], 14'000'000u) << "a negative sample counts as 0";
  EXPECT_EQ(c[m::kCrossBuckets + m::bucket_of(0)], 1u);
  // Three of four samples are within 5 s: the median is in (2 s, 5 s], the
  // p95 in (5 s, 10 s].
  EXPECT_GT(m::cross_platform_quantile(c, 0.5), 2.0);
  EXPECT_LE(m::cross_platform_quantile(c, 0.5), 5.0);
  EXPECT_GT(m::cross_platform_quantile(c, 0.95), 5.0);
  EXPECT_LE(m::cross_platform_quantile(c, 0.95), 10.0);
  EXPECT_EQ(c[m::kAttempts], 0u) << "not a delivery";
  EXPECT_LT(m::sync_quantile(c, m::EventClass::inventory, 0.5), 0);
  m::Counters empty{};
  EXPECT_LT(m::cross_platform_quantile(empty, 0.95), 0);
}

TEST(Histogram, PrometheusExposition) {
  m::Exposition e;
  m::DestinationSeries d;
  d.destination = "shop \"a\"\\b";
  d.kind = "webhook";
  d.counters[m::kAttempts] = 4;
  d.counters[m::sync_bucket(m::EventClass::inventory, 0)] = 1;
  d.counters[m::sync_bucket(m::EventClass::inventory, 3)] = 2;
  d.counters[m::kSyncSumMicros] = 2100;
  d.queue_depth = 7;
  d.counters[m::kCrossBuckets + 5] = 1;
  d.counters[m::kCrossSumMicros] = 4000;
  d.consistency = 0.75;
  d.recovery_seconds = 95.5;
  e.destinations.push_back(d);
  m::DestinationSeries unreconciled;
  unreconciled.destination = "hook";
  unreconciled.kind = "webhook";
  e.destinations.push_back(unreconciled);
  e.open_conflicts = 2;
  std::string text = m::prometheus_text(e);
  const std::string labels =
      "destination=\"shop \\\"a\\\"\\\\b\",destination_kind=\"webhook\",kind=\"inventory\"";
  EXPECT_NE(text.find("# TYPE pgves_sync_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("pgves_sync_latency_seconds_bucket{" + labels + ",le=\"0.0001\"} 1\n"),
            std::string::npos)
      << text.substr(0, 600);
  EXPECT_NE(text.find("pgves_sync_latency_seconds_bucket{" + labels + ",le=\"0.001\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("pgves_sync_latency_seconds_bucket{" + labels + ",le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("pgves_sync_latency_seconds_count{" + labels + "} 3\n"), std::string::npos);
  EXPECT_NE(text.find("pgves_sync_latency_seconds_sum{" + labels + "} 0.0021\n"),
            std::string::npos);
  EXPECT_NE(text.find("pgves_outbox_queue_depth{destination=\"shop \\\"a\\\"\\\\b\","
                      "destination_kind=\"webhook\"} 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("\npgves_conflicts_open 2\n"), std::string::npos);
  const std::string dest = "destination=\"shop \\\"a\\\"\\\\b\",destination_kind=\"webhook\"";
  EXPECT_NE(text.find("pgves_cross_platform_sync_seconds_count{" + dest + "} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("pgves_cross_platform_sync_seconds_sum{" + dest + "} 0.004\n"),
            std::string::npos);
  EXPECT_NE(text.find("pgves_data_consistency_score{" + dest + "} 0.75\n"), std::string::npos);
  EXPECT_NE(
      text.find(
          "pgves_data_consistency_score{destination=\"hook\",destination_kind=\"webhook\"} NaN\n"),
      std::string::npos)
      << "a destination never reconciled has no figure";
  EXPECT_NE(text.find("pgves_recovery_seconds{" + dest + "} 95.5\n"), std::string::npos);
  EXPECT_NE(
      text.find("pgves_recovery_seconds{destination=\"hook\",destination_kind=\"webhook\"} NaN\n"),
      std::string::npos);
  // Every family has one HELP and one TYPE line, and every sample belongs to
  // a family that was announced.
  std::map<std::string, int> types;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("# TYPE ", 0) == 0) types[line.substr(7, line.find(' ', 7) - 7)]++;
  for (const std::string &f : m::prometheus_families()) EXPECT_EQ(types[f], 1) << f;
}
