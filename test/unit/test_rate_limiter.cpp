#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/delivery/rate_limiter.hpp"

using pgves::core::TokenBucket;

TEST(TokenBucket, DefaultIsUnlimited) {
  TokenBucket b;
  EXPECT_TRUE(b.unlimited());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.try_take(0));
  EXPECT_EQ(b.wait_us(0), 0);
  EXPECT_TRUE(TokenBucket(-5, 3).unlimited());
  EXPECT_TRUE(TokenBucket(std::nan(""), 3).unlimited());
  EXPECT_TRUE(TokenBucket(std::numeric_limits<double>::infinity(), 3).unlimited());
}

TEST(TokenBucket, TenPerSecondBurstTwo) {
  TokenBucket b(10, 2);
  EXPECT_FALSE(b.unlimited());
  const std::int64_t t0 = 1'700'000'000'000'000;
  EXPECT_EQ(b.wait_us(t0), 0);
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_FALSE(b.try_take(t0));
  EXPECT_EQ(b.wait_us(t0), 100000);
  EXPECT_EQ(b.wait_us(t0 + 40000), 60000);
  EXPECT_EQ(b.wait_us(t0 + 99999), 1);
  EXPECT_FALSE(b.try_take(t0 + 99999));
  EXPECT_EQ(b.wait_us(t0 + 100000), 0);
  EXPECT_TRUE(b.try_take(t0 + 100000));
  EXPECT_FALSE(b.try_take(t0 + 100000));
  EXPECT_EQ(b.wait_us(t0 + 100000), 100000);
}

TEST(TokenBucket, RefillStopsAtBurst) {
  TokenBucket b(10, 2);
  EXPECT_TRUE(b.try_take(0));
  EXPECT_TRUE(b.try_take(0));
  // An hour idle still only yields two tokens.
  const std::int64_t later = 3'600'000'000;
  EXPECT_TRUE(b.try_take(later));
  EXPECT_TRUE(b.try_take(later));
  EXPECT_FALSE(b.try_take(later));
  EXPECT_EQ(b.wait_us(later), 100000);
}

TEST(TokenBucket, SteadyRateOverManySteps) {
  // A rate whose interval is not a whole number of microseconds: following
  // wait_us() exactly must always succeed, and never early.
  TokenBucket b(3, 1);
  std::int64_t now = 0;
  ASSERT_TRUE(b.try_take(now));
  EXPECT_EQ(b.wait_us(now), 333334);
  for (int i = 0; i < 3000; ++i) {
    const std::int64_t wait = b.wait_us(now);
    ASSERT_GE(wait, 333333) << i;
    ASSERT_LE(wait, 333334) << i;
    ASSERT_FALSE(b.try_take(now + wait - 1)) << i;
    now += wait;
    ASSERT_TRUE(b.try_take(now)) << i;
  }
  // 3000 tokens at 3 per second take 1000 s, give or take rounding.
  EXPECT_NEAR(static_cast<double>(now), 1e9, 3000);
}

TEST(TokenBucket, FractionalBurstIsAtLeastOne) {
  TokenBucket b(1, 0.25);
  EXPECT_DOUBLE_EQ(b.burst(), 1);
  EXPECT_TRUE(b.try_take(0));
  EXPECT_FALSE(b.try_take(0));
  EXPECT_EQ(b.wait_us(0), 1000000);
  EXPECT_DOUBLE_EQ(TokenBucket(1, std::nan("")).burst(), 1);
  EXPECT_DOUBLE_EQ(TokenBucket(1, -3).burst(), 1);
}

TEST(TokenBucket, SlowRates) {
  TokenBucket b(0.5, 1);  // one request every two seconds
  EXPECT_TRUE(b.try_take(10));
  EXPECT_EQ(b.wait_us(10), 2000000);
  EXPECT_EQ(b.wait_us(1000010), 1000000);
  EXPECT_TRUE(b.try_take(2000010));
}

TEST(TokenBucket, ClockGoingBackwards) {
  TokenBucket b(10, 1);
  EXPECT_TRUE(b.try_take(1000000));
  // A step back adds nothing, and the bucket refills from the new reading on
  // instead of waiting for the clock to catch up.
  EXPECT_FALSE(b.try_take(500000));
  EXPECT_EQ(b.wait_us(500000), 100000);
  EXPECT_TRUE(b.try_take(600000));
}

TEST(TokenBucket, ExtremeTimes) {
  const std::int64_t min = std::numeric_limits<std::int64_t>::min();
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  TokenBucket b(1, 1);
  EXPECT_TRUE(b.try_take(min));
  EXPECT_EQ(b.wait_us(min), 1000000);
  EXPECT_TRUE(b.try_take(max));
  EXPECT_FALSE(b.try_take(max));
  EXPECT_EQ(b.wait_us(max), 1000000);

  TokenBucket tiny(1e-300, 1);
  EXPECT_TRUE(tiny.try_take(0));
  EXPECT_EQ(tiny.wait_us(0), std::int64_t{1} << 62);
}

TEST(TokenBucket, ReconfigureKeepsWhatWasSpent) {
  TokenBucket b(10, 2);
  EXPECT_TRUE(b.try_take(0));
  EXPECT_TRUE(b.try_take(0));
  b.reconfigure(10, 2);  // same settings: nothing changes
  EXPECT_FALSE(b.try_take(0));
  EXPECT_EQ(b.wait_us(0), 100000);

  b.reconfigure(20, 5);  // faster refill, larger bucket, still empty now
  EXPECT_DOUBLE_EQ(b.rate_per_s(), 20);
  EXPECT_DOUBLE_EQ(b.burst(), 5);
  EXPECT_EQ(b.wait_us(0), 50000);
  EXPECT_TRUE(b.try_take(50000));

  TokenBucket full(10, 5);
  full.reconfigure(10, 2);  // tokens above the new burst are dropped
  EXPECT_TRUE(full.try_take(0));
  EXPECT_TRUE(full.try_take(0));
  EXPECT_FALSE(full.try_take(0));

  full.reconfigure(0, 2);
  EXPECT_TRUE(full.unlimited());
  EXPECT_TRUE(full.try_take(0));
  EXPECT_EQ(full.wait_us(0), 0);

  full.reconfigure(10, 3);  // leaving unlimited starts full
  EXPECT_FALSE(full.unlimited());
  EXPECT_TRUE(full.try_take(0));
  EXPECT_TRUE(full.try_take(0));
  EXPECT_TRUE(full.try_take(0));
  EXPECT_FALSE(full.try_take(0));
}
