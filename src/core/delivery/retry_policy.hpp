// How long the delivery worker waits before it tries an outbox row again.
// Randomness is passed in so that schedules are reproducible in tests.
#pragma once

#include <cstdint>

namespace pgves::core {

struct RetryPolicy {
  int max_attempts = 10;         // attempts in all, the first included; <= 0 means no limit
  std::int64_t base_ms = 500;    // delay after the first failure
  std::int64_t cap_ms = 300000;  // no backoff grows beyond this
  double jitter = 0.2;           // fraction of the delay that is randomised, in [0, 1]
};

// Delay before the next attempt after `failures` consecutive failures (values
// below 1 count as 1): min(cap, base * 2^(failures-1)), saturating instead of
// overflowing, then shortened by up to jitter * delay so that rows waiting on
// a destination that recovers do not all hit it at the same moment. With
// random01 in [0, 1) the result lies in [d * (1 - jitter), d]; random01 = 0
// gives the lower end. jitter is clamped to [0, 1], random01 to [0, 1].
std::int64_t backoff_ms(const RetryPolicy &policy, int failures, double random01);

// True once `attempts` attempts have been made and the policy allows no more.
bool attempts_exhausted(const RetryPolicy &policy, int attempts);

}  // namespace pgves::core
