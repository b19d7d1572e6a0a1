// RFC 3339 times. The created_at of a signed event is the exact string that
// is signed, so it is produced one way only (rfc3339_utc_millis).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgves::core {

// UTC with millisecond precision, e.g. "2026-11-01T12:00:00.100Z".
std::string rfc3339_utc_millis(std::int64_t unix_micros);

// An RFC 3339 date-time ("2026-11-30T10:00:00-05:00", "...Z", fractions
// allowed) as Unix milliseconds, or 0 when text is not one.
std::int64_t rfc3339_unix_ms(std::string_view text);

}  // namespace pgves::core
