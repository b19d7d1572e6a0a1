#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/base/error.hpp"
#include "core/crypto/crypto.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/http.hpp"
#include "core/platforms/standard_webhooks.hpp"
#include "core/platforms/webhook.hpp"
#include "vectors.hpp"

namespace core = pgves::core;
namespace crypto = pgves::core::crypto;
namespace json = pgves::core::json;
namespace webhooks = pgves::core::webhooks;
using core::Verdict;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

const std::string whsec = "whsec_" + crypto::bin2base64(std::string(32, 'k'));
const std::string event_id = "0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";
const std::string envelope = "{\"event_id\":\"0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6\",\"v\":1}";
constexpr std::int64_t now_ms = 1700000000123;

const core::Adapter &adapter(const char *kind) {
  const core::Adapter *a = core::find_adapter(kind);
  if (!a) throw std::logic_error(std::string("no adapter for ") + kind);
  return *a;
}

// The OptionError an adapter check throws, as "code: message | hint".
template <typename F>
std::string option_error(F &&f) {
  try {
    f();
  } catch (const core::OptionError &e) {
    return e.code() + ": " + e.what() + " | " + e.hint();
  }
  return "";
}

core::Answer status(long code, std::string_view retry_after = "") {
  core::Answer a;
  a.status = code;
  a.retry_after = retry_after;
  return a;
}

}  // namespace

// --- registry ---------------------------------------------------------------

TEST(AdapterRegistry, KnowsEveryKindInTheirListedOrder) {
  EXPECT_EQ(core::adapter_kinds(), (std::vector<std::string_view>{
                                       "webhook", "http", "ves_sequencer", "shopify", "tiktok_shop",
                                       "amazon_sp", "meta_catalog", "ves_postgres"}));
  for (std::string_view kind : core::adapter_kinds()) {
    const core::Adapter *a = core::find_adapter(kind);
    ASSERT_NE(a, nullptr) << kind;
    EXPECT_EQ(a->kind(), kind);
    EXPECT_FALSE(a->description().empty());
  }
}

TEST(AdapterRegistry, UnknownKindsAreNotFound) {
  for (const char *kind :
       {"", "carrier-pigeon", "Webhook", "HTTP", "webhook ", "Shopify", "tiktok"})
    EXPECT_EQ(core::find_adapter(kind), nullptr) << '"' << kind << '"';
}

TEST(AdapterRegistry, DescribesKindsForHints) {
  // The hint ves.create_destination shows for an unknown kind.
  EXPECT_EQ(core::describe_kinds(),
            "webhook (Standard Webhooks), http (plain JSON POST), ves_sequencer (VES v1 sequencer"
            ", StateSet API), shopify (Shopify Admin GraphQL), tiktok_shop (TikTok Shop Open API "
            "202309), amazon_sp (Amazon SP-API Listings Items), meta_catalog (Meta catalog Batch "
            "API), ves_postgres (another pg_ves database as VES sequencer, over libpq)");
}

// --- requests ---------------------------------------------------------------

TEST(WebhookAdapter, BuildsTheSignedRequestTheWorkerSentBefore) {
  const Headers extra = {{"X-Shop", "42"}, {"Authorization", "Bearer t"}};
  const std::string url = "https://example.com/hook";
  const core::Endpoint endpoint{url, whsec, extra};
  const core::OutboxRow row{7, event_id, envelope, 1};
  const auto requests = adapter("webhook").build_requests(endpoint, {row}, now_ms);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0}));

  const core::HttpRequest &r = requests[0].http;
  const core::HttpRequest before =
      core::build_webhook_request(url, whsec, event_id, now_ms / 1000, envelope, extra);
  EXPECT_EQ(r.method, before.method);
  EXPECT_EQ(r.url, before.url);
  EXPECT_EQ(r.body, before.body);
  EXPECT_EQ(r.headers, before.headers);

  // And what a receiver checks: Standard Webhooks headers, a valid v1 signature.
  const std::string signature = webhooks::sign(whsec, event_id, "1700000000", envelope);
  const Headers expected = {{"content-type", "application/json"},
                            {"webhook-id", event_id},
                            {"webhook-timestamp", "1700000000"},
                            {"webhook-signature", signature},
                            {"X-Shop", "42"},
                            {"Authorization", "Bearer t"}};
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, url);
  EXPECT_EQ(r.body, envelope);
  EXPECT_EQ(r.headers, expected);
  EXPECT_TRUE(webhooks::verify(whsec, event_id, "1700000000", envelope, signature));
}

TEST(WebhookAdapter, MatchesTheStandardWebhooksVector) {
  const auto all = pgves::test::load_vector_json("standard_webhooks.json");
  const auto &v = *all.find("hmac_v1");
  const std::string secret = v.find("secret")->as_string();
  const std::string id = v.find("webhook_id")->as_string();
  const std::string body = v.find("body")->as_string();
  const std::int64_t ts = std::stoll(v.find("webhook_timestamp")->as_string());
  const std::string url = "https://example.com/hook";
  const Headers none;
  const auto requests = adapter("webhook").build_requests(
      {url, secret, none}, {core::OutboxRow{1, id, body, 1}}, ts * 1000 + 999);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].http.headers.at(3),
            (std::pair<std::string, std::string>{"webhook-signature",
                                                 v.find("webhook_signature")->as_string()}));
}

TEST(WebhookAdapter, OneRequestPerRowEachWithItsOwnId) {
  const std::string url = "https://example.com/hook";
  const std::string other_id = "0190f3a4-5b6c-7d8e-9fa0-000000000002";
  const Headers none;
  const auto requests = adapter("webhook").build_requests(
      {url, whsec, none}, {core::OutboxRow{1, event_id, "{}", 1}, {2, other_id, "[]", 3}}, now_ms);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0}));
  EXPECT_EQ(requests[1].rows, (std::vector<std::size_t>{1}));
  EXPECT_EQ(requests[1].http.headers.at(1).second, other_id);
  EXPECT_EQ(requests[1].http.body, "[]");
}

TEST(WebhookAdapter, WithoutASecretSendsNoSignature) {
  const std::string url = "https://example.com/hook", none_secret;
  const Headers none;
  const auto requests = adapter("webhook").build_requests(
      {url, none_secret, none}, {core::OutboxRow{1, event_id, "{}", 1}}, now_ms);
  for (const auto &h : requests.at(0).http.headers) EXPECT_NE(h.first, "webhook-signature");
}

TEST(HttpAdapter, BuildsAPlainPostWithTheEventIdAsIdempotencyKey) {
  const std::string url = "https://api.example.com/events";
  const std::string secret = "not sent";
  const Headers extra = {{"X-Api-Key", "k"}};
  const auto requests = adapter("http").build_requests(
      {url, secret, extra}, {core::OutboxRow{9, event_id, envelope, 2}}, now_ms);
  ASSERT_EQ(requests.size(), 1u);
  const core::HttpRequest &r = requests[0].http;
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, url);
  EXPECT_EQ(r.body, envelope);
  const Headers expected = {
      {"content-type", "application/json"}, {"Idempotency-Key", event_id}, {"X-Api-Key", "k"}};
  EXPECT_EQ(r.headers, expected);
  EXPECT_EQ(r.headers, core::build_http_request(url, event_id, envelope, extra).headers);
}

TEST(Adapters, RefuseToBuildFromABadEndpoint) {
  const Headers reserved = {{"Webhook-Signature", "forged"}};
  const Headers none;
  const std::string ftp = "ftp://example.com/", good = "https://example.com/", bad = "whsec_%%";
  const std::vector<core::OutboxRow> rows = {core::OutboxRow{1, event_id, "{}", 1}};
  for (const char *kind : {"webhook", "http"}) {
    EXPECT_THROW(adapter(kind).build_requests({ftp, whsec, none}, rows, now_ms), core::Error);
    EXPECT_THROW(adapter(kind).build_requests({good, whsec, reserved}, rows, now_ms), core::Error);
  }
  EXPECT_THROW(adapter("webhook").build_requests({good, bad, none}, rows, now_ms), core::Error);
}

// --- answers ----------------------------------------------------------------

TEST(Adapters, ClassifyEachRowOfAnAnswer) {
  for (const char *kind : {"webhook", "http"}) {
    const core::Adapter &a = adapter(kind);
    const auto one = [&](const core::Answer &answer) {
      const auto verdicts = a.classify(answer, 3, now_ms);
      EXPECT_EQ(verdicts.size(), 3u);
      for (const auto &v : verdicts) EXPECT_EQ(v.verdict, verdicts.at(0).verdict);
      return verdicts.at(0);
    };
    EXPECT_EQ(one(status(200)).verdict, Verdict::success) << kind;
    EXPECT_EQ(one(status(204)).verdict, Verdict::success) << kind;

    const core::RowVerdict throttled = one(status(429, "30"));
    EXPECT_EQ(throttled.verdict, Verdict::retry);
    EXPECT_EQ(throttled.retry_after_ms, 30000);
    EXPECT_EQ(one(status(429)).retry_after_ms, -1);
    EXPECT_EQ(one(status(503, "Tue, 14 Nov 2023 22:14:20 GMT")).retry_after_ms,
              1700000060000 - now_ms);

    const core::RowVerdict server_error = one(status(500));
    EXPECT_EQ(server_error.verdict, Verdict::retry);
    EXPECT_EQ(server_error.retry_after_ms, -1);

    const core::RowVerdict refused = one(status(422));
    EXPECT_EQ(refused.verdict, Verdict::permanent);
    EXPECT_EQ(refused.reason, "HTTP 422");
    EXPECT_EQ(one(status(410)).verdict, Verdict::gone);

    // Neither kind can renew a credential or compare-and-set: 401, 409 and
    // 412 are refusals, as they always were.
    EXPECT_EQ(one(status(401)).verdict, Verdict::permanent);
    EXPECT_EQ(one(status(409)).verdict, Verdict::permanent);
    EXPECT_EQ(one(status(412)).verdict, Verdict::permanent);

    core::Answer no_answer;
    no_answer.transport_error = true;
    EXPECT_EQ(one(no_answer).verdict, Verdict::retry);
  }
}

TEST(Adapters, StatusRulesForPlatformsThatReauthenticateOrCompareAndSet) {
  const core::adapters::StatusRules rules{true, true};
  const auto one = [&](long code) {
    const auto verdicts = core::adapters::classify_status(status(code), 2, now_ms, rules);
    EXPECT_EQ(verdicts.size(), 2u);
    return verdicts.at(1);
  };
  EXPECT_EQ(one(401).verdict, Verdict::reauthenticate);
  EXPECT_EQ(one(409).verdict, Verdict::stale);
  EXPECT_EQ(one(412).verdict, Verdict::stale);
  EXPECT_NE(one(412).reason.find("412"), std::string::npos);
  EXPECT_EQ(one(403).verdict, Verdict::permanent);
  EXPECT_EQ(one(200).verdict, Verdict::success);
}

TEST(Adapters, VerdictsMapToTheDeliverersOutcomes) {
  const auto outcome = [](Verdict v, std::int64_t after = -1) {
    core::RowVerdict verdict;
    verdict.verdict = v;
    verdict.retry_after_ms = after;
    return core::to_classified(verdict);
  };
  EXPECT_EQ(outcome(Verdict::success).outcome, core::Outcome::synced);
  EXPECT_EQ(outcome(Verdict::retry, 5000).outcome, core::Outcome::retry);
  EXPECT_EQ(outcome(Verdict::retry, 5000).retry_after_ms, 5000);
  EXPECT_EQ(outcome(Verdict::reauthenticate).outcome, core::Outcome::retry);
  EXPECT_EQ(outcome(Verdict::permanent).outcome, core::Outcome::permanent);
  EXPECT_EQ(outcome(Verdict::stale).outcome, core::Outcome::permanent);
  EXPECT_EQ(outcome(Verdict::gone).outcome, core::Outcome::gone);
  EXPECT_STREQ(core::to_string(Verdict::stale), "stale");
}

// --- options ----------------------------------------------------------------

TEST(Adapters, RefuseBadUrlsWithTheirHint) {
  for (const char *kind : {"webhook", "http"}) {
    const core::Adapter &a = adapter(kind);
    EXPECT_NO_THROW(a.validate_url("https://example.com/hooks/pg-ves"));
    EXPECT_EQ(option_error([&] { a.validate_url("ftp://example.com/"); }),
              "invalid_url: destination url must start with http:// or https:// | Give an "
              "http:// or https:// URL with a host and no spaces, e.g. "
              "https://example.com/hooks/pg-ves.");
    const std::string userinfo = option_error([&] { a.validate_url("https://u:p@example.com/"); });
    EXPECT_EQ(userinfo.rfind("invalid_url: destination url must not carry a user name or "
                             "password | The url is stored in plain text",
                             0),
              0u)
        << userinfo;
  }
}

TEST(Adapters, CheckSecretsAndHeaders) {
  const core::Adapter &webhook = adapter("webhook");
  const core::Adapter &http = adapter("http");
  const auto options = [](const std::string &text) { return json::parse(text); };

  EXPECT_NO_THROW(webhook.validate_options(options("{\"secret\": \"" + whsec + "\"}")));
  EXPECT_NO_THROW(webhook.validate_options(options("{\"secret\": null}")));
  // The message never repeats the secret.
  const std::string weak =
      option_error([&] { webhook.validate_options(options(R"({"secret": "hunter2"})")); });
  EXPECT_EQ(weak,
            "invalid_option: a webhook secret starts with whsec_ (HMAC) or whsk_ (Ed25519) "
            "followed by base64 | Use the secret your endpoint gave you, e.g. "
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw.");
  EXPECT_EQ(option_error([&] { webhook.validate_options(options(R"({"secret": "whsec_%%"})")); }),
            weak);
  EXPECT_EQ(option_error([&] { http.validate_options(options(R"({"secret": 42})")); }),
            "invalid_option: the destination secret must be a string | Pass the secret your "
            "endpoint gave you as a JSON string.");

  // http takes any secret without control characters.
  EXPECT_NO_THROW(http.validate_options(options(R"({"secret": "hunter2"})")));
  EXPECT_EQ(option_error([&] { http.validate_options(options(R"({"secret": "a\nb"})")); }),
            "invalid_option: the destination secret contains a control character | Pass the "
            "secret as it was given to you, without line breaks.");

  for (const core::Adapter *a : {&webhook, &http}) {
    EXPECT_TRUE(a->validate_options(options("{}")).empty());
    const auto headers = a->validate_options(
        options(R"({"headers": {"X-A": "1", "Authorization": {"value": "t", "secret": true}}})"));
    ASSERT_EQ(headers.size(), 2u);
    EXPECT_FALSE(headers[0].secret);
    EXPECT_TRUE(headers[1].secret);
    const std::string reserved =
        option_error([&] { a->validate_options(options(R"({"headers": {"Host": "x"}})")); });
    EXPECT_EQ(reserved.rfind("invalid_header: header Host is set by pg_ves and cannot be "
                             "overridden | headers is an object of names",
                             0),
              0u)
        << reserved;
  }
}

// --- inbound ----------------------------------------------------------------

namespace {

core::InboundMessage signed_message(const std::string &key, const std::string &id,
                                    std::int64_t timestamp_s, const std::string &body) {
  const std::string ts = std::to_string(timestamp_s);
  return core::InboundMessage{{{"Webhook-Id", id},
                               {"webhook-timestamp", ts},
                               {"WEBHOOK-SIGNATURE", webhooks::sign(key, id, ts, body)}},
                              {}};
}

}  // namespace

TEST(WebhookAdapter, VerifiesAValidInboundMessage) {
  const std::string body = "{\"ok\":true}";
  // InboundMessage holds a view of the body: set it once body outlives it.
  core::InboundMessage m = signed_message(whsec, "msg_1", now_ms / 1000 - 10, body);
  m.body = body;
  const core::InboundCheck check = adapter("webhook").verify_inbound(whsec, m, now_ms);
  EXPECT_TRUE(check.valid) << check.reason;
  EXPECT_TRUE(check.reason.empty());

  // Ed25519: signed with the whsk_ seed, checked with its whpk_ public key.
  const std::string whsk = "whsk_" + crypto::bin2base64(std::string(32, 's'));
  core::InboundMessage ed = signed_message(whsk, "msg_2", now_ms / 1000, body);
  ed.body = body;
  EXPECT_TRUE(adapter("webhook").verify_inbound(webhooks::public_key_for(whsk), ed, now_ms).valid);
}

TEST(WebhookAdapter, RefusesATamperedInboundMessage) {
  const std::string body = "{\"amount\":10}", tampered = "{\"amount\":99}";
  core::InboundMessage m = signed_message(whsec, "msg_1", now_ms / 1000, body);
  m.body = tampered;
  const core::InboundCheck check = adapter("webhook").verify_inbound(whsec, m, now_ms);
  EXPECT_FALSE(check.valid);
  EXPECT_EQ(check.reason, "no webhook-signature matches the key");

  // The right body under another key is refused too.
  m.body = body;
  const std::string other = "whsec_" + crypto::bin2base64(std::string(32, 'o'));
  EXPECT_FALSE(adapter("webhook").verify_inbound(other, m, now_ms).valid);

  // A missing header is named.
  core::InboundMessage bare{{{"webhook-id", "msg_1"}}, body};
  EXPECT_EQ(adapter("webhook").verify_inbound(whsec, bare, now_ms).reason,
            "webhook-id, webhook-timestamp and webhook-signature are all required");
}

TEST(WebhookAdapter, RefusesAStaleOrFutureTimestamp) {
  const std::string body = "{}";
  const core::Adapter &a = adapter("webhook");
  for (std::int64_t offset : {-301, 301, -86400}) {
    core::InboundMessage m = signed_message(whsec, "msg_1", now_ms / 1000 + offset, body);
    m.body = body;
    const core::InboundCheck check = a.verify_inbound(whsec, m, now_ms);
    EXPECT_FALSE(check.valid) << offset;
    EXPECT_EQ(check.reason, "webhook-timestamp is more than 300 seconds away from now") << offset;
    // A wider tolerance accepts what the signature vouches for.
    EXPECT_EQ(a.verify_inbound(whsec, m, now_ms, 100000).valid, true) << offset;
  }
  core::InboundMessage m = signed_message(whsec, "msg_1", now_ms / 1000, body);
  m.body = body;
  m.headers[1].second = "soon";
  EXPECT_EQ(a.verify_inbound(whsec, m, now_ms).reason,
            "webhook-timestamp is not a number of seconds");
}

TEST(HttpAdapter, HasNoInboundSignature) {
  const core::InboundMessage m{{{"webhook-id", "x"}}, "{}"};
  try {
    adapter("http").verify_inbound(whsec, m, now_ms);
    FAIL() << "verify_inbound succeeded for kind http";
  } catch (const core::Error &e) {
    EXPECT_EQ(e.code(), "unsupported");
    EXPECT_NE(std::string(e.what()).find("kind http"), std::string::npos) << e.what();
  }
}
