#include <gtest/gtest.h>

#include <string>

#include "core/crypto/crypto.hpp"
#include "core/platforms/destination_config.hpp"
#include "core/base/error.hpp"
#include "core/json/json.hpp"
#include "core/platforms/webhook.hpp"

namespace core = pgves::core;
namespace json = pgves::core::json;

namespace {

template <typename F>
std::string error_code(F &&f) {
  try {
    f();
  } catch (const core::Error &e) {
    return e.code();
  }
  return "";
}

std::string header_error(const std::string &headers_json) {
  return error_code([&] { core::parse_header_option(json::parse(headers_json)); });
}

std::string header_message(const std::string &headers_json) {
  try {
    core::parse_header_option(json::parse(headers_json));
  } catch (const core::Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DestinationConfig, PlainAndSecretHeaders) {
  auto h = core::parse_header_option(json::parse(
      R"({"X-Plain": "a", "Authorization": {"value": "Bearer s3cr3t", "secret": true},
            "X-Explicit": {"value": "b", "secret": false}, "X-Bare": {"value": "c"}})"));
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].name, "X-Plain");
  EXPECT_FALSE(h[0].secret);
  EXPECT_EQ(h[1].value, "Bearer s3cr3t");
  EXPECT_TRUE(h[1].secret);
  EXPECT_FALSE(h[2].secret);
  EXPECT_FALSE(h[3].secret);

  std::string shown = core::displayed_headers_json(h);
  EXPECT_EQ(shown.find("s3cr3t"), std::string::npos);
  EXPECT_NE(shown.find(R"("Authorization":{"secret":true,"value":"[redacted]"})"),
            std::string::npos)
      << shown;
  EXPECT_NE(shown.find(R"("X-Plain":"a")"), std::string::npos) << shown;

  std::string sealed = core::secret_headers_json(h);
  EXPECT_EQ(sealed, R"({"Authorization":"Bearer s3cr3t"})");
  auto back = core::parse_secret_headers(sealed);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].name, "Authorization");
  EXPECT_EQ(back[0].value, "Bearer s3cr3t");
  EXPECT_TRUE(back[0].secret);

  // The displayed form parses again, so what the worker reads back is valid.
  auto reread = core::parse_header_option(json::parse(shown));
  EXPECT_EQ(reread.size(), 4u);
}

TEST(DestinationConfig, RefusedHeaders) {
  for (const char *bad : {R"([])",
                          R"("x")",
                          R"({"X-A": 1})",
                          R"({"X-A": null})",
                          R"({"X-A": true})",
                          R"({"X-A": ["a"]})",
                          R"({"X A": "a"})",
                          R"({"": "a"})",
                          R"({"X-A:": "a"})",
                          R"({"X-A": "a\r\nX-B: b"})",
                          R"({"X-A": "a\nb"})",
                          R"({"X-A": "a\u0000"})",
                          R"({"X-A": {"secret": true}})",
                          R"({"X-A": {"value": 5, "secret": true}})",
                          R"({"X-A": {"value": "a", "secret": "yes"}})",
                          R"({"X-A": {"value": "a", "colour": 1}})",
                          R"({"Content-Type": "text/plain"})",
                          R"({"webhook-signature": "v1,x"})",
                          R"({"Host": "evil"})",
                          R"({"X-A": "a", "x-a": "b"})"})
    EXPECT_EQ(header_error(bad), "invalid_header") << bad;
  // A refused secret value is never echoed.
  std::string message = header_message(R"({"X-Key": {"value": "hunter2\n", "secret": true}})");
  EXPECT_FALSE(message.empty());
  EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
}

TEST(DestinationConfig, WebhookSecrets) {
  const std::string whsec = "whsec_" + core::crypto::bin2base64(std::string(32, 'k'));
  const std::string whsk = "whsk_" + core::crypto::bin2base64(std::string(32, 's'));
  EXPECT_NO_THROW(core::validate_webhook_secret(whsec));
  EXPECT_NO_THROW(core::validate_webhook_secret(whsk));
  for (const std::string &bad :
       {std::string("hunter2"), std::string("whsec_"), std::string("whsk_"),
        std::string("whsec_!!!"),
        std::string("whsk_") + core::crypto::bin2base64(std::string("short")),
        std::string("WHSEC_abc")})
    EXPECT_EQ(error_code([&] { core::validate_webhook_secret(bad); }), "invalid_webhook_secret")
        << bad;
}
