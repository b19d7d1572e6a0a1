// What one delivery attempt of an outbox row means for the row: delivered,
// worth another attempt, or never going to succeed.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/delivery/retry_policy.hpp"

namespace pgves::core {

enum class Outcome {
  synced,     // the destination accepted the event
  retry,      // a transient failure; try again later
  permanent,  // the destination rejected the event; retrying cannot help
  gone,       // the destination says it no longer exists (410)
};

const char *to_string(Outcome outcome);

struct Classified {
  Outcome outcome;
  std::int64_t retry_after_ms = -1;  // -1: the response gave no usable Retry-After
};

// Longest wait a Retry-After header may impose; a misconfigured receiver
// must not be able to park a row for days.
constexpr std::int64_t max_retry_after_ms = 24LL * 60 * 60 * 1000;

// 2xx synced; 410 gone; 408, 425, 429 and 5xx retry, honouring Retry-After
// when it is present and valid; everything else (1xx, 3xx, the other 4xx and
// codes outside 100..599) permanent. Redirects are permanent because the
// worker does not follow them: a moved endpoint is a configuration change.
Classified classify_http(long status, std::string_view retry_after_header,
                         std::int64_t now_unix_ms);

// No HTTP response at all (connection refused or reset, DNS failure, timeout).
Classified classify_transport_error();

// Retry-After (RFC 9110 section 10.2.3) as milliseconds from now_unix_ms:
// delta-seconds (digits only), or an HTTP-date in IMF-fixdate form
// ("Wed, 21 Oct 2015 07:28:00 GMT") or one of the obsolete RFC 850 and asctime
// forms. A date in the past gives 0; results are capped at max_retry_after_ms;
// anything else gives -1. Surrounding spaces and tabs are ignored.
std::int64_t parse_retry_after_ms(std::string_view value, std::int64_t now_unix_ms);

// Delay before the next attempt: the backoff for `failures`, or the
// receiver's Retry-After when that is longer.
std::int64_t next_delay_ms(const RetryPolicy &policy, int failures, const Classified &classified,
                           double random01);

}  // namespace pgves::core
