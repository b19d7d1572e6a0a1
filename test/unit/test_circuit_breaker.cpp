#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "core/delivery/circuit_breaker.hpp"

using pgves::core::CircuitBreaker;
using State = CircuitBreaker::State;

TEST(CircuitBreaker, Defaults) {
  CircuitBreaker b;
  EXPECT_EQ(b.threshold(), 5);
  EXPECT_EQ(b.cooldown_ms(), 30000);
  EXPECT_EQ(b.state(0), State::closed);
  EXPECT_EQ(b.consecutive_failures(), 0);
  EXPECT_TRUE(b.allow(0));
}

TEST(CircuitBreaker, FullCycle) {
  CircuitBreaker b(3, 10000);
  const std::int64_t t = 1'700'000'000'000;

  b.on_failure(t);
  b.on_failure(t + 100);
  EXPECT_EQ(b.state(t + 100), State::closed);
  EXPECT_EQ(b.consecutive_failures(), 2);
  EXPECT_TRUE(b.allow(t + 200));

  // The third consecutive failure opens it for 10 s from that failure.
  b.on_failure(t + 300);
  EXPECT_EQ(b.consecutive_failures(), 3);
  EXPECT_EQ(b.open_until_ms(), t + 10300);
  EXPECT_EQ(b.state(t + 300), State::open);
  EXPECT_FALSE(b.allow(t + 300));
  EXPECT_FALSE(b.allow(t + 10299));
  EXPECT_EQ(b.state(t + 10299), State::open);

  // Cooldown over: exactly one probe.
  EXPECT_EQ(b.state(t + 10300), State::half_open);
  EXPECT_TRUE(b.allow(t + 10300));
  EXPECT_FALSE(b.allow(t + 10300));
  EXPECT_FALSE(b.allow(t + 10400));
  EXPECT_EQ(b.state(t + 10400), State::half_open);

  // The probe fails: open for another cooldown from the failure.
  b.on_failure(t + 10500);
  EXPECT_EQ(b.state(t + 10500), State::open);
  EXPECT_EQ(b.open_until_ms(), t + 20500);
  EXPECT_EQ(b.consecutive_failures(), 4);
  EXPECT_FALSE(b.allow(t + 20499));

  // The next probe succeeds: closed, failures forgotten.
  EXPECT_TRUE(b.allow(t + 20500));
  EXPECT_FALSE(b.allow(t + 20501));
  b.on_success();
  EXPECT_EQ(b.state(t + 20600), State::closed);
  EXPECT_EQ(b.consecutive_failures(), 0);
  EXPECT_TRUE(b.allow(t + 20600));
  EXPECT_TRUE(b.allow(t + 20600));

  // It takes the full threshold again to reopen.
  b.on_failure(t + 21000);
  b.on_failure(t + 21001);
  EXPECT_EQ(b.state(t + 21001), State::closed);
  b.on_failure(t + 21002);
  EXPECT_EQ(b.state(t + 21002), State::open);
  EXPECT_EQ(b.open_until_ms(), t + 31002);
}

TEST(CircuitBreaker, SuccessResetsTheCount) {
  CircuitBreaker b(3, 1000);
  b.on_failure(0);
  b.on_failure(1);
  b.on_success();
  b.on_failure(2);
  b.on_failure(3);
  EXPECT_EQ(b.state(3), State::closed);
  EXPECT_EQ(b.consecutive_failures(), 2);
}

TEST(CircuitBreaker, ThresholdOne) {
  CircuitBreaker b(1, 500);
  b.on_failure(1000);
  EXPECT_EQ(b.state(1000), State::open);
  EXPECT_EQ(b.state(1499), State::open);
  EXPECT_EQ(b.state(1500), State::half_open);
}

TEST(CircuitBreaker, LateReportsWhileOpen) {
  CircuitBreaker b(2, 1000);
  b.on_failure(0);
  b.on_failure(10);
  EXPECT_EQ(b.open_until_ms(), 1010);
  // A failure of a request sent before the breaker opened restarts the cooldown.
  b.on_failure(500);
  EXPECT_EQ(b.open_until_ms(), 1500);
  EXPECT_EQ(b.state(1200), State::open);
  // A success from such a request shows the destination works again.
  b.on_success();
  EXPECT_EQ(b.state(1200), State::closed);
  EXPECT_TRUE(b.allow(1200));
}

TEST(CircuitBreaker, LostProbeIsReplacedAfterAnotherCooldown) {
  CircuitBreaker b(1, 1000);
  b.on_failure(0);
  EXPECT_TRUE(b.allow(1000));
  EXPECT_FALSE(b.allow(1999));
  EXPECT_TRUE(b.allow(2000));
  EXPECT_FALSE(b.allow(2001));
  EXPECT_EQ(b.state(2001), State::half_open);
}

TEST(CircuitBreaker, ZeroCooldownGoesStraightToHalfOpen) {
  CircuitBreaker b(1, 0);
  b.on_failure(100);
  EXPECT_EQ(b.state(100), State::half_open);
  EXPECT_TRUE(b.allow(100));
  EXPECT_TRUE(b.allow(100));  // a lost probe is replaced at once
  EXPECT_EQ(CircuitBreaker(1, -5).cooldown_ms(), 0);
}

TEST(CircuitBreaker, DisabledStaysClosed) {
  for (int threshold : {0, -1}) {
    CircuitBreaker b(threshold, 1000);
    EXPECT_FALSE(b.enabled());
    for (int i = 0; i < 100; ++i) b.on_failure(i);
    EXPECT_EQ(b.consecutive_failures(), 100);
    EXPECT_EQ(b.state(50), State::closed);
    EXPECT_TRUE(b.allow(50));
    b.on_success();
    EXPECT_EQ(b.consecutive_failures(), 0);
  }
}

TEST(CircuitBreaker, Reconfigure) {
  CircuitBreaker b(2, 1000);
  b.on_failure(0);
  b.reconfigure(2, 1000);  // same settings keep the count
  EXPECT_EQ(b.consecutive_failures(), 1);
  b.on_failure(1);
  EXPECT_EQ(b.state(1), State::open);
  b.reconfigure(2, 5000);  // a new cooldown applies to the next opening
  EXPECT_EQ(b.open_until_ms(), 1001);
  EXPECT_EQ(b.state(1001), State::half_open);
  EXPECT_TRUE(b.allow(1001));
  b.on_failure(1002);
  EXPECT_EQ(b.open_until_ms(), 6002);

  b.reconfigure(0, 5000);  // disabling closes and forgets
  EXPECT_EQ(b.state(1003), State::closed);
  EXPECT_EQ(b.consecutive_failures(), 0);
  b.reconfigure(3, 5000);
  b.on_failure(2000);
  b.on_failure(2001);
  EXPECT_EQ(b.state(2001), State::closed);
  b.reconfigure(1, 5000);  // a lower threshold trips on the next failure
  EXPECT_EQ(b.state(2001), State::closed);
  b.on_failure(2002);
  EXPECT_EQ(b.state(2002), State::open);
}

TEST(CircuitBreaker, FarFutureClockDoesNotWrap) {
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  CircuitBreaker b(1, 30000);
  b.on_failure(max - 10);
  EXPECT_EQ(b.open_until_ms(), max);
  EXPECT_EQ(b.state(max - 1), State::open);
  EXPECT_FALSE(b.allow(max - 1));
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_STREQ(to_string(State::closed), "closed");
  EXPECT_STREQ(to_string(State::open), "open");
  EXPECT_STREQ(to_string(State::half_open), "half_open");
}
