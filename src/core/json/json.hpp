#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace pgves::core::json {

enum class Kind { null, boolean, number, string, array, object };

// A JSON document as RFC 8259 describes it. Numbers are IEEE 754 doubles, which
// is what RFC 8785 canonicalizes; objects keep their members in document order
// and parse() guarantees their keys are unique.
class Value {
 public:
  using Array = std::vector<Value>;
  using Member = std::pair<std::string, Value>;
  using Object = std::vector<Member>;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char *s) : v_(std::string(s)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Object o) : v_(std::move(o)) {}

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_null() const { return kind() == Kind::null; }

  // Each accessor throws Error("invalid_json_type") when the kind differs.
  bool as_bool() const;
  double as_number() const;
  const std::string &as_string() const;
  const Array &as_array() const;
  const Object &as_object() const;

  // The member named key of an object, or nullptr when absent or not an object.
  const Value *find(std::string_view key) const;

  friend bool operator==(const Value &a, const Value &b) { return a.v_ == b.v_; }
  friend bool operator!=(const Value &a, const Value &b) { return !(a == b); }

 private:
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v_;
};

constexpr int max_depth = 512;

// Strict RFC 8259 parse of one complete document. Throws Error with code
// invalid_json, invalid_utf8, duplicate_key, number_out_of_range or
// nesting_too_deep.
Value parse(std::string_view text);

}  // namespace pgves::core::json
