#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>

#include "core/json/canonical_json.hpp"
#include "core/base/error.hpp"
#include "vectors.hpp"

using pgves::core::Error;
namespace jcs = pgves::core::jcs;
namespace json = pgves::core::json;

class JcsVector : public testing::TestWithParam<const char *> {};

TEST_P(JcsVector, OutputMatchesByteForByte) {
  const std::string name = GetParam();
  const std::string input = pgves::test::read_vector_file("jcs/input/" + name);
  const std::string expected = pgves::test::read_vector_file("jcs/output/" + name);
  const std::string actual = jcs::canonicalize_text(input);
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(jcs::canonicalize_text(actual), expected);
}

INSTANTIATE_TEST_SUITE_P(Rfc8785, JcsVector,
                         testing::Values("arrays.json", "french.json", "structures.json",
                                         "unicode.json", "values.json", "weird.json"),
                         [](const auto &info) {
                           std::string name = info.param;
                           return name.substr(0, name.find('.'));
                         });

TEST(JcsNumbers, AllEcmaScriptSerialisations) {
  std::istringstream lines(pgves::test::read_vector_file("jcs/numbers.txt"));
  std::string line;
  int count = 0, failures = 0;
  while (std::getline(lines, line)) {
    ++count;
    const std::size_t comma = line.find(',');
    ASSERT_NE(comma, std::string::npos) << line;
    const std::uint64_t bits = std::stoull(line.substr(0, comma), nullptr, 16);
    const std::string expected = line.substr(comma + 1);
    double x;
    std::memcpy(&x, &bits, sizeof x);
    const std::string actual = jcs::format_es_number(x);
    const double reparsed = json::parse(actual).as_number();
    const bool ok = actual == expected && reparsed == x;
    if (!ok && ++failures <= 20)
      ADD_FAILURE() << "line " << count << ": " << line << " gave " << actual;
  }
  EXPECT_EQ(count, 20000);
  EXPECT_EQ(failures, 0);
}

TEST(JcsNumbers, LayoutBoundaries) {
  EXPECT_EQ(jcs::format_es_number(-0.0), "0");
  EXPECT_EQ(jcs::format_es_number(1e21), "1e+21");
  EXPECT_EQ(jcs::format_es_number(1e20), "100000000000000000000");
  EXPECT_EQ(jcs::format_es_number(123456789012345680000.0), "123456789012345680000");
  EXPECT_EQ(jcs::format_es_number(1e-6), "0.000001");
  EXPECT_EQ(jcs::format_es_number(1e-7), "1e-7");
  EXPECT_EQ(jcs::format_es_number(-1.5e-7), "-1.5e-7");
  EXPECT_EQ(jcs::format_es_number(4.5e-9), "4.5e-9");
  EXPECT_EQ(jcs::format_es_number(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(jcs::format_es_number(9007199254740993.0), "9007199254740992");
  EXPECT_EQ(jcs::format_es_number(1.7976931348623157e308), "1.7976931348623157e+308");
}

TEST(JcsNumbers, NonFiniteIsRefused) {
  for (const double x :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity()}) {
    try {
      jcs::format_es_number(x);
      FAIL();
    } catch (const Error &e) {
      EXPECT_EQ(e.code(), "non_finite_number");
    }
    EXPECT_THROW(jcs::canonicalize(json::Value::Array{x}), Error);
  }
}

TEST(JcsStrings, EscapingIsMinimal) {
  EXPECT_EQ(jcs::canonicalize_text(R"("\u0000\u001f\u007f\u2028 \b\f\n\r\t\"\\\/")"),
            "\"\\u0000\\u001f\x7F\xE2\x80\xA8 \\b\\f\\n\\r\\t\\\"\\\\/\"");
}

TEST(JcsObjects, KeysSortByUtf16CodeUnits) {
  // U+1F602 is D83D DE02 in UTF-16, so it sorts before U+FB33 although its
  // code point (and UTF-8 encoding) is larger.
  EXPECT_EQ(jcs::canonicalize_text(R"({"\ufb33":1,"\ud83d\ude02":2,"\u00f6":3,"b":4,"a":5})"),
            "{\"a\":5,\"b\":4,\"\xC3\xB6\":3,\"\xF0\x9F\x98\x82\":2,\"\xEF\xAC\xB3\":1}");
}

TEST(JcsObjects, AsciiKeysSortByteWiseAndNonAsciiObjectsByUtf16) {
  // Objects with ASCII keys only are sorted by their bytes (shorter prefix
  // first, '_' between upper and lower case); an object nested in one may
  // have keys that need the UTF-16 order, and the other way round.
  EXPECT_EQ(
      jcs::canonicalize_text(
          R"({"aa":1,"a_b":2,"a":3,"_":4,"B":5,"n":{"\ufb33":1,"\ud83d\ude02":2,"z":{"y":1,"x":2}}})"),
      "{\"B\":5,\"_\":4,\"a\":3,\"a_b\":2,\"aa\":1,"
      "\"n\":{\"z\":{\"x\":2,\"y\":1},\"\xF0\x9F\x98\x82\":2,\"\xEF\xAC\xB3\":1}}");
  // Keys whose escapes decode to ASCII are ASCII keys too.
  EXPECT_EQ(jcs::canonicalize_text(R"({"\u0062":1,"\u0061":2,"\u007f":3,"\t":4})"),
            "{\"\\t\":4,\"a\":2,\"b\":1,\"\x7F\":3}");
}

TEST(JcsErrors, StrictInputIsEnforced) {
  const auto code = [](std::string_view text) {
    try {
      jcs::canonicalize_text(text);
    } catch (const Error &e) {
      return e.code();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(code(R"({"a":1,"a":2})"), "duplicate_key");
  EXPECT_EQ(code("[1e400]"), "number_out_of_range");
  EXPECT_EQ(code(R"(["\udead"])"), "invalid_json");
  EXPECT_EQ(code("[\"\xC3\x28\"]"), "invalid_utf8");
}

TEST(JcsErrors, ProgrammaticValuesAreChecked) {
  EXPECT_THROW(jcs::canonicalize(json::Value(std::string("\xFF"))), Error);
  EXPECT_THROW(jcs::canonicalize(json::Value::Object{{"k", 1.0}, {"k", 2.0}}), Error);
  EXPECT_THROW(jcs::canonicalize(json::Value::Object{{"\xC3\xB6", 1.0}, {"\xC3\xB6", 2.0}}), Error);
}
