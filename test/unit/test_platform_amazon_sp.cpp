// Amazon SP-API and Login with Amazon requests and answers, as
// test/mock/platforms.py (class Amazon) checks and gives them.
#include <gtest/gtest.h>

#include "core/platforms/amazon_sp.hpp"
#include "platform_test_util.hpp"

namespace core = pgves::core;
namespace p = pgves::core::platforms;
using core::Verdict;
using namespace platform_test;

namespace {

std::string options_text(const std::string &extra = "") {
  return merged(
      std::string(R"({"tenant_id":")") + tenant + R"(","store_id":")" + store +
          R"(","seller_id":"A1PGVESTEST","marketplace_ids":["ATVPDKIKX0DER","A2EUQ1WTGCTBG2"],)"
          R"("client_id":"amzn1.application-oa2-client.pgvestest","client_secret":"amzn-client-secret",)"
          R"("refresh_token":"Atzr|pgves-refresh-token")" +
          "}",
      extra);
}

p::AmazonSkuUpdate update(std::string sku, std::int64_t qty, std::string product_type = "") {
  p::AmazonSkuUpdate u;
  u.quantity = qty;
  u.ref = {std::move(sku), std::move(product_type)};
  return u;
}

}  // namespace

TEST(AmazonOptions, DefaultsAndRefusals) {
  const auto o = p::amazon_options(js(options_text()));
  EXPECT_EQ(o.lwa_url, "https://api.amazon.com/auth/o2/token");
  EXPECT_EQ(o.product_type, "PRODUCT");
  EXPECT_EQ(o.marketplace_ids, (std::vector<std::string>{"ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"}));
  const auto o2 = p::amazon_options(js(
      options_text(R"(,"lwa_url":"http://127.0.0.1:40213/auth/o2/token","product_type":"SHIRT")")));
  EXPECT_EQ(o2.lwa_url, "http://127.0.0.1:40213/auth/o2/token");
  EXPECT_EQ(o2.product_type, "SHIRT");
  option_error([] { p::amazon_options(js(R"({"seller_id":"A"})")); }, "tenant_id");
  option_error([] { p::amazon_options(js(options_text(R"(,"marketplace_ids":[])"))); },
               "marketplace_ids must be a non-empty array");
  option_error([] { p::amazon_options(js(options_text(R"(,"marketplace_ids":"ATVPDKIKX0DER")"))); },
               "marketplace_ids");
  option_error([] { p::amazon_options(js(options_text(R"(,"marketplace_ids":["A,B"])"))); },
               "without commas");
  option_error([] { p::amazon_options(js(options_text(R"(,"client_secret":null)"))); },
               "client_secret is required");
  EXPECT_EQ(p::amazon_options(js(options_text(R"(,"lwa_url":"not a url")")), false).lwa_url,
            "not a url");  // stored options: checked when stored
  option_error([] { p::amazon_options(js(options_text(R"(,"lwa_url":"not a url")"))); }, "",
               "invalid_url");
  option_error([] { p::amazon_options(js(options_text(R"(,"product_type":"")"))); },
               "product_type must not be empty");
}

TEST(AmazonRef, ParsesAndRefuses) {
  const auto r = p::amazon_ref(js(R"({"sku":"SKU-1","product_type":"SHIRT"})"));
  EXPECT_EQ(r.sku, "SKU-1");
  EXPECT_EQ(r.product_type, "SHIRT");
  option_error([] { p::amazon_ref(js(R"({"asin":"B0"})")); }, "sku is required");
}

TEST(AmazonPatch, ExactRequest) {
  const auto o = p::amazon_options(js(options_text()));
  const auto r =
      p::amazon_patch_quantity(o, "http://127.0.0.1:40213/", update("AB/12 x", 7), "Atza|t1");
  EXPECT_EQ(r.method, "PATCH");
  // The SKU is one path segment; marketplaces comma-separated.
  EXPECT_EQ(r.url,
            "http://127.0.0.1:40213/listings/2021-08-01/items/A1PGVESTEST/AB%2F12%20x"
            "?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2");
  EXPECT_EQ(header(r, "x-amz-access-token"), "Atza|t1");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(
      r.body,
      R"({"patches":[{"op":"replace","path":"/attributes/fulfillment_availability",)"
      R"("value":[{"fulfillment_channel_code":"DEFAULT","quantity":7}]}],"productType":"PRODUCT"})");
  // The listing's product type wins over the destination's.
  EXPECT_NE(p::amazon_patch_quantity(o, "http://h", update("S", 0, "SHIRT"), "t")
                .body.find(R"("productType":"SHIRT")"),
            std::string::npos);
}

TEST(AmazonRead, ExactRequestAndParse) {
  const auto o = p::amazon_options(js(options_text()));
  const auto r = p::amazon_read_quantity(o, "http://127.0.0.1:40213", {"SKU 1", ""}, "Atza|t1");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url,
            "http://127.0.0.1:40213/listings/2021-08-01/items/A1PGVESTEST/SKU%201"
            "?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2&includedData=fulfillmentAvailability");
  EXPECT_EQ(header(r, "x-amz-access-token"), "Atza|t1");
  EXPECT_EQ(
      p::amazon_parse_quantity(answer(
          200,
          R"({"sku":"SKU 1","fulfillmentAvailability":[{"fulfillmentChannelCode":"DEFAULT","quantity":12}]})")),
      12);
  EXPECT_FALSE(p::amazon_parse_quantity(answer(
      404,
      R"({"errors":[{"code":"NOT_FOUND","message":"SKU 'SKU 1' not found in marketplace.","details":""}]})")));
  EXPECT_THROW(p::amazon_parse_quantity(answer(200, R"({"sku":"x"})")), core::Error);
  EXPECT_THROW(p::amazon_parse_quantity(answer(403, "{}")), core::Error);
}

TEST(AmazonToken, RequestAndAnswers) {
  const auto o =
      p::amazon_options(js(options_text(R"(,"lwa_url":"http://127.0.0.1:40213/auth/o2/token")")));
  const auto r = p::amazon_token_request(o);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "http://127.0.0.1:40213/auth/o2/token");
  EXPECT_EQ(header(r, "Content-Type"), "application/x-www-form-urlencoded;charset=UTF-8");
  EXPECT_EQ(r.body,
            "grant_type=refresh_token&refresh_token=Atzr%7Cpgves-refresh-token"
            "&client_id=amzn1.application-oa2-client.pgvestest&client_secret=amzn-client-secret");
  const auto t = p::amazon_parse_token(
      answer(
          200,
          R"({"access_token":"Atza|pgves-access-1","token_type":"bearer","expires_in":3600,"refresh_token":"Atzr|pgves-refresh-token"})"),
      now_ms);
  EXPECT_EQ(t.verdict.verdict, Verdict::success);
  EXPECT_EQ(t.token.access_token, "Atza|pgves-access-1");
  EXPECT_EQ(t.token.expires_at_unix_ms, now_ms + 3600000);
  EXPECT_EQ(t.token.refresh_token, "Atzr|pgves-refresh-token");
  const auto client = p::amazon_parse_token(
      answer(401,
             R"({"error":"invalid_client","error_description":"Client authentication failed"})"),
      now_ms);
  EXPECT_EQ(client.verdict.verdict, Verdict::permanent);
  EXPECT_NE(client.verdict.reason.find("invalid_client"), std::string::npos);
  EXPECT_EQ(
      p::amazon_parse_token(
          answer(
              400,
              R"({"error":"invalid_grant","error_description":"The request has an invalid grant parameter : refresh_token"})"),
          now_ms)
          .verdict.verdict,
      Verdict::permanent);
  EXPECT_EQ(p::amazon_parse_token(answer(503, "{}"), now_ms).verdict.verdict, Verdict::retry);
  EXPECT_EQ(p::amazon_parse_token(answer(429, "", "5"), now_ms).verdict.retry_after_ms, 5000);
  EXPECT_EQ(p::amazon_parse_token(no_answer(), now_ms).verdict.verdict, Verdict::retry);
  EXPECT_EQ(p::amazon_parse_token(answer(200, R"({"access_token":"x"})"), now_ms).verdict.verdict,
            Verdict::permanent);
}

TEST(AmazonClassify, Table) {
  EXPECT_EQ(p::amazon_rate_wait_ms("5.0"), 200);
  EXPECT_EQ(p::amazon_rate_wait_ms("0.5"), 2000);
  EXPECT_EQ(p::amazon_rate_wait_ms("3"), 334);
  EXPECT_EQ(p::amazon_rate_wait_ms(""), -1);
  EXPECT_EQ(p::amazon_rate_wait_ms("fast"), -1);
  EXPECT_EQ(p::amazon_rate_wait_ms("0"), -1);

  auto ok = p::amazon_classify(
      answer(
          200,
          R"({"sku":"S","status":"ACCEPTED","submissionId":"00000000000000000000000a11ce001","issues":[]})"),
      "5.0", now_ms);
  EXPECT_EQ(ok.verdict, Verdict::success);

  auto invalid = p::amazon_classify(
      answer(
          200,
          R"({"sku":"S","status":"INVALID","submissionId":"x","issues":[{"code":"4000001","message":"quantity must be a non-negative integer.","severity":"ERROR","attributeNames":["fulfillment_availability"]}]})"),
      "5.0", now_ms);
  EXPECT_EQ(invalid.verdict, Verdict::permanent);
  EXPECT_NE(invalid.reason.find("INVALID"), std::string::npos);
  EXPECT_NE(invalid.reason.find("4000001: quantity must be a non-negative integer."),
            std::string::npos);

  const char *expired =
      R"({"errors":[{"code":"Unauthorized","message":"The access token you provided has expired.","details":""}]})";
  auto v = p::amazon_classify(answer(403, expired), "", now_ms);
  EXPECT_EQ(v.verdict, Verdict::reauthenticate);
  EXPECT_NE(v.reason.find("has expired"), std::string::npos);
  EXPECT_EQ(p::amazon_classify(answer(401, "{}"), "", now_ms).verdict, Verdict::reauthenticate);

  const char *quota =
      R"({"errors":[{"code":"QuotaExceeded","message":"You exceeded your quota for the requested resource.","details":""}]})";
  v = p::amazon_classify(answer(429, quota), "5.0", now_ms);
  EXPECT_EQ(v.verdict, Verdict::retry);
  EXPECT_EQ(v.retry_after_ms, 200);
  EXPECT_EQ(p::amazon_classify(answer(429, quota, "3"), "5.0", now_ms).retry_after_ms, 3000);
  EXPECT_EQ(p::amazon_classify(answer(429, quota), "", now_ms).retry_after_ms, -1);

  v = p::amazon_classify(
      answer(
          500,
          R"({"errors":[{"code":"InternalFailure","message":"We encountered an internal error. Please try again.","details":""}]})"),
      "", now_ms);
  EXPECT_EQ(v.verdict, Verdict::retry);
  EXPECT_EQ(p::amazon_classify(answer(503, "{}"), "", now_ms).verdict, Verdict::retry);
  EXPECT_EQ(p::amazon_classify(no_answer(), "", now_ms).verdict, Verdict::retry);

  v = p::amazon_classify(
      answer(
          400,
          R"({"errors":[{"code":"InvalidInput","message":"Invalid marketplaceIds X.","details":""}]})"),
      "", now_ms);
  EXPECT_EQ(v.verdict, Verdict::permanent);
  EXPECT_NE(v.reason.find("InvalidInput"), std::string::npos);
  EXPECT_EQ(p::amazon_classify(answer(404, "{}"), "", now_ms).verdict, Verdict::permanent);
  EXPECT_EQ(p::amazon_classify(answer(200, R"({"status":"VALID"})"), "", now_ms).verdict,
            Verdict::permanent);
  EXPECT_EQ(p::amazon_classify(answer(204, ""), "", now_ms).verdict, Verdict::permanent);
}
