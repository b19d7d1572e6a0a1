// Shopify Admin GraphQL requests and answers, as test/mock/platforms.py
// (class Shopify) checks and gives them.
#include <gtest/gtest.h>

#include "core/platforms/shopify.hpp"
#include "platform_test_util.hpp"

namespace core = pgves::core;
namespace p = pgves::core::platforms;
using core::Verdict;
using namespace platform_test;

namespace {

std::string options_text(const std::string &extra = "") {
  return merged(std::string(R"({"tenant_id":")") + tenant + R"(","store_id":")" + store +
                    R"(","access_token":"shpat_pgves_test")" + "}",
                extra);
}

p::ShopifyOptions options() {
  return p::shopify_options(js(options_text(R"(,"location_id":"gid://shopify/Location/1")")));
}

std::vector<p::ShopifySkuUpdate> two_updates() {
  p::ShopifySkuUpdate a;
  a.quantity = 7;
  a.ref = {"gid://shopify/InventoryItem/11", ""};
  a.last_known = 5;
  a.idempotency_key = "row-1";
  p::ShopifySkuUpdate b;
  b.quantity = 0;
  b.ref = {"gid://shopify/InventoryItem/12", "gid://shopify/Location/2"};
  b.idempotency_key = "row-2";
  return {a, b};
}

const char *kMutation =
    "mutation PgVesSetAvailable($input: InventorySetQuantitiesInput!, $key: String!) "
    "{ inventorySetQuantities(input: $input) @idempotent(key: $key) "
    "{ inventoryAdjustmentGroup { id } userErrors { code field message } } }";

}  // namespace

TEST(ShopifyOptions, DefaultsAndRequiredOptions) {
  const auto o = p::shopify_options(js(options_text()));
  EXPECT_EQ(o.api_version, "2026-04");
  EXPECT_EQ(o.access_token, "shpat_pgves_test");
  EXPECT_EQ(o.location_id, "");
  EXPECT_EQ(o.store.store_id, store);
  const auto o2 = p::shopify_options(js(options_text(
      R"(,"api_version":"2026-07","location_id":"gid://shopify/Location/9","webhook_secret":"w")")));
  EXPECT_EQ(o2.api_version, "2026-07");
  EXPECT_EQ(o2.location_id, "gid://shopify/Location/9");
  EXPECT_EQ(o2.webhook_secret, "w");
}

TEST(ShopifyOptions, Refusals) {
  option_error([] { p::shopify_options(js(R"({"access_token":"x"})")); }, "tenant_id");
  option_error(
      [] {
        p::shopify_options(
            js(std::string(R"({"tenant_id":")") + tenant + R"(","store_id":")" + store + "\"}"));
      },
      "access_token is required");
  option_error([] { p::shopify_options(js(options_text(R"(,"api_version":"2025-10")"))); },
               "older than 2026-04");
  option_error([] { p::shopify_options(js(options_text(R"(,"api_version":"2026-4")"))); },
               "api_version must look like");
  option_error([] { p::shopify_options(js(options_text(R"(,"api_version":"2026-05")"))); },
               "api_version must look like");
  option_error([] { p::shopify_options(js(options_text(R"(,"api_version":"unstable")"))); },
               "api_version");
  option_error([] { p::shopify_options(js(options_text(R"(,"location_id":"1")"))); },
               "location_id must be a gid://shopify/Location/N");
  option_error([] { p::shopify_options(js(options_text(R"(,"access_token":7)"))); },
               "access_token must be a string");
}

TEST(ShopifyRef, ParsesAndRefuses) {
  const auto r = p::shopify_ref(js(R"({"inventory_item_id":"gid://shopify/InventoryItem/11"})"));
  EXPECT_EQ(r.inventory_item_id, "gid://shopify/InventoryItem/11");
  EXPECT_EQ(r.location_id, "");
  const auto r2 = p::shopify_ref(js(
      R"({"inventory_item_id":"gid://shopify/InventoryItem/11","location_id":"gid://shopify/Location/3"})"));
  EXPECT_EQ(r2.location_id, "gid://shopify/Location/3");
  option_error([] { p::shopify_ref(js(R"({})")); }, "inventory_item_id is required");
  option_error([] { p::shopify_ref(js(R"({"inventory_item_id":"11"})")); },
               "gid://shopify/InventoryItem/N");
  option_error(
      [] {
        p::shopify_ref(js(
            R"({"inventory_item_id":"gid://shopify/InventoryItem/1","location_id":"gid://shopify/Location/x"})"));
      },
      "location_id");
  option_error([] { p::shopify_ref(js("\"gid://shopify/InventoryItem/1\"")); }, "object");
}

TEST(ShopifySetQuantities, ExactRequest) {
  const auto o = options();
  const auto updates = two_updates();
  const std::string key = p::shopify_call_key(o, updates);
  const auto r = p::shopify_set_quantities(o, "http://127.0.0.1:40211/", updates);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "http://127.0.0.1:40211/admin/api/2026-04/graphql.json");
  EXPECT_EQ(header(r, "X-Shopify-Access-Token"), "shpat_pgves_test");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  // changeFromQuantity is always present: the last known count, or null.
  EXPECT_EQ(r.body,
            std::string(R"({"query":")") + kMutation +
                R"(","variables":{"input":{"name":"available","quantities":[)"
                R"({"changeFromQuantity":5,"inventoryItemId":"gid://shopify/InventoryItem/11",)"
                R"("locationId":"gid://shopify/Location/1","quantity":7},)"
                R"({"changeFromQuantity":null,"inventoryItemId":"gid://shopify/InventoryItem/12",)"
                R"("locationId":"gid://shopify/Location/2","quantity":0}],)"
                R"("reason":"correction","referenceDocumentUri":"pgves://store/)" +
                store + R"("},"key":")" + key + R"("}})");
}

TEST(ShopifySetQuantities, IdempotencyKeyIsStableAndFollowsTheInput) {
  const auto o = options();
  auto updates = two_updates();
  const std::string key = p::shopify_call_key(o, updates);
  ASSERT_EQ(key.size(), 6u + 40u);
  EXPECT_EQ(key.rfind("pgves-", 0), 0u);
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef", 6), std::string::npos);
  // A retry of the same call sends the same key and the same bytes.
  EXPECT_EQ(p::shopify_call_key(o, two_updates()), key);
  EXPECT_EQ(p::shopify_set_quantities(o, "http://h", updates).body,
            p::shopify_set_quantities(o, "http://h", two_updates()).body);
  // New input (a re-push after a stale answer, a new count): a new key.
  updates[0].last_known = 6;
  EXPECT_NE(p::shopify_call_key(o, updates), key);
  updates = two_updates();
  updates[1].quantity = 1;
  EXPECT_NE(p::shopify_call_key(o, updates), key);
  updates = two_updates();
  updates[0].idempotency_key = "row-3";
  EXPECT_NE(p::shopify_call_key(o, updates), key);
}

TEST(ShopifySetQuantities, RefusesAnUpdateWithoutLocation) {
  const auto o = p::shopify_options(js(options_text()));
  EXPECT_THROW(p::shopify_set_quantities(o, "http://h", two_updates()), core::Error);
  EXPECT_THROW(p::shopify_set_quantities(options(), "http://h", {}), core::Error);
}

TEST(ShopifyRead, ExactRequestAndParse) {
  const auto o = options();
  const auto r =
      p::shopify_read_quantities(o, "http://127.0.0.1:40211",
                                 {{"gid://shopify/InventoryItem/11", ""},
                                  {"gid://shopify/InventoryItem/12", "gid://shopify/Location/2"}});
  EXPECT_EQ(r.url, "http://127.0.0.1:40211/admin/api/2026-04/graphql.json");
  EXPECT_EQ(header(r, "X-Shopify-Access-Token"), "shpat_pgves_test");
  EXPECT_EQ(
      r.body,
      R"({"query":"query PgVesReadAvailable($i0: ID!, $l0: ID!, $i1: ID!, $l1: ID!) {)"
      R"( q0: inventoryItem(id: $i0) { inventoryLevel(locationId: $l0) { quantities(names: [\"available\"]) { name quantity } } })"
      R"( q1: inventoryItem(id: $i1) { inventoryLevel(locationId: $l1) { quantities(names: [\"available\"]) { name quantity } } } }",)"
      R"("variables":{"i0":"gid://shopify/InventoryItem/11","i1":"gid://shopify/InventoryItem/12",)"
      R"("l0":"gid://shopify/Location/1","l1":"gid://shopify/Location/2"}})");
  // The mock's fixed answer shape; an unknown item is null.
  const std::string body =
      R"({"data":{"q0":{"id":"gid://shopify/InventoryItem/11","inventoryLevel":{"id":"gid://shopify/InventoryLevel/1?inventory_item_id=11",)"
      R"("location":{"id":"gid://shopify/Location/1"},"quantities":[{"name":"available","quantity":42}]}},"q1":null},)"
      R"("extensions":{"cost":{"requestedQueryCost":4,"actualQueryCost":4,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":1996.0,"restoreRate":100.0}}}})";
  const auto q = p::shopify_parse_quantities(answer(200, body), 2);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0], 42);
  EXPECT_FALSE(q[1]);
  EXPECT_THROW(p::shopify_parse_quantities(answer(401, "{}"), 2), core::Error);
}

namespace {

std::string user_errors(const std::string &errors) {
  return R"({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":null,"userErrors":[)" +
         errors +
         R"(]}},"extensions":{"cost":{"requestedQueryCost":10,"actualQueryCost":10,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":1990.0,"restoreRate":100.0}}}})";
}

std::string throttled(const std::string &available, const std::string &rate) {
  return R"({"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}],)"
         R"("extensions":{"cost":{"requestedQueryCost":10,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":)" +
         available + R"(,"restoreRate":)" + rate + "}}}}";
}

}  // namespace

TEST(ShopifyClassify, Success) {
  const std::string body =
      R"({"data":{"inventorySetQuantities":{"inventoryAdjustmentGroup":{"id":"gid://shopify/InventoryAdjustmentGroup/1","createdAt":"2026-11-30T08:00:00Z","reason":"correction","referenceDocumentUri":"pgves://store/x","changes":[]},"userErrors":[]}},"extensions":{}})";
  const auto v = p::shopify_classify(answer(200, body), 2, now_ms);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].verdict, Verdict::success);
  EXPECT_EQ(v[1].verdict, Verdict::success);
}

TEST(ShopifyClassify, StaleLineIsStaleAndTheOthersRetry) {
  const auto v = p::shopify_classify(
      answer(
          200,
          user_errors(
              R"({"code":"CHANGE_FROM_QUANTITY_STALE","field":["input","quantities","1","changeFromQuantity"],"message":"The changeFromQuantity value does not match persisted value."})")),
      3, now_ms);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].verdict, Verdict::retry);  // all or nothing: not applied
  EXPECT_EQ(v[1].verdict, Verdict::stale);
  EXPECT_NE(v[1].reason.find("CHANGE_FROM_QUANTITY_STALE"), std::string::npos);
  EXPECT_EQ(v[2].verdict, Verdict::retry);
}

TEST(ShopifyClassify, OtherUserErrorsArePermanent) {
  const auto v = p::shopify_classify(
      answer(
          200,
          user_errors(
              R"({"code":"INVALID_QUANTITY_NEGATIVE","field":["input","quantities","0","quantity"],"message":"The quantity can't be negative."},)"
              R"({"code":"CHANGE_FROM_QUANTITY_STALE","field":["input","quantities","0","changeFromQuantity"],"message":"m"})")),
      2, now_ms);
  EXPECT_EQ(v[0].verdict, Verdict::permanent);  // invalid beats stale
  EXPECT_NE(v[0].reason.find("INVALID_QUANTITY_NEGATIVE"), std::string::npos);
  EXPECT_EQ(v[1].verdict, Verdict::retry);
  // An error of the whole input: every line.
  const auto w = p::shopify_classify(
      answer(
          200,
          user_errors(
              R"({"code":"IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED","field":["input"],"message":"A previous request with this idempotency key failed."})")),
      2, now_ms);
  // The same call refused before, its answer lost (a killed worker, a
  // timeout): read again and resend with the decided count, which is a new
  // call with a new key, as Shopify asks. Not a dead row.
  EXPECT_EQ(w[0].verdict, Verdict::stale);
  EXPECT_EQ(w[1].verdict, Verdict::stale);
  EXPECT_NE(w[1].reason.find("IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"), std::string::npos);
  // Any other error of the whole input stays permanent.
  const auto x = p::shopify_classify(
      answer(200, user_errors(R"({"code":"INVALID_NAME","field":["input","name"],"message":"m"})")),
      2, now_ms);
  EXPECT_EQ(x[0].verdict, Verdict::permanent);
  EXPECT_EQ(x[1].verdict, Verdict::permanent);
}

TEST(ShopifyClassify, ThrottledWaitsWhatThrottleStatusImplies) {
  // The mock's injected throttle: an empty bucket, 10 points at 100/s: 100 ms.
  auto v = p::shopify_classify(answer(200, throttled("0.0", "100.0")), 2, now_ms);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].verdict, Verdict::retry);
  EXPECT_EQ(v[0].retry_after_ms, 100);
  EXPECT_EQ(v[1].retry_after_ms, 100);
  // 4 of 10 points available at 50/s: 6 / 50 s = 120 ms.
  EXPECT_EQ(p::shopify_classify(answer(200, throttled("4.0", "50.0")), 1, now_ms)[0].retry_after_ms,
            120);
  // No usable throttleStatus: the backoff.
  v = p::shopify_classify(
      answer(200, R"({"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]})"), 1,
      now_ms);
  EXPECT_EQ(v[0].verdict, Verdict::retry);
  EXPECT_EQ(v[0].retry_after_ms, -1);
}

TEST(ShopifyClassify, TopLevelErrors) {
  auto v = p::shopify_classify(
      answer(
          200,
          R"({"errors":[{"message":"The @idempotent directive is required for inventorySetQuantities","extensions":{"code":"BAD_REQUEST"}}]})"),
      1, now_ms);
  EXPECT_EQ(v[0].verdict, Verdict::permanent);
  EXPECT_NE(v[0].reason.find("BAD_REQUEST"), std::string::npos);
  v = p::shopify_classify(
      answer(200, R"({"errors":[{"message":"x","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]})"),
      1, now_ms);
  EXPECT_EQ(v[0].verdict, Verdict::retry);
  EXPECT_EQ(p::shopify_classify(answer(200, "not json"), 1, now_ms)[0].verdict, Verdict::permanent);
  EXPECT_EQ(p::shopify_classify(answer(200, R"({"data":{}})"), 1, now_ms)[0].verdict,
            Verdict::permanent);
}

TEST(ShopifyClassify, HttpStatuses) {
  const char *invalid =
      R"js({"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"})js";
  EXPECT_EQ(p::shopify_classify(answer(401, invalid), 1, now_ms)[0].verdict,
            Verdict::reauthenticate);
  EXPECT_EQ(p::shopify_classify(answer(403, "{}"), 1, now_ms)[0].verdict, Verdict::permanent);
  EXPECT_EQ(p::shopify_classify(answer(404, R"({"errors":"Not Found"})"), 1, now_ms)[0].verdict,
            Verdict::permanent);
  const auto v =
      p::shopify_classify(answer(503, R"({"errors":"Internal Server Error"})", "2"), 2, now_ms);
  EXPECT_EQ(v[1].verdict, Verdict::retry);
  EXPECT_EQ(v[1].retry_after_ms, 2000);
  EXPECT_EQ(p::shopify_classify(answer(500, "{}"), 1, now_ms)[0].verdict, Verdict::retry);
  EXPECT_EQ(p::shopify_classify(answer(429, "", "1"), 1, now_ms)[0].retry_after_ms, 1000);
  EXPECT_EQ(p::shopify_classify(no_answer(), 1, now_ms)[0].verdict, Verdict::retry);
}
