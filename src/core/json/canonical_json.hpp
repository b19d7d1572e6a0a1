#pragma once

#include <string>
#include <string_view>

#include "core/json/json.hpp"

namespace pgves::core::jcs {

// RFC 8785 serialization of v: no insignificant whitespace, object members
// sorted by the UTF-16 code units of their keys, numbers as ECMAScript prints
// them, strings with the minimal JCS escaping. Throws Error with code
// non_finite_number or invalid_utf8 for values parse() would never produce.
std::string canonicalize(const json::Value &v);

// Strict parse (duplicate keys rejected) followed by canonicalize().
std::string canonicalize_text(std::string_view json_text);

// ECMAScript Number::toString(x) for a finite x (-0 prints as "0").
std::string format_es_number(double x);

}  // namespace pgves::core::jcs
