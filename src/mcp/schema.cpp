#include "mcp/schema.hpp"

#include <cctype>
#include <cmath>

#include "core/json/canonical_json.hpp"

namespace pgves::mcp {

using core::json::Kind;
using core::json::Value;

bool is_uuid(const std::string &s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

bool is_integer(const Value &v) {
  if (v.kind() != Kind::number) return false;
  const double d = v.as_number();
  return std::floor(d) == d && std::fabs(d) <= 9007199254740992.0;
}

namespace {

bool has_type(const Value &v, const std::string &type) {
  switch (v.kind()) {
    case Kind::null:
      return type == "null";
    case Kind::boolean:
      return type == "boolean";
    case Kind::number:
      return type == "number" || (type == "integer" && is_integer(v));
    case Kind::string:
      return type == "string";
    case Kind::array:
      return type == "array";
    case Kind::object:
      return type == "object";
  }
  return false;
}

std::string type_names(const Value &type) {
  if (type.kind() == Kind::string) return type.as_string();
  std::string out;
  for (const Value &t : type.as_array()) out += (out.empty() ? "" : " or ") + t.as_string();
  return out;
}

}  // namespace

std::string validate(const Value &schema, const Value &value, const std::string &where) {
  if (const Value *type = schema.find("type")) {
    bool ok = false;
    if (type->kind() == Kind::string) {
      ok = has_type(value, type->as_string());
    } else {
      for (const Value &t : type->as_array()) ok = ok || has_type(value, t.as_string());
    }
    if (!ok) return where + " must be of type " + type_names(*type);
  }
  if (const Value *choices = schema.find("enum")) {
    bool found = false;
    for (const Value &c : choices->as_array()) found = found || c == value;
    if (!found) {
      std::string list;
      for (const Value &c : choices->as_array())
        list += (list.empty() ? "" : ", ") + core::jcs::canonicalize(c);
      return where + " must be one of " + list;
    }
  }
  if (value.kind() == Kind::number) {
    if (const Value *m = schema.find("minimum"); m && value.as_number() < m->as_number())
      return where + " must be at least " + core::jcs::canonicalize(*m);
    if (const Value *m = schema.find("maximum"); m && value.as_number() > m->as_number())
      return where + " must be at most " + core::jcs::canonicalize(*m);
  }
  if (value.kind() == Kind::string) {
    const std::string &s = value.as_string();
    // PostgreSQL text cannot hold NUL, and libpq would cut the value there.
    if (s.find('\0') != std::string::npos) return where + " must not contain NUL characters";
    if (const Value *m = schema.find("minLength"); m && s.size() < m->as_number())
      return where + " must not be shorter than " + core::jcs::canonicalize(*m) + " characters";
    if (const Value *m = schema.find("maxLength"); m && s.size() > m->as_number())
      return where + " must not be longer than " + core::jcs::canonicalize(*m) + " characters";
    if (const Value *f = schema.find("format"); f && f->as_string() == "uuid" && !is_uuid(s))
      return where + " must be a UUID such as 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  }
  if (value.kind() == Kind::array) {
    const auto &items = value.as_array();
    if (const Value *m = schema.find("minItems"); m && items.size() < m->as_number())
      return where + " must have at least " + core::jcs::canonicalize(*m) + " items";
    if (const Value *m = schema.find("maxItems"); m && items.size() > m->as_number())
      return where + " must have at most " + core::jcs::canonicalize(*m) + " items";
    if (const Value *item_schema = schema.find("items")) {
      for (std::size_t i = 0; i < items.size(); ++i) {
        std::string e = validate(*item_schema, items[i], where + "[" + std::to_string(i) + "]");
        if (!e.empty()) return e;
      }
    }
  }
  if (value.kind() == Kind::object) {
    const Value *props = schema.find("properties");
    if (const Value *req = schema.find("required")) {
      for (const Value &name : req->as_array())
        if (!value.find(name.as_string())) return where + "." + name.as_string() + " is required";
    }
    // oneOf over alternatives that each require a property: exactly one fits.
    if (const Value *alternatives = schema.find("oneOf")) {
      std::string names;
      int fits = 0;
      for (const Value &alt : alternatives->as_array()) {
        fits += validate(alt, value, where).empty() ? 1 : 0;
        if (const Value *req = alt.find("required"))
          for (const Value &name : req->as_array())
            names += (names.empty() ? "" : " or ") + name.as_string();
      }
      if (fits != 1) return where + " must have exactly one of " + names;
    }
    const Value *extra = schema.find("additionalProperties");
    for (const auto &[key, member] : value.as_object()) {
      const Value *sub = props ? props->find(key) : nullptr;
      if (!sub) {
        if (extra && extra->kind() == Kind::boolean && !extra->as_bool())
          return where + " has an unknown property \"" + key + "\"";
        continue;
      }
      std::string e = validate(*sub, member, where + "." + key);
      if (!e.empty()) return e;
    }
  }
  return "";
}

}  // namespace pgves::mcp
