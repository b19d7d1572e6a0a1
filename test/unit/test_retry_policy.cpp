#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/delivery/retry_policy.hpp"

using pgves::core::attempts_exhausted;
using pgves::core::backoff_ms;
using pgves::core::RetryPolicy;

TEST(RetryPolicy, Defaults) {
  const RetryPolicy p;
  EXPECT_EQ(p.max_attempts, 10);
  EXPECT_EQ(p.base_ms, 500);
  EXPECT_EQ(p.cap_ms, 300000);
  EXPECT_DOUBLE_EQ(p.jitter, 0.2);
}

TEST(RetryPolicy, BackoffTableAtBothEndsOfTheJitter) {
  const RetryPolicy p;
  // random01 = 0 is the shortest delay, d * 0.8; 0.999 is within 0.02% of d.
  const std::vector<std::int64_t> low = {400,   800,   1600,   3200,   6400,  12800,
                                         25600, 51200, 102400, 204800, 240000};
  const std::vector<std::int64_t> high = {500,   1000,  2000,   3999,   7998,  15997,
                                          31994, 63987, 127974, 255949, 299940};
  for (int f = 1; f <= 30; ++f) {
    const std::size_t i = std::min<std::size_t>(f - 1, low.size() - 1);
    EXPECT_EQ(backoff_ms(p, f, 0.0), low[i]) << "failures " << f;
    EXPECT_EQ(backoff_ms(p, f, 0.999), high[i]) << "failures " << f;
  }
  EXPECT_EQ(backoff_ms(p, 3, 0.5), 1800);
}

TEST(RetryPolicy, WithoutJitterTheDelayIsExact) {
  RetryPolicy p;
  p.jitter = 0;
  const std::vector<std::int64_t> expected = {500,   1000,  2000,   4000,   8000,   16000,
                                              32000, 64000, 128000, 256000, 300000, 300000};
  for (int f = 1; f <= 12; ++f) {
    EXPECT_EQ(backoff_ms(p, f, 0.0), expected[f - 1]) << "failures " << f;
    EXPECT_EQ(backoff_ms(p, f, 0.7), expected[f - 1]) << "failures " << f;
  }
}

TEST(RetryPolicy, HugeFailureCountsStayAtTheCap) {
  RetryPolicy p;
  p.jitter = 0;
  EXPECT_EQ(backoff_ms(p, 1000, 0.0), 300000);
  EXPECT_EQ(backoff_ms(p, INT_MAX, 0.0), 300000);

  // A cap at the int64 maximum: doubling must saturate, not overflow.
  p.cap_ms = std::numeric_limits<std::int64_t>::max();
  p.base_ms = 1;
  EXPECT_EQ(backoff_ms(p, 63, 0.0), std::int64_t{1} << 62);
  EXPECT_EQ(backoff_ms(p, 64, 0.0), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(backoff_ms(p, 1000, 0.0), std::numeric_limits<std::int64_t>::max());
  p.jitter = 0.2;
  EXPECT_EQ(backoff_ms(p, 1000, 1.0), std::numeric_limits<std::int64_t>::max());
  EXPECT_GT(backoff_ms(p, 1000, 0.0), 0);
  EXPECT_LT(backoff_ms(p, 1000, 0.0), std::numeric_limits<std::int64_t>::max());
}

TEST(RetryPolicy, OutOfRangeInputsAreClamped) {
  RetryPolicy p;
  // Fewer than one failure counts as one.
  EXPECT_EQ(backoff_ms(p, 0, 0.0), 400);
  EXPECT_EQ(backoff_ms(p, -5, 0.0), 400);
  // random01 outside [0, 1) or NaN.
  EXPECT_EQ(backoff_ms(p, 1, -3.0), 400);
  EXPECT_EQ(backoff_ms(p, 1, 7.0), 500);
  EXPECT_EQ(backoff_ms(p, 1, std::nan("")), 400);
  // jitter above 1 is 1, so the delay spans [0, d]; below 0 or NaN is 0.
  p.jitter = 5;
  EXPECT_EQ(backoff_ms(p, 2, 0.0), 0);
  EXPECT_EQ(backoff_ms(p, 2, 0.5), 500);
  p.jitter = -1;
  EXPECT_EQ(backoff_ms(p, 2, 0.0), 1000);
  p.jitter = std::nan("");
  EXPECT_EQ(backoff_ms(p, 2, 0.0), 1000);
}

TEST(RetryPolicy, DegenerateBasesAndCaps) {
  RetryPolicy p;
  p.jitter = 0;
  p.base_ms = 0;
  EXPECT_EQ(backoff_ms(p, INT_MAX, 0.0), 0);
  p.base_ms = -10;
  EXPECT_EQ(backoff_ms(p, 3, 0.0), 0);
  p.base_ms = 1000;
  p.cap_ms = 700;  // the cap wins even over the first delay
  EXPECT_EQ(backoff_ms(p, 1, 0.0), 700);
  p.cap_ms = -1;
  EXPECT_EQ(backoff_ms(p, 1, 0.0), 0);
  p.cap_ms = 3000;  // not a power-of-two multiple of the base
  EXPECT_EQ(backoff_ms(p, 2, 0.0), 2000);
  EXPECT_EQ(backoff_ms(p, 3, 0.0), 3000);
}

TEST(RetryPolicy, AttemptsExhausted) {
  RetryPolicy p;
  EXPECT_FALSE(attempts_exhausted(p, 0));
  EXPECT_FALSE(attempts_exhausted(p, 9));
  EXPECT_TRUE(attempts_exhausted(p, 10));
  EXPECT_TRUE(attempts_exhausted(p, 11));
  p.max_attempts = 1;
  EXPECT_TRUE(attempts_exhausted(p, 1));
  p.max_attempts = 0;
  EXPECT_FALSE(attempts_exhausted(p, INT_MAX));
}
