#include "core/delivery/retry_policy.hpp"

#include <algorithm>
#include <cmath>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

// NaN compares false with everything, so it is mapped to lo explicitly rather
// than left to std::clamp, which would pass it through.
double clamp_or_low(double v, double lo, double hi) {
  if (!(v >= lo)) return lo;
  return v > hi ? hi : v;
}

std::int64_t exponential_ms(const RetryPolicy &policy, int failures) {
  const std::int64_t cap = std::max<std::int64_t>(policy.cap_ms, 0);
  std::int64_t d = std::min(std::max<std::int64_t>(policy.base_ms, 0), cap);
  // Doubling stops at the cap (at most 63 rounds), so huge failure counts
  // cost nothing and d * 2 never overflows.
  for (int i = 1; i < failures && d > 0 && d < cap; ++i) d = d > cap / 2 ? cap : d * 2;
  return d;
}

}  // namespace

std::int64_t backoff_ms(const RetryPolicy &policy, int failures, double random01) {
  const std::int64_t d = exponential_ms(policy, std::max(failures, 1));
  const double jitter = clamp_or_low(policy.jitter, 0.0, 1.0);
  const double r = clamp_or_low(random01, 0.0, 1.0);
  const double span = static_cast<double>(d) * jitter;
  const double value = static_cast<double>(d) - span + span * r;
  // Also keeps llround away from values that do not fit an int64 when the
  // cap is near its maximum.
  if (value >= static_cast<double>(d)) return d;
  // Rounding, not truncation, so that exact products such as 0.8 * 500 do
  // not lose a millisecond to binary floating point.
  return std::clamp<std::int64_t>(std::llround(value), 0, d);
}

bool attempts_exhausted(const RetryPolicy &policy, int attempts) {
  return policy.max_attempts > 0 && attempts >= policy.max_attempts;
}

}  // namespace pgves::core
