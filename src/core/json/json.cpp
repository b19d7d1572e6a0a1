#include "core/json/json.hpp"

#include <algorithm>
#include <charconv>

#include "core/base/error.hpp"
#include "utf8.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::json {

namespace {

[[noreturn]] void wrong_type(const char *wanted) {
  throw Error("invalid_json_type", std::string("JSON value is not ") + wanted);
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Value document() {
    Value v = value(0);
    skip_space();
    if (pos_ != text_.size()) fail("invalid_json", "unexpected data after the JSON value");
    return v;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;

  [[noreturn]] void fail(const char *code, const std::string &what) const {
    throw Error(code, what + " at byte " + std::to_string(pos_));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
      ++pos_;
  }

  void expect(char c) {
    skip_space();
    if (peek() != c || at_end()) fail("invalid_json", std::string("expected '") + c + "'");
    ++pos_;
  }

  Value literal(std::string_view word, Value v) {
    if (text_.substr(pos_, word.size()) != word) fail("invalid_json", "invalid literal");
    pos_ += word.size();
    return v;
  }

  Value value(int depth) {
    skip_space();
    if (at_end()) fail("invalid_json", "unexpected end of input");
    switch (peek()) {
      case '{':
        return object(depth + 1);
      case '[':
        return array(depth + 1);
      case '"':
        return Value(string());
      case 't':
        return literal("true", Value(true));
      case 'f':
        return literal("false", Value(false));
      case 'n':
        return literal("null", Value());
      default:
        return Value(number());
    }
  }

  void enter(int depth) {
    if (depth > max_depth)
      fail("nesting_too_deep",
           "JSON nesting is deeper than " + std::to_string(max_depth) + " levels");
    ++pos_;
    skip_space();
  }

  Value array(int depth) {
    enter(depth);
    Value::Array items;
    if (peek() == ']') {
      ++pos_;
      return Value(std::move(items));
    }
    for (;;) {
      items.push_back(value(depth));
      skip_space();
      if (peek() == ']' && !at_end()) break;
      expect(',');
    }
    ++pos_;
    return Value(std::move(items));
  }

  Value object(int depth) {
    const std::size_t start = pos_;
    enter(depth);
    Value::Object members;
    if (peek() == '}') {
      ++pos_;
      return Value(std::move(members));
    }
    for (;;) {
      skip_space();
      if (peek() != '"' || at_end()) fail("invalid_json", "expected a string as object key");
      std::string key = string();
      expect(':');
      members.emplace_back(std::move(key), value(depth));
      skip_space();
      if (peek() == '}' && !at_end()) break;
      expect(',');
    }
    ++pos_;
    reject_duplicates(members, start);
    return Value(std::move(members));
  }

  // Duplicate keys make a document mean different things to different
  // readers, and two events whose payloads differ only there would hash alike.
  void reject_duplicates(const Value::Object &members, std::size_t start) const {
    std::vector<const std::string *> keys;
    keys.reserve(members.size());
    for (const auto &m : members) keys.push_back(&m.first);
    std::sort(keys.begin(), keys.end(), [](auto *a, auto *b) { return *a < *b; });
    const auto dup =
        std::adjacent_find(keys.begin(), keys.end(), [](auto *a, auto *b) { return *a == *b; });
    if (dup != keys.end())
      throw Error("duplicate_key", "duplicate object key \"" + **dup + "\" in the object at byte " +
                                       std::to_string(start));
  }

  unsigned hex4() {
    if (text_.size() - pos_ < 4) fail("invalid_json", "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        fail("invalid_json", "invalid hex digit in \\u escape");
    }
    return v;
  }

  char32_t unicode_escape() {
    const unsigned hi = hex4();
    if (hi >= 0xDC00 && hi <= 0xDFFF) fail("invalid_json", "lone low surrogate in \\u escape");
    if (hi < 0xD800 || hi > 0xDBFF) return hi;
    if (text_.substr(pos_, 2) != "\\u") fail("invalid_json", "lone high surrogate in \\u escape");
    pos_ += 2;
    const unsigned lo = hex4();
    if (lo < 0xDC00 || lo > 0xDFFF)
      fail("invalid_json", "high surrogate not followed by a low surrogate");
    return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
  }

  std::string string() {
    ++pos_;
    std::string out;
    for (;;) {
      if (at_end()) fail("invalid_json", "unterminated string");
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("invalid_json", "unescaped control character in string");
      if (c == '\\') {
        ++pos_;
        const char e = peek();
        ++pos_;
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u':
            utf8::append(out, unicode_escape());
            break;
          default:
            --pos_, fail("invalid_json", "invalid escape sequence");
        }
        continue;
      }
      char32_t cp;
      const std::size_t len = utf8::decode(text_, pos_, cp);
      if (len == 0) fail("invalid_utf8", "string is not valid UTF-8");
      out.append(text_.substr(pos_, len));
      pos_ += len;
    }
  }

  std::size_t digits() {
    const std::size_t start = pos_;
    while (!at_end() && peek() >= '0' && peek() <= '9') ++pos_;
    return pos_ - start;
  }

  double number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    const std::size_t int_start = pos_;
    const std::size_t int_len = digits();
    if (int_len == 0) fail("invalid_json", "unexpected character");
    if (int_len > 1 && text_[int_start] == '0') fail("invalid_json", "leading zero in number");
    std::size_t frac_start = pos_, frac_len = 0;
    if (peek() == '.' && !at_end()) {
      ++pos_;
      frac_start = pos_;
      if ((frac_len = digits()) == 0) fail("invalid_json", "missing digits after decimal point");
    }
    long exponent = 0;
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      const bool negative = peek() == '-';
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      const std::size_t exp_start = pos_;
      if (digits() == 0) fail("invalid_json", "missing digits in exponent");
      // Saturated: only the sign of the magnitude matters past this bound.
      for (std::size_t i = exp_start; i < pos_ && exponent < 100000; ++i)
        exponent = exponent * 10 + (text_[i] - '0');
      if (negative) exponent = -exponent;
    }
    double d = 0;
    const auto res = std::from_chars(text_.data() + start, text_.data() + pos_, d);
    if (res.ec == std::errc()) return d;
    // from_chars reports both overflow and underflow. Underflow becomes a
    // signed zero, as in ECMAScript; only overflow is an error.
    const std::string_view int_part = text_.substr(int_start, int_len);
    const std::string_view frac_part = text_.substr(frac_start, frac_len);
    long magnitude = exponent;
    if (const auto i = int_part.find_first_not_of('0'); i != std::string_view::npos)
      magnitude += static_cast<long>(int_len - i);
    else
      magnitude -= static_cast<long>(frac_part.find_first_not_of('0'));
    if (magnitude <= 0) return text_[start] == '-' ? -0.0 : 0.0;
    std::string shown(text_.substr(start, std::min<std::size_t>(pos_ - start, 40)));
    if (pos_ - start > 40) shown += "...";
    pos_ = start;
    fail("number_out_of_range",
         "number " + shown + " is outside the range of IEEE 754 double precision");
  }
};

}  // namespace

bool Value::as_bool() const {
  if (auto *p = std::get_if<bool>(&v_)) return *p;
  wrong_type("a boolean");
}

double Value::as_number() const {
  if (auto *p = std::get_if<double>(&v_)) return *p;
  wrong_type("a number");
}

const std::string &Value::as_string() const {
  if (auto *p = std::get_if<std::string>(&v_)) return *p;
  wrong_type("a string");
}

const Value::Array &Value::as_array() const {
  if (auto *p = std::get_if<Array>(&v_)) return *p;
  wrong_type("an array");
}

const Value::Object &Value::as_object() const {
  if (auto *p = std::get_if<Object>(&v_)) return *p;
  wrong_type("an object");
}

const Value *Value::find(std::string_view key) const {
  const auto *members = std::get_if<Object>(&v_);
  if (!members) return nullptr;
  for (const auto &m : *members)
    if (m.first == key) return &m.second;
  return nullptr;
}

Value parse(std::string_view text) { return Parser(text).document(); }

}  // namespace pgves::core::json
