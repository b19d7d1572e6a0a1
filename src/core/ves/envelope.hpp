#pragma once

#include <string>
#include <string_view>

#include "core/json/json.hpp"
#include "core/ves/ves.hpp"

namespace pgves::core::ves {

// Reads a VES v1 JSON envelope (section 6.1, Appendix A). Field types and
// formats are checked, unknown fields are ignored since nothing outside the
// listed ones is signed; hashes and the signature are not verified here.
// Throws Error("invalid_envelope") naming the offending field, or a JSON error.
Event parse_envelope(std::string_view json_text);
Event envelope_from_json(const json::Value &envelope);

// The envelope as RFC 8785 text, with hashes and signatures as 0x-hex.
std::string export_envelope(const Event &e);

// Whether text is an RFC 3339 date-time with a zone, as created_at must be.
bool is_rfc3339_timestamp(std::string_view text);
json::Value envelope_to_json(const Event &e);

}  // namespace pgves::core::ves
