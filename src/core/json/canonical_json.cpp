#include "core/json/canonical_json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/base/error.hpp"
#include "utf8.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::jcs {

namespace {

void write_string(std::string &out, const std::string &s) {
  static constexpr char hex[] = "0123456789abcdef";
  if (!utf8::is_valid(s))
    throw Error("invalid_utf8", "string is not valid UTF-8, so it has no canonical form");
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

bool all_keys_ascii(const json::Value::Object &members) {
  for (const auto &m : members)
    for (const char c : m.first)
      if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

// An object's members in RFC 8785 order: by their keys' UTF-16 code units.
// When every key is ASCII (every object pg_ves builds itself, and most
// payloads'), one code unit per byte makes the keys' byte order their
// UTF-16 order, and they are sorted as they are, with no UTF-16 copy of
// each. Equal keys end up next to each other either way.
std::vector<const json::Value::Member *> sorted_members(const json::Value::Object &members) {
  std::vector<const json::Value::Member *> sorted;
  sorted.reserve(members.size());
  if (all_keys_ascii(members)) {
    for (const auto &m : members) sorted.push_back(&m);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto *a, const auto *b) { return a->first < b->first; });
    return sorted;
  }
  std::vector<std::pair<std::u16string, const json::Value::Member *>> keyed;
  keyed.reserve(members.size());
  for (const auto &m : members) keyed.emplace_back(utf8::to_utf16(m.first), &m);
  std::sort(keyed.begin(), keyed.end(),
            [](const auto &a, const auto &b) { return a.first < b.first; });
  for (const auto &k : keyed) sorted.push_back(k.second);
  return sorted;
}

void write(std::string &out, const json::Value &v) {
  switch (v.kind()) {
    case json::Kind::null:
      out += "null";
      break;
    case json::Kind::boolean:
      out += v.as_bool() ? "true" : "false";
      break;
    case json::Kind::number:
      out += format_es_number(v.as_number());
      break;
    case json::Kind::string:
      write_string(out, v.as_string());
      break;
    case json::Kind::array: {
      out += '[';
      bool first = true;
      for (const auto &item : v.as_array()) {
        if (!first) out += ',';
        first = false;
        write(out, item);
      }
      out += ']';
      break;
    }
    case json::Kind::object: {
      const std::vector<const json::Value::Member *> sorted = sorted_members(v.as_object());
      const auto dup =
          std::adjacent_find(sorted.begin(), sorted.end(),
                             [](const auto *a, const auto *b) { return a->first == b->first; });
      if (dup != sorted.end())
        throw Error("duplicate_key", "duplicate object key \"" + (*dup)->first + "\"");
      out += '{';
      bool first = true;
      for (const auto *member : sorted) {
        if (!first) out += ',';
        first = false;
        write_string(out, member->first);
        out += ':';
        write(out, member->second);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string format_es_number(double x) {
  if (!std::isfinite(x))
    throw Error("non_finite_number", "NaN and Infinity have no JSON representation");
  if (x == 0) return "0";
  std::string out;
  if (x < 0) {
    out += '-';
    x = -x;
  }
  // std::to_chars gives the shortest digit string that round-trips, choosing
  // the one closest to x on ties, which is exactly the digit string that
  // Number::toString requires; only the layout rules remain to be applied.
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  const std::string_view sci(buf, res.ptr - buf);
  const std::size_t e = sci.find('e');
  std::string digits(1, sci[0]);
  if (e > 1) digits.append(sci.substr(2, e - 2));
  const int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;  // x = 0.digits * 10^n
  if (k <= n && n <= 21) {
    out += digits;
    out.append(n - k, '0');
  } else if (0 < n && n <= 21) {
    out.append(digits, 0, n);
    out += '.';
    out.append(digits, n);
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(-n, '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits, 1);
    }
    out += n - 1 < 0 ? "e-" : "e+";
    out += std::to_string(std::abs(n - 1));
  }
  return out;
}

std::string canonicalize(const json::Value &v) {
  std::string out;
  write(out, v);
  return out;
}

std::string canonicalize_text(std::string_view json_text) {
  return canonicalize(json::parse(json_text));
}

}  // namespace pgves::core::jcs
