// Helpers shared by the platform adapter tests (test_platform_*.cpp).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"

namespace platform_test {

inline pgves::core::json::Value js(std::string_view text) { return pgves::core::json::parse(text); }

// base (a JSON object's text) with the members of extra (",\"k\":v,...")
// added or replaced, as JSON text.
inline std::string merged(std::string_view base, std::string_view extra) {
  using pgves::core::json::Value;
  Value::Object out = js(base).as_object();
  if (!extra.empty()) {
    const Value more = js("{" + std::string(extra.substr(1)) + "}");
    for (const auto &m : more.as_object()) {
      bool replaced = false;
      for (auto &o : out)
        if (o.first == m.first) o.second = m.second, replaced = true;
      if (!replaced) out.push_back(m);
    }
  }
  return pgves::core::jcs::canonicalize(Value(out));
}

inline pgves::core::Answer answer(long status, std::string_view body,
                                  std::string_view retry_after = "") {
  pgves::core::Answer a;
  a.status = status;
  a.body = body;
  a.retry_after = retry_after;
  return a;
}

inline pgves::core::Answer no_answer() {
  pgves::core::Answer a;
  a.transport_error = true;
  return a;
}

// The header's value, or "<absent>".
inline std::string header(const pgves::core::HttpRequest &r, std::string_view name) {
  for (const auto &h : r.headers)
    if (h.first == name) return h.second;
  return "<absent>";
}

// Runs f, which must throw OptionError with code and a message containing
// word and a hint; returns the message.
template <typename F>
std::string option_error(F f, const std::string &word, const std::string &code = "invalid_option") {
  try {
    f();
  } catch (const pgves::core::OptionError &e) {
    EXPECT_EQ(e.code(), code);
    EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
    return e.what();
  }
  ADD_FAILURE() << "no OptionError (expected one about " << word << ")";
  return {};
}

constexpr const char *tenant = "0190f1e2-7b3c-7d4e-8f50-123456789abc";
constexpr const char *store = "0190f1e2-7b3c-7d4e-8f50-cba987654321";
constexpr std::int64_t now_ms = 1764460800123;  // 2025-11-30T00:00:00.123Z

}  // namespace platform_test
