#include <gtest/gtest.h>

#include "core/platforms/platform_common.hpp"
#include "platform_test_util.hpp"

namespace p = pgves::core::platforms;
using namespace platform_test;

TEST(PlatformUrl, PercentEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(p::percent_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(p::percent_encode("a/b c+d&e=f?g#h%"), "a%2Fb%20c%2Bd%26e%3Df%3Fg%23h%25");
  EXPECT_EQ(p::percent_encode("Atzr|x,y:z@"), "Atzr%7Cx%2Cy%3Az%40");
  EXPECT_EQ(p::percent_encode("\xc3\xa9"), "%C3%A9");  // UTF-8 bytes, uppercase hex
  EXPECT_EQ(p::percent_encode(std::string("\0\n", 2)), "%00%0A");
  EXPECT_EQ(p::percent_encode(""), "");
}

TEST(PlatformUrl, FormEncodeKeepsOrderAndEncodesNamesAndValues) {
  EXPECT_EQ(p::form_encode({{"b", "2 3"}, {"a&", "x=y"}, {"e", ""}}), "b=2%203&a%26=x%3Dy&e=");
  EXPECT_EQ(p::form_encode({}), "");
}

TEST(PlatformUrl, JoinUrlAndUrlPath) {
  EXPECT_EQ(p::join_url("https://h.example", "/a"), "https://h.example/a");
  EXPECT_EQ(p::join_url("https://h.example//", "/a"), "https://h.example/a");
  EXPECT_EQ(p::join_url("http://127.0.0.1:4000/gw/", "/a"), "http://127.0.0.1:4000/gw/a");
  EXPECT_EQ(p::url_path("https://h.example"), "");
  EXPECT_EQ(p::url_path("https://h.example/"), "");
  EXPECT_EQ(p::url_path("http://127.0.0.1:4000/gw/"), "/gw");
}

TEST(PlatformOptions, StoreIdsAreRequiredUuids) {
  const auto ids =
      p::store_ids_option(js(R"({"tenant_id":"0190F1E2-7B3C-7D4E-8F50-123456789ABC","store_id":")" +
                             std::string(store) + "\"}"));
  EXPECT_EQ(ids.tenant_id, tenant);  // lowercased
  EXPECT_EQ(ids.store_id, store);
  option_error([] { p::store_ids_option(js(R"({"store_id":"x"})")); }, "tenant_id");
  option_error([] { p::store_ids_option(js(std::string(R"({"tenant_id":")") + tenant + "\"}")); },
               "store_id");
  option_error(
      [] {
        p::store_ids_option(js(std::string(R"({"tenant_id":"t1","store_id":")") + store + "\"}"));
      },
      "tenant_id must be a UUID");
  option_error([] { p::store_ids_option(js(R"({"tenant_id":5,"store_id":5})")); },
               "tenant_id must be a string");
  option_error([] { p::store_ids_option(js("[]")); }, "JSON object");
}

TEST(PlatformOptions, StringsRefuseEmptyAndControlCharacters) {
  option_error([] { p::required_string(js(R"({"k":""})"), "k", "h"); }, "k must not be empty");
  option_error([] { p::required_string(js(R"({"k":"a\nb"})"), "k", "h"); }, "control");
  option_error([] { p::required_string(js(R"({"k":null})"), "k", "h"); }, "k is required");
  EXPECT_EQ(p::optional_string(js(R"({"k":null})"), "k", "dflt", "h"), "dflt");
  EXPECT_EQ(p::optional_string(js(R"({})"), "k", "dflt", "h"), "dflt");
  EXPECT_EQ(p::optional_string(js(R"({"k":"v"})"), "k", "dflt", "h"), "v");
}

TEST(PlatformJson, AsIntegerTakesWholeNumbersOnly) {
  const auto v = js(R"({"a":7,"b":7.5,"c":"7","d":-3,"e":1e300})");
  EXPECT_EQ(p::as_integer(v.find("a")), 7);
  EXPECT_EQ(p::as_integer(v.find("d")), -3);
  EXPECT_FALSE(p::as_integer(v.find("b")));
  EXPECT_FALSE(p::as_integer(v.find("c")));
  EXPECT_FALSE(p::as_integer(v.find("e")));
  EXPECT_FALSE(p::as_integer(v.find("zz")));
  EXPECT_FALSE(p::try_parse("{"));
  EXPECT_EQ(p::clip("abcdef", 3), "abc...");
  EXPECT_EQ(p::clip("a\xc3\xa9", 2), "a...");  // never half a UTF-8 sequence
}
