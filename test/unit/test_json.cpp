#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/base/error.hpp"
#include "core/json/json.hpp"

using pgves::core::Error;
namespace json = pgves::core::json;

namespace {

std::string error_code(std::string_view text) {
  try {
    json::parse(text);
  } catch (const Error &e) {
    return e.code();
  }
  return "accepted";
}

}  // namespace

TEST(JsonParse, Scalars) {
  EXPECT_TRUE(json::parse(" null ").is_null());
  EXPECT_TRUE(json::parse("true").as_bool());
  EXPECT_FALSE(json::parse("false").as_bool());
  EXPECT_EQ(json::parse("-12.5e1").as_number(), -125.0);
  EXPECT_EQ(json::parse("\"a\\u00e9\\ud83d\\ude02\\/\"").as_string(), "a\xC3\xA9\xF0\x9F\x98\x82/");
  EXPECT_EQ(json::parse("\"\\u0000\"").as_string(), std::string(1, '\0'));
}

TEST(JsonParse, Structures) {
  const json::Value v = json::parse(R"({"a":[1,{"b":null}],"c":{}})");
  ASSERT_EQ(v.kind(), json::Kind::object);
  ASSERT_EQ(v.as_object().size(), 2u);
  EXPECT_EQ(v.as_object()[0].first, "a");
  EXPECT_EQ(v.find("a")->as_array()[1].find("b")->kind(), json::Kind::null);
  EXPECT_EQ(v.find("missing"), nullptr);
  EXPECT_EQ(v, json::parse(R"( { "a" : [ 1 , { "b" : null } ] , "c" : { } } )"));
}

TEST(JsonParse, RejectsMalformedText) {
  for (const char *bad :
       {"",          " ",           "nul",      "tru", "[1,]",     "{\"a\":1,}", "[1 2]",
        "{\"a\" 1}", "{1:2}",       "01",       "1.",  ".5",       "-",          "1e",
        "1e+",       "+1",          "0x10",     "NaN", "Infinity", "\"abc",      "\"\\x\"",
        "\"\\u12\"", "\"\\u12G4\"", "\"a\tb\"", "[",   "{",        "'a'",        "[1]]"})
    EXPECT_EQ(error_code(bad), "invalid_json") << bad;
}

TEST(JsonParse, RejectsTrailingGarbage) {
  EXPECT_EQ(error_code("{} x"), "invalid_json");
  EXPECT_EQ(error_code("1 2"), "invalid_json");
  EXPECT_EQ(error_code(std::string("{}\0", 3)), "invalid_json");
}

TEST(JsonParse, RejectsDuplicateKeys) {
  EXPECT_EQ(error_code(R"({"a":1,"b":2,"a":3})"), "duplicate_key");
  EXPECT_EQ(error_code(R"([{"x":{"k":1,"k":1}}])"), "duplicate_key");
  EXPECT_EQ(error_code(R"({"\u0061":1,"a":2})"), "duplicate_key");
  EXPECT_EQ(error_code(R"({"a":1,"A":2})"), "accepted");
}

TEST(JsonParse, RejectsLoneSurrogates) {
  EXPECT_EQ(error_code(R"("\ud83d")"), "invalid_json");
  EXPECT_EQ(error_code(R"("\ud83dx")"), "invalid_json");
  EXPECT_EQ(error_code(R"("\ude02")"), "invalid_json");
  EXPECT_EQ(error_code(R"("\ud83d\u0041")"), "invalid_json");
}

TEST(JsonParse, RejectsInvalidUtf8) {
  for (const char *bad : {"\"\xC3\"", "\"\xC0\xAF\"", "\"\xE0\x80\xAF\"", "\"\xED\xA0\x80\"",
                          "\"\xF4\x90\x80\x80\"", "\"\xFF\"", "\"\x80\"", "\"\xF0\x9F\x98\""})
    EXPECT_EQ(error_code(bad), "invalid_utf8") << bad;
  EXPECT_EQ(error_code("\xEF\xBB\xBF{}"), "invalid_json");  // RFC 8259 lets parsers refuse a BOM
}

TEST(JsonParse, NumberRange) {
  EXPECT_EQ(error_code("1e400"), "number_out_of_range");
  EXPECT_EQ(error_code("-1e400"), "number_out_of_range");
  EXPECT_EQ(error_code("[1" + std::string(400, '0') + "]"), "number_out_of_range");
  EXPECT_EQ(error_code("0.00001e99999999999999999999"), "number_out_of_range");
  try {
    json::parse("1e400");
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("1e400"), std::string::npos) << e.what();
  }
  // Underflow rounds to zero, as JSON.parse does.
  EXPECT_EQ(json::parse("1e-400").as_number(), 0.0);
  EXPECT_TRUE(std::signbit(json::parse("-1e-400").as_number()));
  EXPECT_EQ(json::parse("0." + std::string(400, '0') + "1").as_number(), 0.0);
  EXPECT_EQ(json::parse("1.7976931348623157e308").as_number(), 1.7976931348623157e308);
  EXPECT_EQ(json::parse("5e-324").as_number(), 5e-324);
  EXPECT_EQ(json::parse("0e99999999999").as_number(), 0.0);
}

TEST(JsonParse, DepthLimit) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_EQ(error_code(nested(json::max_depth)), "accepted");
  EXPECT_EQ(error_code(nested(json::max_depth + 1)), "nesting_too_deep");
  EXPECT_EQ(error_code(std::string(100000, '[')), "nesting_too_deep");
}

TEST(JsonValue, WrongTypeAccess) {
  try {
    json::parse("1").as_string();
    FAIL();
  } catch (const Error &e) {
    EXPECT_EQ(e.code(), "invalid_json_type");
  }
}
