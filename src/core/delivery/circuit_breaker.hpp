// Stops the delivery worker from spending attempts on a destination that keeps
// failing, and lets a single request find out when it has recovered.
#pragma once

#include <cstdint>

namespace pgves::core {

// closed: requests flow; `threshold` consecutive failures open the breaker.
// open: requests are refused until cooldown_ms has passed since the failure
//   that opened it.
// half_open: allow() is true exactly once, for a probe. Its success closes the
//   breaker (failures reset), its failure opens it for another cooldown.
// threshold <= 0 disables the breaker: it stays closed.
//
// Any failure reported while the breaker is open or half-open restarts the
// cooldown, and any success closes it, whichever request it came from. A
// probe whose outcome is never reported (the worker lost it) would keep the
// breaker half-open for good, so after another cooldown allow() grants a new
// probe. Times are the caller's clock in milliseconds.
class CircuitBreaker {
 public:
  enum class State { closed, open, half_open };

  CircuitBreaker(int threshold = 5, std::int64_t cooldown_ms = 30000);

  // Applies new settings while keeping the current state, so the worker can
  // pass the current configuration on every round. Disabling closes the
  // breaker and forgets the failures.
  void reconfigure(int threshold, std::int64_t cooldown_ms);

  // Whether a request may be sent now; in half_open this claims the probe.
  bool allow(std::int64_t now_ms);
  void on_success();
  void on_failure(std::int64_t now_ms);

  State state(std::int64_t now_ms) const;
  // When the current or last opening ends; meaningful while not closed.
  std::int64_t open_until_ms() const { return open_until_ms_; }
  int consecutive_failures() const { return failures_; }

  bool enabled() const { return threshold_ > 0; }
  int threshold() const { return threshold_; }
  std::int64_t cooldown_ms() const { return cooldown_ms_; }

 private:
  void trip(std::int64_t now_ms);

  int threshold_;
  std::int64_t cooldown_ms_;
  int failures_ = 0;
  bool tripped_ = false;  // open or half_open, depending on the time
  std::int64_t open_until_ms_ = 0;
  bool probe_out_ = false;
  std::int64_t probe_at_ms_ = 0;
};

const char *to_string(CircuitBreaker::State state);

}  // namespace pgves::core
