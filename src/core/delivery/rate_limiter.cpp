#include "core/delivery/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

// Refilling by repeated floating-point additions can leave a bucket a hair
// short of a whole token exactly when wait_us() said one would be there; this
// much shortfall still counts as a token.
constexpr double token_epsilon = 1e-9;

double sanitize_rate(double rate_per_s) {
  return rate_per_s > 0 && std::isfinite(rate_per_s) ? rate_per_s : 0;
}

double sanitize_burst(double burst) {
  if (!(burst >= 1)) return 1;  // also catches NaN
  return std::isfinite(burst) ? burst : std::numeric_limits<double>::max();
}

}  // namespace

TokenBucket::TokenBucket(double rate_per_s, double burst)
    : rate_per_s_(sanitize_rate(rate_per_s)), burst_(sanitize_burst(burst)), tokens_(burst_) {}

void TokenBucket::reconfigure(double rate_per_s, double burst) {
  const bool was_unlimited = unlimited();
  rate_per_s_ = sanitize_rate(rate_per_s);
  burst_ = sanitize_burst(burst);
  tokens_ = was_unlimited ? burst_ : std::min(tokens_, burst_);
}

double TokenBucket::tokens_at(std::int64_t now_us) const {
  if (!started_ || now_us <= last_us_) return tokens_;
  // The difference is taken in double: two arbitrary int64 times may be
  // further apart than an int64 can hold.
  const double elapsed_s = (static_cast<double>(now_us) - static_cast<double>(last_us_)) / 1e6;
  return std::min(burst_, tokens_ + elapsed_s * rate_per_s_);
}

bool TokenBucket::try_take(std::int64_t now_us) {
  if (unlimited()) return true;
  tokens_ = tokens_at(now_us);
  // A clock that stepped back moves the reference point back with it;
  // otherwise the bucket would refill nothing until the clock caught up.
  last_us_ = now_us;
  started_ = true;
  if (tokens_ < 1 - token_epsilon) return false;
  tokens_ = std::max(0.0, tokens_ - 1);
  return true;
}

std::int64_t TokenBucket::wait_us(std::int64_t now_us) const {
  if (unlimited()) return 0;
  const double missing = 1 - tokens_at(now_us);
  if (missing <= token_epsilon) return 0;
  // Less the same slack try_take() allows, so that a value a hair above a
  // whole microsecond is not rounded up to the next one.
  const double us = std::ceil((missing - token_epsilon) * 1e6 / rate_per_s_);
  constexpr double max_us = static_cast<double>(std::numeric_limits<std::int64_t>::max() / 2);
  if (us >= max_us) return static_cast<std::int64_t>(max_us);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(us));
}

}  // namespace pgves::core
