// What a destination is configured with, checked once when it is written.
//
// ves.create_destination and ves.alter_destination call these validators
// (through ves._destination_check and each kind's Adapter::validate_options,
// adapter.hpp), and the worker builds its requests with the same ones, so a
// destination that was accepted cannot fail to parse at send time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/json/json.hpp"

namespace pgves::core {

// Shown instead of the value of a secret header wherever headers are displayed.
inline constexpr const char *redacted_header_value = "[redacted]";

struct HeaderSpec {
  std::string name;
  std::string value;
  bool secret = false;
};

// Parses the "headers" option: a JSON object whose members are either a
// string (a plain header) or {"value": "<string>", "secret": true|false}.
// Every name and value passes validate_header, and no name is one that pg_ves
// sets itself (is_reserved_header). Throws Error("invalid_header") with a
// message that never contains a header value.
std::vector<HeaderSpec> parse_header_option(const json::Value &headers);

// The form stored in ves.destinations.headers: plain headers as given,
// secret ones as {"value": "[redacted]", "secret": true}. As canonical JSON.
std::string displayed_headers_json(const std::vector<HeaderSpec> &headers);

// The secret headers only, as a JSON object of strings (what is sealed).
std::string secret_headers_json(const std::vector<HeaderSpec> &headers);

// Reads secret_headers_json() back. Throws Error("invalid_header").
std::vector<HeaderSpec> parse_secret_headers(std::string_view json_text);

}  // namespace pgves::core
