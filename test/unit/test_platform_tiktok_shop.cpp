// TikTok Shop requests and answers, as test/mock/platforms.py (class TikTok,
// TIKTOK_CODES) checks and gives them. The expected signs were computed with
// the mock's own tiktok_sign() in Python, not with pg_ves code.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/platforms/tiktok_shop.hpp"
#include "platform_test_util.hpp"

namespace core = pgves::core;
namespace p = pgves::core::platforms;
using core::Verdict;
using namespace platform_test;

namespace {

std::string options_text(const std::string &extra = "") {
  return merged(
      std::string(R"({"tenant_id":")") + tenant + R"(","store_id":")" + store +
          R"(","app_key":"tts_app_key","app_secret":"tts_app_secret","access_token":"tts_access_token_0",)"
          R"("refresh_token":"tts_refresh_token","shop_cipher":"ROW_pgves_test")" +
          "}",
      extra);
}

p::TikTokSkuUpdate update(std::string product, std::string sku, std::int64_t qty,
                          std::string warehouse = "") {
  p::TikTokSkuUpdate u;
  u.quantity = qty;
  u.ref = {std::move(product), std::move(sku), std::move(warehouse)};
  return u;
}

const std::int64_t kNow = 1764460800999;  // timestamp=1764460800

}  // namespace

TEST(TikTokOptions, DefaultsAndRefusals) {
  const auto o = p::tiktok_options(js(options_text()));
  EXPECT_EQ(o.auth_url, "https://auth.tiktok-shops.com");
  EXPECT_EQ(o.warehouse_id, "");
  EXPECT_EQ(o.shop_cipher, "ROW_pgves_test");
  const auto o2 = p::tiktok_options(js(options_text(
      R"(,"warehouse_id":"7000000000000000001","auth_url":"http://127.0.0.1:40212")")));
  EXPECT_EQ(o2.warehouse_id, "7000000000000000001");
  EXPECT_EQ(o2.auth_url, "http://127.0.0.1:40212");
  option_error([] { p::tiktok_options(js(R"({"app_key":"k"})")); }, "tenant_id");
  for (const char *name : {"app_key", "app_secret", "refresh_token", "shop_cipher"}) {
    auto doc = js(options_text());
    auto object = doc.as_object();
    object.erase(std::remove_if(object.begin(), object.end(),
                                [&](const auto &m) { return m.first == name; }),
                 object.end());
    option_error([&] { p::tiktok_options(core::json::Value(object)); },
                 std::string(name) + " is required");
  }
  option_error([] { p::tiktok_options(js(options_text(R"(,"auth_url":"ftp://x")"))); }, "",
               "invalid_url");
  // Stored options (checked when stored) are not parsed for their URL again.
  EXPECT_EQ(p::tiktok_options(js(options_text(R"(,"auth_url":"ftp://x")")), false).auth_url,
            "ftp://x");
}

TEST(TikTokRef, ParsesAndRefuses) {
  const auto r = p::tiktok_ref(js(R"({"product_id":"1","sku_id":"2","warehouse_id":"3"})"));
  EXPECT_EQ(r.product_id, "1");
  EXPECT_EQ(r.sku_id, "2");
  EXPECT_EQ(r.warehouse_id, "3");
  option_error([] { p::tiktok_ref(js(R"({"product_id":"1"})")); }, "sku_id is required");
  option_error([] { p::tiktok_ref(js(R"({"product_id":1,"sku_id":"2"})")); }, "product_id");
}

TEST(TikTokUpdate, OneSignedRequestPerProduct) {
  const auto o = p::tiktok_options(js(options_text()));
  const auto reqs = p::tiktok_inventory_updates(
      o, "http://127.0.0.1:40212",
      {update("1729592969712207008", "1729592969712207009", 7),
       update("P/2", "S2", 3, "7000000000000000001"),
       update("1729592969712207008", "1729592969712207010", 0, "7000000000000000002")},
      kNow);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].rows, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(reqs[1].rows, (std::vector<std::size_t>{1}));
  const auto &a = reqs[0].http;
  EXPECT_EQ(a.method, "POST");
  EXPECT_EQ(a.url,
            "http://127.0.0.1:40212/product/202309/products/1729592969712207008/inventory/update"
            "?app_key=tts_app_key&shop_cipher=ROW_pgves_test&timestamp=1764460800"
            "&sign=fe6804b09f1268b7e46bc92c122adf1e13ccde11a57275347bf7d2b3128fa4ac");
  EXPECT_EQ(header(a, "x-tts-access-token"), "tts_access_token_0");
  EXPECT_EQ(header(a, "Content-Type"), "application/json");
  // Without a warehouse in the listing or the options, TikTok's default is used.
  EXPECT_EQ(
      a.body,
      R"({"skus":[{"id":"1729592969712207009","inventory":[{"quantity":7}]},)"
      R"({"id":"1729592969712207010","inventory":[{"quantity":0,"warehouse_id":"7000000000000000002"}]}]})");
  // The product id is one path segment: percent-encoded, and signed as sent.
  const auto &b = reqs[1].http;
  EXPECT_EQ(b.url,
            "http://127.0.0.1:40212/product/202309/products/P%2F2/inventory/update"
            "?app_key=tts_app_key&shop_cipher=ROW_pgves_test&timestamp=1764460800"
            "&sign=6296239446eda7ee07556e21b2cd3871e375a3950ffba7a0819b4dd7da6f91c5");
  EXPECT_EQ(
      b.body,
      R"({"skus":[{"id":"S2","inventory":[{"quantity":3,"warehouse_id":"7000000000000000001"}]}]})");
}

TEST(TikTokUpdate, SignCoversTheBasePathAndTheDefaultWarehouse) {
  const auto o = p::tiktok_options(js(options_text(R"(,"warehouse_id":"7000000000000000001")")));
  const auto reqs =
      p::tiktok_inventory_updates(o, "http://127.0.0.1:4000/gw/", {update("P/2", "S2", 3)}, kNow);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].http.url,
            "http://127.0.0.1:4000/gw/product/202309/products/P%2F2/inventory/update"
            "?app_key=tts_app_key&shop_cipher=ROW_pgves_test&timestamp=1764460800"
            "&sign=84a94f5a4e4089c85eb3b6f23343d51019cc2f0279217c7382bb76e91836cb2b");
  EXPECT_EQ(
      reqs[0].http.body,
      R"({"skus":[{"id":"S2","inventory":[{"quantity":3,"warehouse_id":"7000000000000000001"}]}]})");
}

TEST(TikTokToken, RefreshRequestAndAnswer) {
  const auto o = p::tiktok_options(js(options_text(R"(,"auth_url":"http://127.0.0.1:40212/")")));
  const auto r = p::tiktok_token_refresh(o);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url,
            "http://127.0.0.1:40212/api/v2/token/refresh?app_key=tts_app_key"
            "&app_secret=tts_app_secret&refresh_token=tts_refresh_token&grant_type=refresh_token");
  EXPECT_EQ(r.body, "");
  const auto t = p::tiktok_parse_token(
      answer(
          200,
          R"({"code":0,"message":"Success","request_id":"2026x","data":{"access_token":"tts_access_token_1",)"
          R"("access_token_expire_in":1765065600,"refresh_token":"tts_refresh_token","refresh_token_expire_in":1796601600,)"
          R"("open_id":"pgves_open_id","seller_name":"pg_ves test shop","seller_base_region":"US","user_type":0,"granted_scopes":[]}})"),
      kNow);
  EXPECT_EQ(t.verdict.verdict, Verdict::success);
  EXPECT_EQ(t.token.access_token, "tts_access_token_1");
  EXPECT_EQ(t.token.expires_at_unix_ms, 1765065600000);
  EXPECT_EQ(t.token.refresh_token, "tts_refresh_token");
  // Refused refresh: permanent, never another refresh.
  for (const char *body :
       {R"({"code":36004004,"message":"Invalid refresh_token.","data":null,"request_id":"r"})",
        R"({"code":36004005,"message":"Invalid app_secret.","data":null,"request_id":"r"})",
        R"({"code":105002,"message":"Expired credentials.","data":null,"request_id":"r"})"}) {
    EXPECT_EQ(p::tiktok_parse_token(answer(400, body), kNow).verdict.verdict, Verdict::permanent)
        << body;
  }
  EXPECT_EQ(p::tiktok_parse_token(answer(503, "{}"), kNow).verdict.verdict, Verdict::retry);
  EXPECT_EQ(p::tiktok_parse_token(answer(200, R"({"code":0,"data":{}})"), kNow).verdict.verdict,
            Verdict::permanent);
}

TEST(TikTokClassify, CodeTable) {
  struct Row {
    long status;
    long code;
    Verdict verdict;
  };
  const Row rows[] = {
      {200, 0, Verdict::success},
      {401, 105001, Verdict::reauthenticate},
      {401, 105002, Verdict::reauthenticate},
      {401, 106001, Verdict::permanent},
      {401, 106002, Verdict::permanent},
      {401, 106003, Verdict::permanent},
      {401, 106004, Verdict::permanent},
      {400, 36009003, Verdict::permanent},
      {429, 36009004, Verdict::retry},
      {500, 36009005, Verdict::retry},
      {503, 36009005, Verdict::retry},
      {404, 12052048, Verdict::permanent},
      {404, 12052049, Verdict::permanent},
      {400, 12052050, Verdict::permanent},
      {400, 36004004, Verdict::permanent},
      {401, 36004005, Verdict::permanent},
      // Codes outside the table: by HTTP status.
      {400, 99999999, Verdict::permanent},
      {502, 99999999, Verdict::retry},
      {429, 99999999, Verdict::retry},
      {401, 99999999, Verdict::reauthenticate},
      {200, 99999999, Verdict::permanent},
  };
  for (const Row &row : rows) {
    const std::string body = R"({"code":)" + std::to_string(row.code) +
                             R"(,"message":"m","data":null,"request_id":"2026x"})";
    const auto v = p::tiktok_classify(answer(row.status, body), 2, kNow);
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0].verdict, row.verdict) << row.code << " / HTTP " << row.status;
    EXPECT_EQ(v[1].verdict, row.verdict);
    if (row.verdict != Verdict::success) {
      EXPECT_NE(v[0].reason.find(std::to_string(row.code)), std::string::npos) << v[0].reason;
    }
  }
}

TEST(TikTokClassify, RetryAfterAndAnswersWithoutCode) {
  const auto v = p::tiktok_classify_one(
      answer(429,
             R"({"code":36009004,"message":"Too many requests.","data":null,"request_id":"r"})",
             "3"),
      kNow);
  EXPECT_EQ(v.verdict, Verdict::retry);
  EXPECT_EQ(v.retry_after_ms, 3000);
  EXPECT_EQ(p::tiktok_classify_one(no_answer(), kNow).verdict, Verdict::retry);
  EXPECT_EQ(p::tiktok_classify_one(answer(502, "<html>bad gateway</html>"), kNow).verdict,
            Verdict::retry);
  EXPECT_EQ(p::tiktok_classify_one(answer(200, "{}"), kNow).verdict, Verdict::permanent);
  EXPECT_EQ(p::tiktok_classify_one(answer(404, R"({"code":40006,"message":"Invalid path"})"), kNow)
                .verdict,
            Verdict::permanent);
  // code 0 with an error status is not a success.
  EXPECT_EQ(p::tiktok_classify_one(answer(500, R"({"code":0})"), kNow).verdict, Verdict::retry);
  EXPECT_EQ(p::tiktok_classify_one(answer(400, R"({"code":0})"), kNow).verdict, Verdict::permanent);
}

TEST(TikTokSearch, ExactRequestAndParse) {
  const auto o = p::tiktok_options(js(options_text()));
  const auto r =
      p::tiktok_inventory_search(o, "http://127.0.0.1:40212", {"1729592969712207008", "P2"}, kNow);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url,
            "http://127.0.0.1:40212/product/202309/inventory/search"
            "?app_key=tts_app_key&shop_cipher=ROW_pgves_test&timestamp=1764460800"
            "&sign=109a98a67e2efa666344525d6259dcef5255162660d9259a6271dab8145212b3");
  EXPECT_EQ(header(r, "x-tts-access-token"), "tts_access_token_0");
  EXPECT_EQ(r.body, R"({"product_ids":["1729592969712207008","P2"]})");
  const auto stock = p::tiktok_parse_search(answer(
      200,
      R"({"code":0,"message":"Success","request_id":"r","data":{"inventory":[{"product_id":"1729592969712207008","skus":[)"
      R"({"id":"1729592969712207009","total_available_quantity":9,"total_committed_quantity":0,"warehouse_inventory":[)"
      R"({"warehouse_id":"7000000000000000001","available_quantity":7,"committed_quantity":0},)"
      R"({"warehouse_id":"7000000000000000002","available_quantity":2,"committed_quantity":0}]}]}]}})"));
  ASSERT_EQ(stock.size(), 2u);
  EXPECT_EQ(stock[0].product_id, "1729592969712207008");
  EXPECT_EQ(stock[0].sku_id, "1729592969712207009");
  EXPECT_EQ(stock[0].warehouse_id, "7000000000000000001");
  EXPECT_EQ(stock[0].available, 7);
  EXPECT_EQ(stock[1].available, 2);
  EXPECT_THROW(p::tiktok_parse_search(answer(401, R"({"code":105002,"message":"m","data":null})")),
               core::Error);
}
