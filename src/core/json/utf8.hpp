#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pgves::core::utf8 {

// Decodes the scalar value starting at s[pos] into cp and returns its length in
// bytes, or 0 when the bytes there are not well-formed UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF). Hashes are computed
// over UTF-8 bytes, so anything ill-formed must be refused, never repaired.
std::size_t decode(std::string_view s, std::size_t pos, char32_t &cp);

// True when all of s is well-formed UTF-8.
bool is_valid(std::string_view s);

// Appends cp, which must be a Unicode scalar value, as UTF-8.
void append(std::string &out, char32_t cp);

// The key order of RFC 8785 is the order of UTF-16 code units.
std::u16string to_utf16(std::string_view s);

}  // namespace pgves::core::utf8
