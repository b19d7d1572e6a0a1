#include "core/platforms/destination_config.hpp"

#include <cctype>

#include "core/json/canonical_json.hpp"
#include "core/base/error.hpp"
#include "core/delivery/http_request.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

void check_header(const std::string &name, const std::string &value) {
  validate_header(name, value);
  if (is_reserved_header(name))
    throw Error("invalid_header", "header " + name + " is set by pg_ves and cannot be overridden");
}

bool same_name(const std::string &a, const std::string &b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

std::vector<HeaderSpec> parse_header_option(const json::Value &headers) {
  if (headers.kind() != json::Kind::object)
    throw Error("invalid_header", "headers must be a JSON object of header names to values");
  std::vector<HeaderSpec> out;
  for (const auto &[name, spec] : headers.as_object()) {
    HeaderSpec h;
    h.name = name;
    if (spec.kind() == json::Kind::string) {
      h.value = spec.as_string();
    } else if (spec.kind() == json::Kind::object) {
      const json::Value *value = spec.find("value");
      const json::Value *secret = spec.find("secret");
      for (const auto &member : spec.as_object())
        if (member.first != "value" && member.first != "secret")
          throw Error("invalid_header", "header " + name + " has an unknown key \"" + member.first +
                                            "\" (only \"value\" and \"secret\")");
      if (!value || value->kind() != json::Kind::string)
        throw Error("invalid_header", "header " + name + " needs a string \"value\"");
      if (secret && secret->kind() != json::Kind::boolean)
        throw Error("invalid_header", "\"secret\" of header " + name + " must be true or false");
      h.value = value->as_string();
      h.secret = secret && secret->as_bool();
    } else {
      throw Error("invalid_header",
                  "header " + name + " must be a string or {\"value\": \"...\", \"secret\": true}");
    }
    check_header(h.name, h.value);
    for (const HeaderSpec &earlier : out)
      if (same_name(earlier.name, h.name))
        throw Error("invalid_header",
                    "header " + h.name + " is given twice (names are case-insensitive)");
    out.push_back(std::move(h));
  }
  return out;
}

std::string displayed_headers_json(const std::vector<HeaderSpec> &headers) {
  json::Value::Object o;
  for (const HeaderSpec &h : headers) {
    if (h.secret)
      o.emplace_back(
          h.name, json::Value(json::Value::Object{{"secret", json::Value(true)},
                                                  {"value", json::Value(redacted_header_value)}}));
    else
      o.emplace_back(h.name, json::Value(h.value));
  }
  return jcs::canonicalize(json::Value(std::move(o)));
}

std::string secret_headers_json(const std::vector<HeaderSpec> &headers) {
  json::Value::Object o;
  for (const HeaderSpec &h : headers)
    if (h.secret) o.emplace_back(h.name, json::Value(h.value));
  return jcs::canonicalize(json::Value(std::move(o)));
}

std::vector<HeaderSpec> parse_secret_headers(std::string_view json_text) {
  json::Value v = json::parse(json_text);
  if (v.kind() != json::Kind::object)
    throw Error("invalid_header", "sealed headers are not a JSON object");
  std::vector<HeaderSpec> out;
  for (const auto &[name, value] : v.as_object()) {
    if (value.kind() != json::Kind::string)
      throw Error("invalid_header", "sealed header " + name + " is not a string");
    check_header(name, value.as_string());
    out.push_back(HeaderSpec{name, value.as_string(), true});
  }
  return out;
}

}  // namespace pgves::core
