// Per-destination request rate limit for the delivery worker, so that a
// backlog is drained at a pace the receiver agreed to rather than all at once.
#pragma once

#include <cstdint>

namespace pgves::core {

// A token bucket: it holds up to `burst` tokens, gains rate_per_s tokens per
// second and each request takes one. rate_per_s <= 0 (or NaN, infinity) means
// unlimited; burst is at least 1. The bucket starts full. Time is the
// caller's clock in microseconds; a clock that goes backwards adds nothing.
class TokenBucket {
 public:
  TokenBucket(double rate_per_s = 0, double burst = 1);

  // Applies new settings without forgetting what was already spent, so the
  // worker can pass the current configuration on every round. Tokens above
  // the new burst are dropped; a bucket that was unlimited starts full.
  void reconfigure(double rate_per_s, double burst);

  // Takes a token if one is available at now_us.
  bool try_take(std::int64_t now_us);

  // Microseconds until try_take() can succeed; 0 when a token is available.
  std::int64_t wait_us(std::int64_t now_us) const;

  bool unlimited() const { return rate_per_s_ <= 0; }
  double rate_per_s() const { return rate_per_s_; }
  double burst() const { return burst_; }

 private:
  double tokens_at(std::int64_t now_us) const;

  double rate_per_s_ = 0;
  double burst_ = 1;
  double tokens_ = 1;
  bool started_ = false;  // last_us_ is meaningful once a call has supplied a time
  std::int64_t last_us_ = 0;
};

}  // namespace pgves::core
