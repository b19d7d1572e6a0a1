#include "core/delivery/circuit_breaker.hpp"

#include <algorithm>
#include <limits>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

// now + cooldown, pinned to the int64 range so that a far-future clock
// cannot wrap an opening into the past.
std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > std::numeric_limits<std::int64_t>::max() - b)
    return std::numeric_limits<std::int64_t>::max();
  return a + b;
}

}  // namespace

CircuitBreaker::CircuitBreaker(int threshold, std::int64_t cooldown_ms)
    : threshold_(threshold), cooldown_ms_(std::max<std::int64_t>(cooldown_ms, 0)) {}

void CircuitBreaker::reconfigure(int threshold, std::int64_t cooldown_ms) {
  threshold_ = threshold;
  cooldown_ms_ = std::max<std::int64_t>(cooldown_ms, 0);
  if (!enabled()) on_success();
}

void CircuitBreaker::trip(std::int64_t now_ms) {
  tripped_ = true;
  open_until_ms_ = saturating_add(now_ms, cooldown_ms_);
  probe_out_ = false;
}

bool CircuitBreaker::allow(std::int64_t now_ms) {
  switch (state(now_ms)) {
    case State::closed:
      return true;
    case State::open:
      return false;
    case State::half_open:
      if (probe_out_ && now_ms < saturating_add(probe_at_ms_, cooldown_ms_)) return false;
      probe_out_ = true;
      probe_at_ms_ = now_ms;
      return true;
  }
  return false;
}

void CircuitBreaker::on_success() {
  failures_ = 0;
  tripped_ = false;
  probe_out_ = false;
}

void CircuitBreaker::on_failure(std::int64_t now_ms) {
  if (failures_ < std::numeric_limits<int>::max()) ++failures_;
  if (!enabled()) return;
  if (tripped_ || failures_ >= threshold_) trip(now_ms);
}

CircuitBreaker::State CircuitBreaker::state(std::int64_t now_ms) const {
  if (!enabled() || !tripped_) return State::closed;
  return now_ms < open_until_ms_ ? State::open : State::half_open;
}

const char *to_string(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::closed:
      return "closed";
    case CircuitBreaker::State::open:
      return "open";
    case CircuitBreaker::State::half_open:
      return "half_open";
  }
  return "unknown";
}

}  // namespace pgves::core
