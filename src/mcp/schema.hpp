#pragma once

#include <string>

#include "core/json/json.hpp"

namespace pgves::mcp {

// Checks value against the subset of JSON Schema the tools' inputSchema use:
// type (one name or a list), properties, required, additionalProperties
// false, enum, minimum, maximum, minLength, maxLength, items, minItems,
// maxItems, format "uuid", and oneOf (exactly one alternative fits; used with
// alternatives that each require one property). Returns what is wrong, naming
// the argument, or an empty string when value fits.
std::string validate(const core::json::Value &schema, const core::json::Value &value,
                     const std::string &where);

// Whether s is a UUID in its 8-4-4-4-12 hexadecimal form.
bool is_uuid(const std::string &s);

// Whether v is a number with no fractional part that a double holds exactly.
bool is_integer(const core::json::Value &v);

}  // namespace pgves::mcp
