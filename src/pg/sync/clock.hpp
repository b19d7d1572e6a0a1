// The sync code's clocks: the steady clock for waits, deadlines and rate
// limits, the system clock for what is stored or sent as a time.
#pragma once

#include <chrono>
#include <cstdint>

namespace pgves::pg {

inline std::int64_t steady_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

inline std::int64_t steady_ms() { return steady_us() / 1000; }

// Milliseconds since the Unix epoch.
inline std::int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace pgves::pg
