// The four commerce platform kinds (shopify, tiktok_shop, amazon_sp,
// meta_catalog) through the Adapter interface the deliverer and the SQL
// checks use: options, requests as test/mock/platforms.py checks them,
// verdicts per row, tokens, reads and inbound messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/platform_common.hpp"
#include "platform_test_util.hpp"

namespace core = pgves::core;
namespace json = pgves::core::json;
namespace p = pgves::core::platforms;
using core::Verdict;
using namespace platform_test;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string jcs_text(const json::Value &v) { return pgves::core::jcs::canonicalize(v); }

const core::Adapter &adapter(const char *kind) {
  const core::Adapter *a = core::find_adapter(kind);
  if (!a) throw std::logic_error(std::string("no adapter for ") + kind);
  return *a;
}

// A destination as the deliverer hands it over: kind options (with
// store_id, without tenant_id) and the opened credentials.
struct Dest {
  std::string url;
  json::Value options;
  json::Value credentials;
  std::string token;  // Endpoint::access_token
  std::string secret;
  Headers headers;

  core::Endpoint endpoint() const {
    return core::Endpoint{url, secret, headers, &options, &credentials, token};
  }
};

// The merged set validate_options receives: kind options, credentials, tenant_id.
json::Value merged_set(const Dest &d, const std::string &extra = "") {
  std::string text = merged(jcs_text(d.options), ",\"tenant_id\":\"" + std::string(tenant) + "\"");
  for (const auto &m : d.credentials.as_object())
    text = merged(text, ",\"" + m.first + "\":" + pgves::core::jcs::canonicalize(m.second));
  return js(merged(text, extra));
}

// One listing of a row: its ref is kept alive by the test.
core::ListingFacts listing(const json::Value &ref, std::int64_t quantity,
                           std::optional<std::int64_t> known = std::nullopt) {
  core::ListingFacts l;
  l.sku = "sku";
  l.location = "default";
  l.platform_ref = &ref;
  l.quantity = quantity;
  l.known = known;
  return l;
}

core::OutboxRow row(std::int64_t id, const std::vector<core::ListingFacts> &listings,
                    int attempt = 1) {
  core::OutboxRow r;
  r.id = id;
  r.event_id = "0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";
  r.body = "{}";
  r.attempt = attempt;
  r.listings = &listings;
  return r;
}

template <typename F>
std::string error_code(F f) {
  try {
    f();
  } catch (const pgves::core::Error &e) {
    return e.code();
  }
  return "(none)";
}

core::InboundMessage inbound(Headers headers, std::string_view body) {
  core::InboundMessage m;
  m.headers = std::move(headers);
  m.body = body;
  return m;
}

core::Answer with_rate_limit(core::Answer a, std::string_view rate) {
  a.rate_limit = rate;
  return a;
}

}  // namespace

// --- every platform kind ----------------------------------------------------------

TEST(PlatformAdapters, AreRegisteredPlatformsWithTheirOptionsAndSecrets) {
  struct Expect {
    const char *kind;
    std::vector<std::string_view> secrets;
    bool one_location;
  };
  const Expect expected[] = {
      {"shopify", {"access_token", "webhook_secret"}, false},
      {"tiktok_shop", {"app_secret", "access_token", "refresh_token"}, false},
      {"amazon_sp", {"client_secret", "refresh_token"}, true},
      {"meta_catalog", {"access_token", "app_secret"}, true},
  };
  for (const Expect &e : expected) {
    const core::Adapter &a = adapter(e.kind);
    EXPECT_TRUE(a.is_platform()) << e.kind;
    EXPECT_EQ(a.secret_option_names(), e.secrets) << e.kind;
    EXPECT_EQ(a.one_location_per_sku(), e.one_location) << e.kind;
    const auto names = a.option_names();
    EXPECT_NE(std::find(names.begin(), names.end(), "store_id"), names.end()) << e.kind;
    EXPECT_EQ(std::find(names.begin(), names.end(), "tenant_id"), names.end()) << e.kind;
    for (std::string_view s : e.secrets)
      EXPECT_NE(std::find(names.begin(), names.end(), s), names.end()) << e.kind << " " << s;
    const auto d = a.defaults();
    EXPECT_GT(d.rate_limit, 0) << e.kind;
    EXPECT_GT(d.burst, 0) << e.kind;
    EXPECT_GT(d.concurrency, 0) << e.kind;
  }
  for (const char *kind : {"webhook", "http", "ves_sequencer"}) {
    EXPECT_FALSE(adapter(kind).is_platform()) << kind;
    EXPECT_EQ(adapter(kind).defaults().rate_limit, 0) << kind;
  }
  // Amazon's Listings Items usage plan.
  EXPECT_EQ(adapter("amazon_sp").defaults().rate_limit, 5);
  EXPECT_EQ(adapter("amazon_sp").defaults().burst, 5);
}

TEST(PlatformAdapters, RefuseTheCommonSecretAndHeadersOptions) {
  const json::Value shopify = js(std::string(R"({"tenant_id":")") + tenant + R"(","store_id":")" +
                                 store + R"(","access_token":"shpat_x"})");
  EXPECT_NO_THROW(adapter("shopify").validate_options(shopify));
  EXPECT_TRUE(adapter("shopify").validate_options(shopify).empty());
  for (const char *extra : {R"(,"secret":"whsec_abc")", R"(,"headers":{"X-A":"b"})"}) {
    const std::string text = merged(jcs_text(shopify), extra);
    option_error([&] { adapter("shopify").validate_options(js(text)); }, "means nothing");
  }
  // null means "not given".
  EXPECT_NO_THROW(adapter("shopify").validate_options(
      js(merged(jcs_text(shopify), R"(,"secret":null,"headers":null)"))));
}

TEST(PlatformAdapters, TakeAnApiBaseUrlOnly) {
  for (const char *kind : {"shopify", "tiktok_shop", "amazon_sp", "meta_catalog"}) {
    EXPECT_NO_THROW(adapter(kind).validate_url("https://api.example.com")) << kind;
    EXPECT_NO_THROW(adapter(kind).validate_url("http://127.0.0.1:8080/")) << kind;
    option_error([&] { adapter(kind).validate_url("ftp://api.example.com"); }, "", "invalid_url");
    option_error([&] { adapter(kind).validate_url("https://api.example.com/?a=1"); }, "query",
                 "invalid_url");
    option_error([&] { adapter(kind).validate_url("https://u:p@api.example.com"); }, "user",
                 "invalid_url");
  }
}

TEST(PlatformAdapters, ARowGetsTheWorstVerdictOfItsLines) {
  const std::vector<p::Line> lines = {{0, nullptr}, {0, nullptr}, {1, nullptr},
                                      {2, nullptr}, {2, nullptr}, {2, nullptr}};
  const std::vector<core::RowVerdict> per_line = {p::retry(100),          p::stale("moved"),
                                                  p::success(),           p::retry(100),
                                                  p::reauthenticate("x"), p::retry(900)};
  const auto rows = p::row_verdicts(lines, per_line, 3);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].verdict, Verdict::stale);
  EXPECT_EQ(rows[1].verdict, Verdict::success);
  EXPECT_EQ(rows[2].verdict, Verdict::reauthenticate);
  EXPECT_EQ(p::worst(p::permanent("a"), p::stale("b")).verdict, Verdict::permanent);
  EXPECT_EQ(p::worst(p::stale("b"), p::permanent("a")).verdict, Verdict::permanent);
  EXPECT_EQ(p::worst(p::retry(100), p::retry(900)).retry_after_ms, 900);
  EXPECT_EQ(p::worst(p::success(), p::retry(-1)).verdict, Verdict::retry);
}

TEST(PlatformAdapters, ReadRfc3339Times) {
  EXPECT_EQ(pgves::core::rfc3339_unix_ms("2026-11-30T10:00:00-05:00"), 1796050800000);
  EXPECT_EQ(pgves::core::rfc3339_unix_ms("2026-11-30T15:00:00Z"), 1796050800000);
  EXPECT_EQ(pgves::core::rfc3339_unix_ms("2026-11-30T15:00:00.25Z"), 1796050800250);
  EXPECT_EQ(pgves::core::rfc3339_unix_ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(pgves::core::rfc3339_unix_ms("2026-11-30 15:00:00"), 0);
  EXPECT_EQ(pgves::core::rfc3339_unix_ms("2026-13-30T15:00:00Z"), 0);
  EXPECT_EQ(pgves::core::rfc3339_unix_ms(""), 0);
}

TEST(PlatformAdapters, RefuseRowsWithoutListings) {
  const std::vector<core::ListingFacts> none;
  for (const char *kind : {"shopify", "tiktok_shop", "amazon_sp", "meta_catalog"}) {
    Dest d;
    d.url = "https://api.example.com";
    d.options = js(std::string(R"({"store_id":")") + store + "\"}");
    d.credentials = js("{}");
    d.token = "tok";
    EXPECT_NE(
        error_code([&] { adapter(kind).build_requests(d.endpoint(), {row(1, none)}, now_ms); }),
        "(none)")
        << kind;
  }
}

// --- shopify ------------------------------------------------------------------------

namespace {

const char *kMutation =
    "mutation PgVesSetAvailable($input: InventorySetQuantitiesInput!, $key: String!) "
    "{ inventorySetQuantities(input: $input) @idempotent(key: $key) "
    "{ inventoryAdjustmentGroup { id } userErrors { code field message } } }";

Dest shopify_dest() {
  Dest d;
  d.url = "https://pgves-test.myshopify.com";
  d.options = js(std::string(R"({"store_id":")") + store +
                 R"(","api_version":"2026-04","location_id":"gid://shopify/Location/1"})");
  d.credentials =
      js(R"({"access_token":"shpat_pgves_test","webhook_secret":"shopify-webhook-secret"})");
  return d;
}

std::string shopify_key(const core::HttpRequest &r) {
  const json::Value body = js(r.body);
  return body.find("variables")->find("key")->as_string();
}

}  // namespace

TEST(ShopifyAdapter, ValidatesTheMergedOptionSet) {
  const core::Adapter &a = adapter("shopify");
  const Dest d = shopify_dest();
  EXPECT_TRUE(a.validate_options(merged_set(d)).empty());
  option_error([&] { a.validate_options(merged_set(d, R"(,"access_token":null)")); },
               "access_token");
  option_error([&] { a.validate_options(merged_set(d, R"(,"api_version":"2025-10")")); },
               "api_version");
  option_error([&] { a.validate_options(merged_set(d, R"(,"location_id":"Location/1")")); },
               "location_id");
  option_error([&] { a.validate_options(merged_set(d, R"(,"store_id":"not-a-uuid")")); },
               "store_id");
  EXPECT_EQ(a.inbound_key(merged_set(d)), "shopify-webhook-secret");
  EXPECT_EQ(a.inbound_key(js(R"({"access_token":"x"})")), "");
  EXPECT_FALSE(a.token_request(d.endpoint()).has_value());
}

TEST(ShopifyAdapter, ValidatesListingsAndKeysThemByItemAndLocation) {
  const core::Adapter &a = adapter("shopify");
  const json::Value with_default = js(R"({"location_id":"gid://shopify/Location/1"})");
  const json::Value none = js("{}");
  const json::Value ref = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})");
  const json::Value ref2 = js(
      R"({"inventory_item_id":"gid://shopify/InventoryItem/12","location_id":"gid://shopify/Location/2"})");
  EXPECT_NO_THROW(a.validate_listing(ref, with_default));
  EXPECT_NO_THROW(a.validate_listing(ref2, none));
  option_error([&] { a.validate_listing(ref, none); }, "location_id");
  option_error([&] { a.validate_listing(js(R"({"inventory_item_id":"11"})"), with_default); },
               "inventory_item_id");
  option_error([&] { a.validate_listing(js(R"(["x"])"), with_default); }, "object");
  EXPECT_EQ(a.listing_key(ref, with_default),
            "gid://shopify/InventoryItem/11@gid://shopify/Location/1");
  EXPECT_EQ(a.listing_key(ref2, with_default),
            "gid://shopify/InventoryItem/12@gid://shopify/Location/2");
}

TEST(ShopifyAdapter, SetsEveryRowsQuantityInOneIdempotentMutation) {
  const core::Adapter &a = adapter("shopify");
  const Dest d = shopify_dest();
  const json::Value ref1 = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})");
  const json::Value ref2 = js(
      R"({"inventory_item_id":"gid://shopify/InventoryItem/12","location_id":"gid://shopify/Location/2"})");
  const std::vector<core::ListingFacts> l1 = {listing(ref1, 7, 5)};
  const std::vector<core::ListingFacts> l2 = {listing(ref2, 0)};
  const auto requests = a.build_requests(d.endpoint(), {row(41, l1), row(42, l2)}, now_ms);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0, 1}));
  const core::HttpRequest &r = requests[0].http;
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "https://pgves-test.myshopify.com/admin/api/2026-04/graphql.json");
  EXPECT_EQ(header(r, "X-Shopify-Access-Token"), "shpat_pgves_test");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  const std::string key = shopify_key(r);
  EXPECT_EQ(key.size(), 46u);
  EXPECT_EQ(key.rfind("pgves-", 0), 0u);
  EXPECT_EQ(r.body,
            std::string(R"({"query":")") + kMutation +
                R"(","variables":{"input":{"name":"available","quantities":[)"
                R"({"changeFromQuantity":5,"inventoryItemId":"gid://shopify/InventoryItem/11",)"
                R"("locationId":"gid://shopify/Location/1","quantity":7},)"
                R"({"changeFromQuantity":null,"inventoryItemId":"gid://shopify/InventoryItem/12",)"
                R"("locationId":"gid://shopify/Location/2","quantity":0}],"reason":"correction",)"
                R"("referenceDocumentUri":"pgves://store/)" +
                store + R"("},"key":")" + key + R"("}})");
}

TEST(ShopifyAdapter, TheIdempotencyKeyFollowsTheInputNotTheClock) {
  const core::Adapter &a = adapter("shopify");
  const Dest d = shopify_dest();
  const json::Value ref = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})");
  auto key = [&](std::int64_t id, std::int64_t quantity, std::optional<std::int64_t> known,
                 std::int64_t now, int attempt = 1) {
    const std::vector<core::ListingFacts> l = {listing(ref, quantity, known)};
    return shopify_key(a.build_requests(d.endpoint(), {row(id, l, attempt)}, now).at(0).http);
  };
  const std::string first = key(41, 7, 5, now_ms);
  EXPECT_EQ(key(41, 7, 5, now_ms + 60000, 2), first);  // a retry later: the same call
  EXPECT_NE(key(41, 8, 5, now_ms), first);             // another count
  EXPECT_NE(key(41, 7, 6, now_ms), first);             // another changeFromQuantity
  EXPECT_NE(key(41, 7, std::nullopt, now_ms), first);  // unknown: null
  EXPECT_NE(key(43, 7, 5, now_ms), first);             // another row
}

TEST(ShopifyAdapter, UsesTheRenewedTokenAndSplitsCallsAtTheCapAndOnRepeats) {
  const core::Adapter &a = adapter("shopify");
  Dest d = shopify_dest();
  d.token = "shpat_renewed";
  const json::Value ref = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})");
  const std::vector<core::ListingFacts> l = {listing(ref, 1)};
  // The same item and location twice: two calls (Shopify refuses a repeat).
  auto requests = a.build_requests(d.endpoint(), {row(1, l), row(2, l)}, now_ms);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0}));
  EXPECT_EQ(requests[1].rows, (std::vector<std::size_t>{1}));
  EXPECT_EQ(header(requests[0].http, "X-Shopify-Access-Token"), "shpat_renewed");

  std::vector<json::Value> refs;
  refs.reserve(251);
  for (int i = 0; i < 251; ++i)
    refs.push_back(js(R"({"inventory_item_id":"gid://shopify/InventoryItem/)" +
                      std::to_string(1000 + i) + "\"}"));
  std::vector<std::vector<core::ListingFacts>> listings;
  listings.reserve(251);
  std::vector<core::OutboxRow> rows;
  for (int i = 0; i < 251; ++i) {
    listings.push_back({listing(refs[i], i)});
    rows.push_back(row(i + 1, listings.back()));
  }
  requests = a.build_requests(d.endpoint(), rows, now_ms);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rows.size(), 250u);
  EXPECT_EQ(requests[1].rows, (std::vector<std::size_t>{250}));
}

TEST(ShopifyAdapter, RefusesListingsWithoutALocation) {
  const core::Adapter &a = adapter("shopify");
  Dest d = shopify_dest();
  d.options = js(std::string(R"({"store_id":")") + store + "\"}");
  const json::Value ref = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})");
  const std::vector<core::ListingFacts> l = {listing(ref, 1)};
  EXPECT_EQ(error_code([&] { a.build_requests(d.endpoint(), {row(1, l)}, now_ms); }),
            "invalid_listing");
}

TEST(ShopifyAdapter, ClassifiesEachRowByItsWorstLine) {
  const core::Adapter &a = adapter("shopify");
  const Dest d = shopify_dest();
  const json::Value r1 = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})");
  const json::Value r2 = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/12"})");
  const json::Value r3 = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/13"})");
  const std::vector<core::ListingFacts> one = {listing(r1, 1)};
  const std::vector<core::ListingFacts> two = {listing(r2, 2, 0), listing(r3, 3, 1)};
  const std::vector<core::OutboxRow> rows = {row(1, one), row(2, two)};
  auto classify = [&](const core::Answer &answer) {
    return a.classify_rows(d.endpoint(), answer, rows, now_ms);
  };
  const std::string ok =
      R"({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":{"id":"g"},"userErrors":[]}}})";
  for (const auto &v : classify(answer(200, ok))) EXPECT_EQ(v.verdict, Verdict::success);

  // Line 2 (the second row's second listing) is stale: that row is stale,
  // the first is retried (nothing of the call was applied).
  const std::string stale_line2 =
      R"({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":null,"userErrors":[)"
      R"({"code":"CHANGE_FROM_QUANTITY_STALE","field":["input","quantities","2","changeFromQuantity"],)"
      R"("message":"The changeFromQuantity value does not match persisted value."}]}}})";
  auto v = classify(answer(200, stale_line2));
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].verdict, Verdict::retry);
  EXPECT_EQ(v[1].verdict, Verdict::stale);
  EXPECT_NE(v[1].reason.find("CHANGE_FROM_QUANTITY_STALE"), std::string::npos);

  // A permanent line beats a stale one of the same row.
  const std::string mixed =
      R"({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":null,"userErrors":[)"
      R"({"code":"CHANGE_FROM_QUANTITY_STALE","field":["input","quantities","1","changeFromQuantity"],"message":"m"},)"
      R"({"code":"INVALID_QUANTITY_NEGATIVE","field":["input","quantities","2","quantity"],"message":"m"}]}}})";
  v = classify(answer(200, mixed));
  EXPECT_EQ(v[0].verdict, Verdict::retry);
  EXPECT_EQ(v[1].verdict, Verdict::permanent);

  const std::string throttled =
      R"({"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],"extensions":{"cost":)"
      R"({"requestedQueryCost":10,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000,)"
      R"("currentlyAvailable":4,"restoreRate":50}}}})";
  v = classify(answer(200, throttled));
  EXPECT_EQ(v[0].verdict, Verdict::retry);
  EXPECT_EQ(v[0].retry_after_ms, 120);
  EXPECT_EQ(v[1].verdict, Verdict::retry);
  for (const auto &x : classify(answer(401, R"({"errors":"[API] Invalid API key"})")))
    EXPECT_EQ(x.verdict, Verdict::reauthenticate);
  for (const auto &x : classify(answer(503, "", "7"))) EXPECT_EQ(x.retry_after_ms, 7000);
  for (const auto &x : classify(no_answer())) EXPECT_EQ(x.verdict, Verdict::retry);
}

TEST(ShopifyAdapter, ReadsAvailableQuantities) {
  const core::Adapter &a = adapter("shopify");
  const Dest d = shopify_dest();
  const json::Value r1 = js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})");
  const json::Value r2 = js(
      R"({"inventory_item_id":"gid://shopify/InventoryItem/12","location_id":"gid://shopify/Location/2"})");
  const std::vector<core::ListingFacts> listings = {listing(r1, 0), listing(r2, 0)};
  const auto reads = a.build_reads(d.endpoint(), listings, now_ms);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].rows, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(reads[0].http.url, "https://pgves-test.myshopify.com/admin/api/2026-04/graphql.json");
  EXPECT_EQ(header(reads[0].http, "X-Shopify-Access-Token"), "shpat_pgves_test");
  const json::Value body = js(reads[0].http.body);
  EXPECT_EQ(jcs_text(*body.find("variables")),
            R"({"i0":"gid://shopify/InventoryItem/11","i1":"gid://shopify/InventoryItem/12",)"
            R"("l0":"gid://shopify/Location/1","l1":"gid://shopify/Location/2"})");

  const std::vector<const core::ListingFacts *> which = {&listings[0], &listings[1]};
  const auto got = a.parse_reads(
      d.endpoint(),
      answer(
          200,
          R"({"data":{"q0":{"id":"gid://shopify/InventoryItem/11","inventoryLevel":{"quantities":)"
          R"([{"name":"available","quantity":9}]}},"q1":null}})"),
      which, now_ms);
  EXPECT_EQ(got.verdict.verdict, Verdict::success);
  EXPECT_EQ(got.quantities, (std::vector<std::optional<std::int64_t>>{9, std::nullopt}));
  EXPECT_EQ(a.parse_reads(d.endpoint(), answer(401, "{}"), which, now_ms).verdict.verdict,
            Verdict::reauthenticate);
  EXPECT_EQ(a.parse_reads(d.endpoint(),
                          answer(200, R"({"errors":[{"extensions":{"code":"THROTTLED"}}]})"), which,
                          now_ms)
                .verdict.verdict,
            Verdict::retry);
}

namespace {

// The inventory_levels/update body test/mock/platforms.py sends, and its signature.
const char *kShopifyLevelBody =
    R"({"inventory_item_id":11,"location_id":1,"available":42,"updated_at":"2026-11-30T10:00:00-05:00",)"
    R"("admin_graphql_api_id":"gid://shopify/InventoryLevel/1?inventory_item_id=11"})";
const char *kShopifyLevelSignature = "5fYF2DBq4Mj7Kf6v3wdDKpaFleVAzYiNWLlriEa3iHg=";

}  // namespace

TEST(ShopifyAdapter, VerifiesWebhooks) {
  const core::Adapter &a = adapter("shopify");
  const auto good = inbound({{"x-shopify-hmac-sha256", kShopifyLevelSignature}}, kShopifyLevelBody);
  EXPECT_TRUE(a.verify_inbound("shopify-webhook-secret", good, now_ms, 300).valid);
  std::string tampered = kShopifyLevelBody;
  tampered.replace(tampered.find("42"), 2, "43");
  const auto bad = inbound({{"X-Shopify-Hmac-Sha256", kShopifyLevelSignature}}, tampered);
  EXPECT_FALSE(a.verify_inbound("shopify-webhook-secret", bad, now_ms, 300).valid);
  EXPECT_FALSE(a.verify_inbound("another-secret", good, now_ms, 300).valid);
  EXPECT_FALSE(a.verify_inbound("", good, now_ms, 300).valid);
  const auto unsigned_ = inbound({}, kShopifyLevelBody);
  const auto check = a.verify_inbound("shopify-webhook-secret", unsigned_, now_ms, 300);
  EXPECT_FALSE(check.valid);
  EXPECT_NE(check.reason.find("X-Shopify-Hmac-Sha256"), std::string::npos);
}

TEST(ShopifyAdapter, TurnsLevelUpdatesIntoStockReportsAndOrdersIntoNotices) {
  const core::Adapter &a = adapter("shopify");
  const json::Value options = js(R"({"location_id":"gid://shopify/Location/1"})");
  const auto level = a.parse_inbound(inbound({{"X-Shopify-Topic", "inventory_levels/update"},
                                              {"X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37"}},
                                             kShopifyLevelBody),
                                     options);
  EXPECT_EQ(level.delivery_id, "b54557e4-bdd9-4b37");
  EXPECT_EQ(level.topic, "inventory_levels/update");
  ASSERT_EQ(level.stock.size(), 1u);
  EXPECT_EQ(
      level.stock[0].platform_key,
      a.listing_key(js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})"), options));
  EXPECT_EQ(level.stock[0].quantity, 42);
  EXPECT_EQ(level.stock[0].observed_at_unix_ms, 1796050800000);
  EXPECT_TRUE(level.orders.empty());

  // Without admin_graphql_api_id the numeric ids serve; untracked (null) is no report.
  const auto untracked =
      a.parse_inbound(inbound({{"X-Shopify-Topic", "inventory_levels/update"}},
                              R"({"inventory_item_id":11,"location_id":1,"available":null})"),
                      options);
  EXPECT_TRUE(untracked.stock.empty());
  EXPECT_EQ(untracked.delivery_id, "");

  const std::string order =
      R"({"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508",)"
      R"("financial_status":"paid","cancelled_at":"2026-11-30T10:00:00-05:00"})";
  const auto cancelled = a.parse_inbound(
      inbound({{"X-Shopify-Topic", "orders/cancelled"}, {"X-Shopify-Webhook-Id", "w-1"}}, order),
      options);
  ASSERT_EQ(cancelled.orders.size(), 1u);
  EXPECT_EQ(cancelled.orders[0].order_id, "820982911946154508");  // exact, beyond 2^53
  EXPECT_EQ(cancelled.orders[0].status, "cancelled");
  EXPECT_EQ(cancelled.orders[0].payload, order);
  EXPECT_EQ(a.parse_inbound(inbound({{"X-Shopify-Topic", "orders/create"}}, R"({"id":450789469})"),
                            options)
                .orders.at(0)
                .status,
            "created");
  const auto other =
      a.parse_inbound(inbound({{"X-Shopify-Topic", "products/update"}}, R"({"id":1})"), options);
  EXPECT_TRUE(other.stock.empty());
  EXPECT_TRUE(other.orders.empty());

  EXPECT_EQ(error_code([&] { a.parse_inbound(inbound({}, kShopifyLevelBody), options); }),
            "invalid_message");
  EXPECT_EQ(error_code([&] {
              a.parse_inbound(inbound({{"X-Shopify-Topic", "orders/create"}}, "not json"), options);
            }),
            "invalid_message");
}

// --- tiktok_shop -------------------------------------------------------------------

namespace {

Dest tiktok_dest() {
  Dest d;
  d.url = "https://open-api.example.com";
  d.options = js(std::string(R"({"store_id":")") + store +
                 R"(","app_key":"tts_app_key","shop_cipher":"ROW_pgves_test","warehouse_id":"W1",)"
                 R"("auth_url":"https://auth.example.com"})");
  d.credentials = js(
      R"({"app_secret":"tts_app_secret","access_token":"tts_access_token_0","refresh_token":"tts_refresh_token"})");
  return d;
}

}  // namespace

TEST(TikTokAdapter, ValidatesTheMergedOptionSet) {
  const core::Adapter &a = adapter("tiktok_shop");
  const Dest d = tiktok_dest();
  EXPECT_TRUE(a.validate_options(merged_set(d)).empty());
  EXPECT_TRUE(a.validate_options(merged_set(d, R"(,"access_token":null)")).empty());
  option_error([&] { a.validate_options(merged_set(d, R"(,"app_key":null)")); }, "app_key");
  option_error([&] { a.validate_options(merged_set(d, R"(,"refresh_token":"")")); },
               "refresh_token");
  option_error([&] { a.validate_options(merged_set(d, R"(,"auth_url":"nope")")); }, "",
               "invalid_url");
  option_error([&] { a.validate_options(merged_set(d, R"(,"secret":"x")")); }, "secret");
}

TEST(TikTokAdapter, OneSignedUpdatePerProduct) {
  const core::Adapter &a = adapter("tiktok_shop");
  const Dest d = tiktok_dest();
  const json::Value s1 = js(R"({"product_id":"P1","sku_id":"S1"})");
  const json::Value s2 = js(R"({"product_id":"P2","sku_id":"S2","warehouse_id":"W9"})");
  const json::Value s3 = js(R"({"product_id":"P1","sku_id":"S3"})");
  const std::vector<core::ListingFacts> l0 = {listing(s1, 3)}, l1 = {listing(s2, 4)},
                                        l2 = {listing(s3, 0)};
  const auto requests =
      a.build_requests(d.endpoint(), {row(1, l0), row(2, l1), row(3, l2)}, now_ms);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(requests[1].rows, (std::vector<std::size_t>{1}));
  const core::HttpRequest &r = requests[0].http;
  EXPECT_EQ(r.method, "POST");
  // sign: computed independently (Python hmac) over app_secret + path +
  // app_key, shop_cipher, timestamp + body + app_secret.
  EXPECT_EQ(r.url,
            "https://open-api.example.com/product/202309/products/P1/inventory/update"
            "?app_key=tts_app_key&shop_cipher=ROW_pgves_test&timestamp=1764460800"
            "&sign=3f6f342667c6bc4614fd014fd0e824d4953bde2deb3997cfd6b9ebb23422fe32");
  EXPECT_EQ(header(r, "x-tts-access-token"), "tts_access_token_0");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(r.body, R"({"skus":[{"id":"S1","inventory":[{"quantity":3,"warehouse_id":"W1"}]},)"
                    R"({"id":"S3","inventory":[{"quantity":0,"warehouse_id":"W1"}]}]})");
  EXPECT_EQ(requests[1].http.body,
            R"({"skus":[{"id":"S2","inventory":[{"quantity":4,"warehouse_id":"W9"}]}]})");
}

TEST(TikTokAdapter, OneSkuInTwoWarehousesIsOneEntryWithTwoInventoryLines) {
  const core::Adapter &a = adapter("tiktok_shop");
  const Dest d = tiktok_dest();
  const json::Value w1 = js(R"({"product_id":"P1","sku_id":"S1"})");
  const json::Value w2 = js(R"({"product_id":"P1","sku_id":"S1","warehouse_id":"W2"})");
  const std::vector<core::ListingFacts> l = {listing(w1, 3), listing(w2, 5)};
  const auto requests = a.build_requests(d.endpoint(), {row(1, l)}, now_ms);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].http.body,
            R"({"skus":[{"id":"S1","inventory":[{"quantity":3,"warehouse_id":"W1"},)"
            R"({"quantity":5,"warehouse_id":"W2"}]}]})");
}

TEST(TikTokAdapter, UsesTheRefreshedTokenAndRefusesWhatOneRequestCannotCarry) {
  const core::Adapter &a = adapter("tiktok_shop");
  Dest d = tiktok_dest();
  d.token = "tts_access_token_7";
  const json::Value s1 = js(R"({"product_id":"P1","sku_id":"S1"})");
  const json::Value s2 = js(R"({"product_id":"P2","sku_id":"S2"})");
  const std::vector<core::ListingFacts> one = {listing(s1, 1)};
  EXPECT_EQ(header(a.build_requests(d.endpoint(), {row(1, one)}, now_ms).at(0).http,
                   "x-tts-access-token"),
            "tts_access_token_7");
  const std::vector<core::ListingFacts> two_products = {listing(s1, 1), listing(s2, 1)};
  EXPECT_EQ(error_code([&] { a.build_requests(d.endpoint(), {row(1, two_products)}, now_ms); }),
            "invalid_listing");
  // The same SKU and warehouse in two rows: two calls.
  EXPECT_EQ(a.build_requests(d.endpoint(), {row(1, one), row(2, one)}, now_ms).size(), 2u);
  d.token.clear();
  d.credentials = js(R"({"app_secret":"tts_app_secret","refresh_token":"tts_refresh_token"})");
  EXPECT_EQ(error_code([&] { a.build_requests(d.endpoint(), {row(1, one)}, now_ms); }),
            "no_access_token");
}

TEST(TikTokAdapter, ClassifiesByTheCodeTable) {
  const core::Adapter &a = adapter("tiktok_shop");
  const Dest d = tiktok_dest();
  const json::Value s1 = js(R"({"product_id":"P1","sku_id":"S1"})");
  const std::vector<core::ListingFacts> l = {listing(s1, 1)};
  const std::vector<core::OutboxRow> rows = {row(1, l), row(2, l)};
  struct Case {
    long status;
    const char *body;
    Verdict verdict;
  };
  const Case cases[] = {
      {200, R"({"code":0,"message":"Success","data":{}})", Verdict::success},
      {401, R"({"code":105002,"message":"Expired credentials."})", Verdict::reauthenticate},
      {401, R"({"code":105001,"message":"Invalid credentials."})", Verdict::reauthenticate},
      {401, R"({"code":106001,"message":"sign"})", Verdict::permanent},
      {429, R"({"code":36009004,"message":"Too many requests"})", Verdict::retry},
      {500, R"({"code":36009005,"message":"Internal error"})", Verdict::retry},
      {404, R"({"code":12052048,"message":"Product not found."})", Verdict::permanent},
  };
  for (const Case &c : cases) {
    const auto v = a.classify_rows(d.endpoint(), answer(c.status, c.body), rows, now_ms);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0].verdict, c.verdict) << c.body;
    EXPECT_EQ(v[1].verdict, c.verdict) << c.body;
  }
}

TEST(TikTokAdapter, RefreshesTokensAndKeepsTheRotatedRefreshToken) {
  const core::Adapter &a = adapter("tiktok_shop");
  const Dest d = tiktok_dest();
  const auto request = a.token_request(d.endpoint());
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->method, "GET");
  EXPECT_EQ(request->url,
            "https://auth.example.com/api/v2/token/refresh?app_key=tts_app_key&app_secret="
            "tts_app_secret&refresh_token=tts_refresh_token&grant_type=refresh_token");
  const auto token = a.parse_token(
      answer(200, R"({"code":0,"message":"success","data":{"access_token":"tts_access_token_1",)"
                  R"("access_token_expire_in":1765065600,"refresh_token":"tts_refresh_token_2",)"
                  R"("refresh_token_expire_in":1796601600}})"),
      now_ms);
  EXPECT_EQ(token.verdict.verdict, Verdict::success);
  EXPECT_EQ(token.token.access_token, "tts_access_token_1");
  EXPECT_EQ(token.token.expires_at_unix_ms, 1765065600000);
  EXPECT_EQ(token.token.refresh_token, "tts_refresh_token_2");
  EXPECT_EQ(
      a.parse_token(answer(400, R"({"code":36004004,"message":"Invalid refresh_token."})"), now_ms)
          .verdict.verdict,
      Verdict::permanent);
  EXPECT_EQ(a.parse_token(no_answer(), now_ms).verdict.verdict, Verdict::retry);
}

TEST(TikTokAdapter, ReadsCountsByInventorySearch) {
  const core::Adapter &a = adapter("tiktok_shop");
  const Dest d = tiktok_dest();
  const json::Value s1 = js(R"({"product_id":"P1","sku_id":"S1"})");
  const json::Value s2 = js(R"({"product_id":"P2","sku_id":"S2","warehouse_id":"W9"})");
  const json::Value s3 = js(R"({"product_id":"P1","sku_id":"S3"})");
  const std::vector<core::ListingFacts> listings = {listing(s1, 0), listing(s2, 0), listing(s3, 0)};
  const auto reads = a.build_reads(d.endpoint(), listings, now_ms);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].rows, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(reads[0].http.body, R"({"product_ids":["P1","P2"]})");
  EXPECT_EQ(
      reads[0].http.url.rfind(
          "https://open-api.example.com/product/202309/inventory/search?app_key=tts_app_key&", 0),
      0u);
  const std::vector<const core::ListingFacts *> which = {&listings[0], &listings[1], &listings[2]};
  const auto got = a.parse_reads(
      d.endpoint(),
      answer(
          200,
          R"({"code":0,"message":"Success","data":{"inventory":[)"
          R"({"product_id":"P1","skus":[{"id":"S1","warehouse_inventory":[)"
          R"({"warehouse_id":"W1","available_quantity":6},{"warehouse_id":"W2","available_quantity":1}]}]},)"
          R"({"product_id":"P2","skus":[{"id":"S2","warehouse_inventory":[)"
          R"({"warehouse_id":"W9","available_quantity":2}]}]}]}})"),
      which, now_ms);
  EXPECT_EQ(got.verdict.verdict, Verdict::success);
  EXPECT_EQ(got.quantities, (std::vector<std::optional<std::int64_t>>{6, 2, std::nullopt}));
  EXPECT_EQ(
      a.parse_reads(d.endpoint(), answer(401, R"({"code":105002,"message":"x"})"), which, now_ms)
          .verdict.verdict,
      Verdict::reauthenticate);
}

namespace {

const char *kTikTokOrderBody =
    R"({"type":1,"tts_notification_id":"7327112393057371910","shop_id":"7494049642642441621",)"
    R"("timestamp":1764460700,"data":{"order_id":"576461413038785752","order_status":)"
    R"("AWAITING_SHIPMENT","update_time":1764460690}})";
const char *kTikTokOrderSignature =
    "218581ffadcddbd0821f3597ee1e254bafbf1d7247874b6028d68ff50bc73dda";

}  // namespace

TEST(TikTokAdapter, VerifiesWebhooksWithAppKeyAndSecret) {
  const core::Adapter &a = adapter("tiktok_shop");
  const Dest d = tiktok_dest();
  const std::string key = a.inbound_key(merged_set(d));
  EXPECT_EQ(key, "tts_app_key\ntts_app_secret");
  EXPECT_EQ(a.inbound_key(js(R"({"app_key":"k"})")), "");
  const auto good = inbound({{"Authorization", kTikTokOrderSignature}}, kTikTokOrderBody);
  EXPECT_TRUE(a.verify_inbound(key, good, now_ms, 300).valid);
  std::string upper = kTikTokOrderSignature;
  for (char &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(
      a.verify_inbound(key, inbound({{"authorization", upper}}, kTikTokOrderBody), now_ms, 300)
          .valid);
  std::string tampered = kTikTokOrderBody;
  tampered.replace(tampered.find("AWAITING_SHIPMENT"), 17, "CANCELLED");
  EXPECT_FALSE(a.verify_inbound(key, inbound({{"Authorization", kTikTokOrderSignature}}, tampered),
                                now_ms, 300)
                   .valid);
  EXPECT_FALSE(a.verify_inbound("other_key\ntts_app_secret", good, now_ms, 300).valid);
  EXPECT_FALSE(a.verify_inbound("tts_app_secret", good, now_ms, 300).valid);
  EXPECT_FALSE(a.verify_inbound("", good, now_ms, 300).valid);
  EXPECT_FALSE(a.verify_inbound(key, inbound({}, kTikTokOrderBody), now_ms, 300).valid);
}

TEST(TikTokAdapter, TurnsOrderStatusChangesIntoNotices) {
  const core::Adapter &a = adapter("tiktok_shop");
  const json::Value options = js(R"({"warehouse_id":"W1"})");
  const auto content = a.parse_inbound(inbound({}, kTikTokOrderBody), options);
  EXPECT_EQ(content.delivery_id, "7327112393057371910");
  EXPECT_EQ(content.topic, "ORDER_STATUS_CHANGE");
  ASSERT_EQ(content.orders.size(), 1u);
  EXPECT_EQ(content.orders[0].order_id, "576461413038785752");
  EXPECT_EQ(content.orders[0].status, "awaiting_shipment");
  EXPECT_EQ(content.orders[0].payload,
            R"({"order_id":"576461413038785752","order_status":"AWAITING_SHIPMENT",)"
            R"("update_time":1764460690})");
  EXPECT_TRUE(content.stock.empty());
  const auto other = a.parse_inbound(
      inbound({}, R"({"type":6,"tts_notification_id":"n2","data":{"product_id":"P1"}})"), options);
  EXPECT_EQ(other.topic, "type 6");
  EXPECT_TRUE(other.orders.empty());
  EXPECT_EQ(error_code([&] { a.parse_inbound(inbound({}, R"({"type":1,"data":{}})"), options); }),
            "invalid_message");
  EXPECT_EQ(error_code([&] { a.parse_inbound(inbound({}, "[]"), options); }), "invalid_message");
  EXPECT_EQ(a.listing_key(js(R"({"product_id":"P1","sku_id":"S1"})"), options), "S1@W1");
  EXPECT_EQ(a.listing_key(js(R"({"product_id":"P1","sku_id":"S1","warehouse_id":"W2"})"), options),
            "S1@W2");
  EXPECT_EQ(a.listing_key(js(R"({"product_id":"P1","sku_id":"S1"})"), js("{}")), "S1@");
  option_error([&] { a.validate_listing(js(R"({"product_id":"P1"})"), options); }, "sku_id");
}

// --- amazon_sp ---------------------------------------------------------------------

namespace {

Dest amazon_dest() {
  Dest d;
  d.url = "https://sellingpartnerapi-na.example.com";
  d.options = js(
      std::string(R"({"store_id":")") + store +
      R"(","seller_id":"A1PGVESTEST","marketplace_ids":["ATVPDKIKX0DER","A2EUQ1WTGCTBG2"],)"
      R"("client_id":"amzn1.application-oa2-client.pgvestest","lwa_url":"https://lwa.example.com/auth/o2/token"})");
  d.credentials =
      js(R"({"client_secret":"amzn-client-secret","refresh_token":"Atzr|pgves-refresh-token"})");
  d.token = "Atza|pgves-access-1";
  return d;
}

}  // namespace

TEST(AmazonAdapter, ValidatesTheMergedOptionSet) {
  const core::Adapter &a = adapter("amazon_sp");
  const Dest d = amazon_dest();
  EXPECT_TRUE(a.validate_options(merged_set(d)).empty());
  option_error([&] { a.validate_options(merged_set(d, R"(,"marketplace_ids":"ATVPDKIKX0DER")")); },
               "marketplace_ids");
  option_error([&] { a.validate_options(merged_set(d, R"(,"client_secret":null)")); },
               "client_secret");
  option_error([&] { a.validate_options(merged_set(d, R"(,"headers":{"a":"b"})")); }, "headers");
  EXPECT_EQ(a.inbound_key(merged_set(d)), "");
}

TEST(AmazonAdapter, PatchesOneSkuPerRequest) {
  const core::Adapter &a = adapter("amazon_sp");
  const Dest d = amazon_dest();
  const json::Value k1 = js(R"({"sku":"MUG/RED 1"})");
  const json::Value k2 = js(R"({"sku":"TEE-2","product_type":"SHIRT"})");
  const std::vector<core::ListingFacts> l1 = {listing(k1, 12, 3)}, l2 = {listing(k2, 0)};
  const auto requests = a.build_requests(d.endpoint(), {row(1, l1), row(2, l2)}, now_ms);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0}));
  EXPECT_EQ(requests[1].rows, (std::vector<std::size_t>{1}));
  const core::HttpRequest &r = requests[0].http;
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(r.url,
            "https://sellingpartnerapi-na.example.com/listings/2021-08-01/items/A1PGVESTEST/"
            "MUG%2FRED%201?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2");
  EXPECT_EQ(header(r, "x-amz-access-token"), "Atza|pgves-access-1");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(
      r.body,
      R"({"patches":[{"op":"replace","path":"/attributes/fulfillment_availability",)"
      R"("value":[{"fulfillment_channel_code":"DEFAULT","quantity":12}]}],"productType":"PRODUCT"})");
  EXPECT_NE(requests[1].http.body.find(R"("productType":"SHIRT")"), std::string::npos);
}

TEST(AmazonAdapter, NeedsAnAccessTokenAndOneListingPerRow) {
  const core::Adapter &a = adapter("amazon_sp");
  Dest d = amazon_dest();
  const json::Value k1 = js(R"({"sku":"A"})"), k2 = js(R"({"sku":"B"})");
  const std::vector<core::ListingFacts> two = {listing(k1, 1), listing(k2, 1)};
  EXPECT_EQ(error_code([&] { a.build_requests(d.endpoint(), {row(1, two)}, now_ms); }),
            "invalid_listing");
  d.token.clear();
  const std::vector<core::ListingFacts> one = {listing(k1, 1)};
  EXPECT_EQ(error_code([&] { a.build_requests(d.endpoint(), {row(1, one)}, now_ms); }),
            "no_access_token");
}

TEST(AmazonAdapter, ClassifiesSubmissionsAndHonoursTheRateLimitHeader) {
  const core::Adapter &a = adapter("amazon_sp");
  const Dest d = amazon_dest();
  const json::Value k = js(R"({"sku":"A"})");
  const std::vector<core::ListingFacts> l = {listing(k, 1)};
  const std::vector<core::OutboxRow> rows = {row(1, l)};
  auto one = [&](const core::Answer &ans) {
    return a.classify_rows(d.endpoint(), ans, rows, now_ms).at(0);
  };
  EXPECT_EQ(
      one(answer(200, R"({"sku":"A","status":"ACCEPTED","submissionId":"x","issues":[]})")).verdict,
      Verdict::success);
  const auto invalid = one(answer(
      200,
      R"({"sku":"A","status":"INVALID","issues":[{"code":"4000001","message":"quantity must be a non-negative integer.","severity":"ERROR"}]})"));
  EXPECT_EQ(invalid.verdict, Verdict::permanent);
  EXPECT_NE(invalid.reason.find("4000001"), std::string::npos);
  const std::string quota = R"({"errors":[{"code":"QuotaExceeded","message":"m","details":""}]})";
  const auto throttled = one(with_rate_limit(answer(429, quota), "5.0"));
  EXPECT_EQ(throttled.verdict, Verdict::retry);
  EXPECT_EQ(throttled.retry_after_ms, 200);
  EXPECT_EQ(one(with_rate_limit(answer(429, quota, "3"), "5.0")).retry_after_ms, 3000);
  EXPECT_EQ(one(with_rate_limit(answer(429, quota), "0.5")).retry_after_ms, 2000);
  EXPECT_EQ(one(answer(403, R"({"errors":[{"code":"Unauthorized","message":"expired"}]})")).verdict,
            Verdict::reauthenticate);
  EXPECT_EQ(one(answer(500, R"({"errors":[{"code":"InternalFailure"}]})")).verdict, Verdict::retry);
  EXPECT_EQ(one(answer(400, R"({"errors":[{"code":"InvalidInput"}]})")).verdict,
            Verdict::permanent);
}

TEST(AmazonAdapter, ObtainsTokensFromLoginWithAmazon) {
  const core::Adapter &a = adapter("amazon_sp");
  const Dest d = amazon_dest();
  const auto request = a.token_request(d.endpoint());
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->url, "https://lwa.example.com/auth/o2/token");
  EXPECT_EQ(header(*request, "Content-Type"), "application/x-www-form-urlencoded;charset=UTF-8");
  EXPECT_EQ(request->body,
            "grant_type=refresh_token&refresh_token=Atzr%7Cpgves-refresh-token&client_id=amzn1."
            "application-oa2-client.pgvestest&client_secret=amzn-client-secret");
  const auto token = a.parse_token(
      answer(200,
             R"({"access_token":"Atza|pgves-access-2","token_type":"bearer","expires_in":3600})"),
      now_ms);
  EXPECT_EQ(token.verdict.verdict, Verdict::success);
  EXPECT_EQ(token.token.access_token, "Atza|pgves-access-2");
  EXPECT_EQ(token.token.expires_at_unix_ms, now_ms + 3600000);
  EXPECT_EQ(a.parse_token(answer(400, R"({"error":"invalid_grant"})"), now_ms).verdict.verdict,
            Verdict::permanent);
  EXPECT_EQ(a.parse_token(answer(503, "", "2"), now_ms).verdict.verdict, Verdict::retry);
}

TEST(AmazonAdapter, ReadsTheFulfillmentAvailability) {
  const core::Adapter &a = adapter("amazon_sp");
  const Dest d = amazon_dest();
  const json::Value k1 = js(R"({"sku":"A"})"), k2 = js(R"({"sku":"B"})");
  const std::vector<core::ListingFacts> listings = {listing(k1, 0), listing(k2, 0)};
  const auto reads = a.build_reads(d.endpoint(), listings, now_ms);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[1].rows, (std::vector<std::size_t>{1}));
  EXPECT_EQ(reads[0].http.method, "GET");
  EXPECT_EQ(reads[0].http.url,
            "https://sellingpartnerapi-na.example.com/listings/2021-08-01/items/A1PGVESTEST/A"
            "?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2&includedData=fulfillmentAvailability");
  EXPECT_EQ(header(reads[0].http, "x-amz-access-token"), "Atza|pgves-access-1");
  const std::vector<const core::ListingFacts *> which = {&listings[0]};
  const auto got = a.parse_reads(
      d.endpoint(),
      answer(
          200,
          R"({"sku":"A","fulfillmentAvailability":[{"fulfillmentChannelCode":"DEFAULT","quantity":4}]})"),
      which, now_ms);
  EXPECT_EQ(got.verdict.verdict, Verdict::success);
  EXPECT_EQ(got.quantities, (std::vector<std::optional<std::int64_t>>{4}));
  const auto missing = a.parse_reads(d.endpoint(), answer(404, R"({"errors":[]})"), which, now_ms);
  EXPECT_EQ(missing.verdict.verdict, Verdict::success);
  EXPECT_EQ(missing.quantities, (std::vector<std::optional<std::int64_t>>{std::nullopt}));
  EXPECT_EQ(a.parse_reads(d.endpoint(), answer(403, "{}"), which, now_ms).verdict.verdict,
            Verdict::reauthenticate);
}

TEST(AmazonAdapter, HasNoWebhooksAndKeysListingsBySku) {
  const core::Adapter &a = adapter("amazon_sp");
  EXPECT_EQ(error_code([&] { a.verify_inbound("k", inbound({}, "{}"), now_ms, 300); }),
            "unsupported");
  EXPECT_EQ(a.listing_key(js(R"({"sku":"MUG-1","product_type":"MUG"})"), js("{}")), "MUG-1");
  option_error([&] { a.validate_listing(js(R"({"asin":"B0"})"), js("{}")); }, "sku");
}

// --- meta_catalog ------------------------------------------------------------------

namespace {

Dest meta_dest() {
  Dest d;
  d.url = "https://graph.example.com";
  d.options = js(std::string(R"({"store_id":")") + store + R"(","catalog_id":"880000000000001"})");
  d.credentials = js(R"({"access_token":"meta-access-token","app_secret":"meta-app-secret"})");
  return d;
}

}  // namespace

TEST(MetaAdapter, ValidatesTheMergedOptionSet) {
  const core::Adapter &a = adapter("meta_catalog");
  const Dest d = meta_dest();
  EXPECT_TRUE(a.validate_options(merged_set(d)).empty());
  option_error([&] { a.validate_options(merged_set(d, R"(,"catalog_id":"cat-1")")); },
               "catalog_id");
  option_error([&] { a.validate_options(merged_set(d, R"(,"api_version":"23")")); }, "api_version");
  option_error([&] { a.validate_options(merged_set(d, R"(,"access_token":null)")); },
               "access_token");
  EXPECT_EQ(a.inbound_key(merged_set(d)), "meta-app-secret");
  EXPECT_FALSE(a.token_request(d.endpoint()).has_value());
}

TEST(MetaAdapter, SendsEveryRowInOneItemsBatch) {
  const core::Adapter &a = adapter("meta_catalog");
  const Dest d = meta_dest();
  const json::Value m1 = js(R"({"retailer_id":"sku-1"})"), m2 = js(R"({"retailer_id":"sku-2"})");
  const std::vector<core::ListingFacts> l1 = {listing(m1, 9)}, l2 = {listing(m2, 0)};
  auto requests = a.build_requests(d.endpoint(), {row(1, l1), row(2, l2)}, now_ms);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].rows, (std::vector<std::size_t>{0, 1}));
  const core::HttpRequest &r = requests[0].http;
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "https://graph.example.com/v23.0/880000000000001/items_batch");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(r.body,
            R"({"access_token":"meta-access-token","item_type":"PRODUCT_ITEM","requests":[)"
            R"({"data":{"id":"sku-1","quantity_to_sell_on_facebook":9},"method":"UPDATE"},)"
            R"({"data":{"id":"sku-2","quantity_to_sell_on_facebook":0},"method":"UPDATE"}]})");
  // A retailer id once per batch; a renewed token wins.
  Dest renewed = meta_dest();
  renewed.token = "meta-renewed";
  requests = a.build_requests(renewed.endpoint(), {row(1, l1), row(2, l1)}, now_ms);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].http.body.find(R"("access_token":"meta-renewed")"), std::string::npos);
}

TEST(MetaAdapter, ClassifiesBatchAnswers) {
  const core::Adapter &a = adapter("meta_catalog");
  const Dest d = meta_dest();
  const json::Value m1 = js(R"({"retailer_id":"sku-1"})");
  const std::vector<core::ListingFacts> l = {listing(m1, 1)};
  const std::vector<core::OutboxRow> rows = {row(1, l), row(2, l)};
  auto all = [&](const core::Answer &ans) {
    const auto v = a.classify_rows(d.endpoint(), ans, rows, now_ms);
    EXPECT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0].verdict, v[1].verdict);
    return v[0];
  };
  EXPECT_EQ(all(answer(200, R"({"handles":["AcPgVes000000000001"]})")).verdict, Verdict::success);
  // An accepted batch names its handle for the status check.
  EXPECT_EQ(all(answer(200, R"({"handles":["AcPgVes000000000001"]})")).follow_up,
            "AcPgVes000000000001");
  EXPECT_EQ(all(answer(200, R"({"handles":[]})")).verdict, Verdict::permanent);
  EXPECT_TRUE(all(answer(200, R"({"handles":[]})")).follow_up.empty());
  EXPECT_EQ(
      all(answer(400, R"({"error":{"message":"(#4) limit","type":"OAuthException","code":4}})"))
          .verdict,
      Verdict::retry);
  EXPECT_EQ(
      all(answer(400, R"({"error":{"message":"expired","code":190,"error_subcode":463}})")).verdict,
      Verdict::reauthenticate);
  EXPECT_EQ(all(answer(400, R"({"error":{"message":"bad","code":100}})")).verdict,
            Verdict::permanent);
  EXPECT_EQ(all(no_answer()).verdict, Verdict::retry);
}

TEST(MetaAdapter, FollowsUpAnAcceptedBatch) {
  const core::Adapter &a = adapter("meta_catalog");
  const Dest d = meta_dest();
  const core::HttpRequest r = a.follow_up_request(d.endpoint(), "AcPgVes000000000001");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url,
            "https://graph.example.com/v23.0/880000000000001/check_batch_request_status"
            "?handle=AcPgVes000000000001");
  EXPECT_EQ(header(r, "Authorization"), "Bearer meta-access-token");
  const std::vector<std::string> keys = {"sku-1", "sku-2"};
  core::FollowUpAnswer f = a.classify_follow_up(
      d.endpoint(), answer(200, R"({"data":[{"handle":"h","status":"in_progress"}]})"), keys,
      now_ms);
  EXPECT_FALSE(f.finished);
  EXPECT_TRUE(f.lines.empty());
  f = a.classify_follow_up(
      d.endpoint(),
      answer(
          200,
          R"({"data":[{"handle":"h","status":"finished","errors":[{"id":"sku-2","message":"no"}]}]})"),
      keys, now_ms);
  EXPECT_TRUE(f.finished);
  ASSERT_EQ(f.lines.size(), 2u);
  EXPECT_EQ(f.lines[0].verdict, Verdict::success);
  EXPECT_EQ(f.lines[1].verdict, Verdict::permanent);
  EXPECT_EQ(f.lines[1].reason, "Meta refused the item update: no");
  // Kinds without handles refuse to follow up.
  EXPECT_THROW(adapter("shopify").follow_up_request(d.endpoint(), "h"), core::Error);
}

TEST(MetaAdapter, ReadsQuantitiesByRetailerId) {
  const core::Adapter &a = adapter("meta_catalog");
  const Dest d = meta_dest();
  const json::Value m1 = js(R"({"retailer_id":"sku-1"})"), m2 = js(R"({"retailer_id":"sku-2"})");
  const std::vector<core::ListingFacts> listings = {listing(m1, 0), listing(m2, 0)};
  const auto reads = a.build_reads(d.endpoint(), listings, now_ms);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].http.method, "GET");
  EXPECT_EQ(reads[0].http.url,
            "https://graph.example.com/v23.0/880000000000001/products?filter=%7B%22retailer_id%22%"
            "3A%7B%22is_any%22%3A%5B%22sku-1%22%2C%22sku-2%22%5D%7D%7D&fields=retailer_id%2C"
            "quantity_to_sell_on_facebook&limit=2");
  EXPECT_EQ(header(reads[0].http, "Authorization"), "Bearer meta-access-token");
  const std::vector<const core::ListingFacts *> which = {&listings[0], &listings[1]};
  const auto got = a.parse_reads(
      d.endpoint(),
      answer(
          200,
          R"({"data":[{"id":"900000000001","retailer_id":"sku-1","quantity_to_sell_on_facebook":9}]})"),
      which, now_ms);
  EXPECT_EQ(got.verdict.verdict, Verdict::success);
  EXPECT_EQ(got.quantities, (std::vector<std::optional<std::int64_t>>{9, std::nullopt}));
  EXPECT_EQ(a.parse_reads(d.endpoint(), answer(400, R"({"error":{"code":190}})"), which, now_ms)
                .verdict.verdict,
            Verdict::reauthenticate);
}

namespace {

const char *kMetaBody =
    R"({"object":"product_catalog","entry":[{"id":"880000000000001","time":1764460700,"changes":)"
    R"([{"field":"items","value":{"retailer_id":"sku-1","quantity_to_sell_on_facebook":9}}]}]})";
const char *kMetaSignature =
    "sha256=d87c25641bf6679dae650aedbef020dc7f4ea0937160edb67d8fefcf7ea26a7b";

}  // namespace

TEST(MetaAdapter, VerifiesAndReadsWebhooks) {
  const core::Adapter &a = adapter("meta_catalog");
  const auto good = inbound({{"X-Hub-Signature-256", kMetaSignature}}, kMetaBody);
  EXPECT_TRUE(a.verify_inbound("meta-app-secret", good, now_ms, 300).valid);
  std::string tampered = kMetaBody;
  tampered.replace(tampered.find(":9}"), 3, ":8}");
  EXPECT_FALSE(a.verify_inbound("meta-app-secret",
                                inbound({{"x-hub-signature-256", kMetaSignature}}, tampered),
                                now_ms, 300)
                   .valid);
  EXPECT_FALSE(a.verify_inbound("", good, now_ms, 300).valid);
  EXPECT_FALSE(a.verify_inbound("meta-app-secret", inbound({}, kMetaBody), now_ms, 300).valid);

  const auto content = a.parse_inbound(good, js("{}"));
  EXPECT_EQ(content.delivery_id,
            "a6c4824fb29bf0624065c256014ed0a2548500fa45384579dca1a3c757dd5b9d");
  EXPECT_EQ(content.topic, "product_catalog/items");
  ASSERT_EQ(content.stock.size(), 1u);
  EXPECT_EQ(content.stock[0].platform_key,
            a.listing_key(js(R"({"retailer_id":"sku-1"})"), js("{}")));
  EXPECT_EQ(content.stock[0].quantity, 9);
  EXPECT_EQ(content.stock[0].observed_at_unix_ms, 1764460700000);

  const auto order = a.parse_inbound(
      inbound(
          {},
          R"({"object":"page","entry":[{"id":"1","time":1764460700,"changes":[{"field":)"
          R"("commerce_orders","value":{"order_id":"64000841790004","event":"ORDER_CREATED"}}]}]})"),
      js("{}"));
  ASSERT_EQ(order.orders.size(), 1u);
  EXPECT_EQ(order.orders[0].order_id, "64000841790004");
  EXPECT_EQ(order.orders[0].status, "order_created");
  EXPECT_EQ(error_code([&] { a.parse_inbound(inbound({}, "nope"), js("{}")); }), "invalid_message");
}
