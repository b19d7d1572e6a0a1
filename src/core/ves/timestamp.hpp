// The created_at of a signed event: the exact RFC 3339 string that is signed,
// so it must be produced one way only.
#pragma once

#include <cstdint>
#include <string>

namespace pgves::core {

// UTC with millisecond precision, e.g. "2026-11-01T12:00:00.100Z".
std::string rfc3339_utc_millis(std::int64_t unix_micros);

}  // namespace pgves::core
