#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/base/error.hpp"
#include "core/delivery/http_request.hpp"
#include "core/platforms/http.hpp"
#include "core/platforms/webhook.hpp"
#include "core/platforms/standard_webhooks.hpp"
#include "vectors.hpp"

using pgves::core::build_http_request;
using pgves::core::build_webhook_request;
using pgves::core::Error;
using pgves::core::HttpRequest;
using pgves::core::is_reserved_header;
using pgves::core::validate_header;
using pgves::core::validate_url;
namespace crypto = pgves::core::crypto;
namespace webhooks = pgves::core::webhooks;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

template <typename F>
std::string error_code(F &&f) {
  try {
    f();
  } catch (const Error &e) {
    return e.code();
  }
  return "";
}

const std::string secret = "whsec_" + crypto::bin2base64(std::string(32, 'k'));

}  // namespace

TEST(HttpRequest, WebhookMatchesTheStandardWebhooksVector) {
  const auto all = pgves::test::load_vector_json("standard_webhooks.json");
  const auto &v = *all.find("hmac_v1");
  const std::string vector_secret = v.find("secret")->as_string();
  const std::string id = v.find("webhook_id")->as_string();
  const std::string ts = v.find("webhook_timestamp")->as_string();
  const std::string body = v.find("body")->as_string();

  const HttpRequest r =
      build_webhook_request("https://example.com/hook", vector_secret, id, std::stoll(ts), body);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "https://example.com/hook");
  EXPECT_EQ(r.body, body);
  const Headers expected = {{"content-type", "application/json"},
                            {"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
                            {"webhook-timestamp", "1614265330"},
                            {"webhook-signature", v.find("webhook_signature")->as_string()}};
  EXPECT_EQ(r.headers, expected);
  EXPECT_TRUE(webhooks::verify(vector_secret, id, ts, body, r.headers[3].second));
}

TEST(HttpRequest, WebhookWithExtraHeaders) {
  const HttpRequest r =
      build_webhook_request("http://localhost:8080/in", secret, "msg_1", 1700000000, "{\"a\":1}",
                            {{"Authorization", "Bearer t"}, {"X-Trace", ""}});
  ASSERT_EQ(r.headers.size(), 6u);
  EXPECT_EQ(r.headers[0],
            (std::pair<std::string, std::string>("content-type", "application/json")));
  EXPECT_EQ(r.headers[1], (std::pair<std::string, std::string>("webhook-id", "msg_1")));
  EXPECT_EQ(r.headers[2], (std::pair<std::string, std::string>("webhook-timestamp", "1700000000")));
  EXPECT_EQ(r.headers[3].first, "webhook-signature");
  EXPECT_EQ(r.headers[3].second, webhooks::sign_v1(secret, "msg_1", "1700000000", "{\"a\":1}"));
  EXPECT_TRUE(webhooks::verify(secret, "msg_1", "1700000000", "{\"a\":1}", r.headers[3].second));
  EXPECT_FALSE(webhooks::verify(secret, "msg_1", "1700000001", "{\"a\":1}", r.headers[3].second));
  EXPECT_EQ(r.headers[4], (std::pair<std::string, std::string>("Authorization", "Bearer t")));
  EXPECT_EQ(r.headers[5], (std::pair<std::string, std::string>("X-Trace", "")));
}

TEST(HttpRequest, WebhookEd25519Secret) {
  const std::string whsk = "whsk_" + crypto::bin2base64(std::string(32, '\x07'));
  const HttpRequest r = build_webhook_request("https://example.com", whsk, "msg_2", 0, "{}");
  ASSERT_EQ(r.headers.size(), 4u);
  EXPECT_EQ(r.headers[2].second, "0");
  EXPECT_EQ(r.headers[3].second.rfind("v1a,", 0), 0u);
  EXPECT_TRUE(
      webhooks::verify(webhooks::public_key_for(whsk), "msg_2", "0", "{}", r.headers[3].second));
}

TEST(HttpRequest, WebhookWithoutSecretIsUnsigned) {
  const HttpRequest r = build_webhook_request("https://example.com", "", "msg_3", 1614265330, "[]");
  const Headers expected = {{"content-type", "application/json"},
                            {"webhook-id", "msg_3"},
                            {"webhook-timestamp", "1614265330"}};
  EXPECT_EQ(r.headers, expected);
}

TEST(HttpRequest, WebhookRefusals) {
  EXPECT_EQ(error_code([] { build_webhook_request("ftp://example.com", secret, "m", 1, "{}"); }),
            "invalid_url");
  EXPECT_EQ(error_code([] { build_webhook_request("https://example.com", secret, "", 1, "{}"); }),
            "invalid_header");
  EXPECT_EQ(error_code(
                [] { build_webhook_request("https://example.com", secret, "m\r\nx: y", 1, "{}"); }),
            "invalid_header");
  EXPECT_EQ(
      error_code([] { build_webhook_request("https://example.com", "whsec_%%", "m", 1, "{}"); }),
      "invalid_webhook_secret");
  EXPECT_EQ(error_code([] { build_webhook_request("https://example.com", "plain", "m", 1, "{}"); }),
            "invalid_webhook_secret");
  for (const char *name :
       {"webhook-signature", "Webhook-Signature", "WEBHOOK-ID", "webhook-timestamp", "Content-Type",
        "content-length", "Transfer-Encoding", "Host", "connection"})
    EXPECT_EQ(error_code([&] {
                build_webhook_request("https://example.com", secret, "m", 1, "{}", {{name, "x"}});
              }),
              "invalid_header")
        << name;
  EXPECT_EQ(error_code([] {
              build_webhook_request("https://example.com", secret, "m", 1, "{}",
                                    {{"X-A", "1\r\nX-B: 2"}});
            }),
            "invalid_header");
}

TEST(HttpRequest, PlainPost) {
  const HttpRequest r = build_http_request("https://api.example.com/events", "outbox-42",
                                           "{\"x\":true}", {{"Authorization", "Basic dTpw"}});
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "https://api.example.com/events");
  EXPECT_EQ(r.body, "{\"x\":true}");
  const Headers expected = {{"content-type", "application/json"},
                            {"Idempotency-Key", "outbox-42"},
                            {"Authorization", "Basic dTpw"}};
  EXPECT_EQ(r.headers, expected);

  EXPECT_EQ(build_http_request("http://h", "k", "").headers.size(), 2u);
  EXPECT_EQ(error_code([] { build_http_request("https://h", "", "{}"); }), "invalid_header");
  EXPECT_EQ(error_code([] { build_http_request("https://h", "k\n", "{}"); }), "invalid_header");
  EXPECT_EQ(error_code([] {
              build_http_request("https://h", "k", "{}", {{"idempotency-key", "other"}});
            }),
            "invalid_header");
  EXPECT_EQ(error_code([] { build_http_request("mailto:a@b", "k", "{}"); }), "invalid_url");
}

TEST(HttpRequest, ValidateHeader) {
  EXPECT_NO_THROW(validate_header("X-Custom_Header.1", "value with spaces\tand tab"));
  EXPECT_NO_THROW(validate_header("!#$%&'*+-.^_`|~", ""));
  EXPECT_NO_THROW(validate_header("X-Utf8", "caf\xc3\xa9"));
  for (const std::string &name :
       {std::string(), std::string("X Y"), std::string("X:Y"), std::string("X-A\r\n"),
        std::string("X\nY"), std::string("X\0Y", 3), std::string("(x)"), std::string("x\"y"),
        std::string("caf\xc3\xa9"), std::string("a/b")})
    EXPECT_EQ(error_code([&] { validate_header(name, "v"); }), "invalid_header") << name;
  for (const std::string &value :
       {std::string("a\rb"), std::string("a\nb"), std::string("a\r\nX-Evil: 1"),
        std::string("a\0b", 3), std::string("\x7f"), std::string("\x1b[31m")})
    EXPECT_EQ(error_code([&] { validate_header("X-A", value); }), "invalid_header");
}

TEST(HttpRequest, ValidateUrl) {
  for (const char *url : {"http://a", "https://example.com", "HTTPS://EXAMPLE.COM/x?y=1#z",
                          "http://localhost:8080/hooks", "https://user:pw@example.com:8443/p",
                          "http://[::1]:9000/x", "http://127.0.0.1", "https://example.com?x"})
    EXPECT_NO_THROW(validate_url(url)) << url;
  for (const char *url :
       {"", "example.com", "ftp://example.com", "file:///etc/passwd", "http:/example.com",
        "http://", "https://", "http:///path", "http://:80/", "http://user@/x", "http://[]/x",
        "http://[::1", "https://exa mple.com", "https://example.com/\r\nX: y",
        " https://example.com", "javascript:alert(1)", "httpx://example.com"})
    EXPECT_EQ(error_code([&] { validate_url(url); }), "invalid_url") << url;
  EXPECT_EQ(error_code([] { validate_url(std::string("http://a\0b", 10)); }), "invalid_url");
}

TEST(HttpRequest, UrlUserinfo) {
  EXPECT_TRUE(pgves::core::url_has_userinfo("https://user:pw@example.com/p"));
  EXPECT_TRUE(pgves::core::url_has_userinfo("https://user@example.com/p"));
  EXPECT_TRUE(pgves::core::url_has_userinfo("https://:pw@example.com/p"));
  EXPECT_FALSE(pgves::core::url_has_userinfo("https://example.com/p?user=a@b"));
  EXPECT_FALSE(pgves::core::url_has_userinfo("http://127.0.0.1:9/x"));
}

// What only a real URL parser catches: curl_url decides, as it will at send time.
TEST(HttpRequest, ValidateUrlWithLibcurlsParser) {
  for (const char *url :
       {"http://example.com:99999/", "http://example.com:port/", "http://[zz::1]/x",
        "http://[::1/x", "http://ex\tample.com", "http://exa\x7fmple.com"})
    EXPECT_EQ(error_code([&] { validate_url(url); }), "invalid_url") << url;
  for (const char *url :
       {"http://example.com:8080", "https://xn--bcher-kva.example/", "http://10.0.0.1:1/"})
    EXPECT_NO_THROW(validate_url(url)) << url;
}

TEST(HttpRequest, ReservedHeaders) {
  EXPECT_TRUE(is_reserved_header("webhook-signature"));
  EXPECT_TRUE(is_reserved_header("CONTENT-LENGTH"));
  EXPECT_TRUE(is_reserved_header("Idempotency-Key"));
  EXPECT_FALSE(is_reserved_header("Authorization"));
  EXPECT_FALSE(is_reserved_header("webhook-signatures"));
  EXPECT_FALSE(is_reserved_header(""));
}
