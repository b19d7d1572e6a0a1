// Meta catalog (Graph API Catalog Batch API) requests and answers, as
// test/mock/platforms.py (class Meta) checks and gives them.
#include <gtest/gtest.h>

#include "core/platforms/meta_catalog.hpp"
#include "platform_test_util.hpp"

namespace core = pgves::core;
namespace p = pgves::core::platforms;
using core::Verdict;
using namespace platform_test;

namespace {

std::string options_text(const std::string &extra = "") {
  return merged(std::string(R"({"tenant_id":")") + tenant + R"(","store_id":")" + store +
                    R"(","catalog_id":"880000000000001","access_token":"meta-access-token")" + "}",
                extra);
}

p::MetaSkuUpdate update(std::string id, std::int64_t qty) {
  p::MetaSkuUpdate u;
  u.quantity = qty;
  u.ref.retailer_id = std::move(id);
  return u;
}

std::string error_body(long code, const std::string &subcode = "") {
  return R"({"error":{"message":"m","type":"OAuthException","code":)" + std::to_string(code) +
         (subcode.empty() ? "" : R"(,"error_subcode":)" + subcode) +
         R"(,"fbtrace_id":"Apgves00000001"}})";
}

}  // namespace

TEST(MetaOptions, DefaultsAndRefusals) {
  const auto o = p::meta_options(js(options_text()));
  EXPECT_EQ(o.api_version, "v23.0");
  EXPECT_EQ(o.catalog_id, "880000000000001");
  EXPECT_EQ(o.app_secret, "");
  const auto o2 =
      p::meta_options(js(options_text(R"(,"api_version":"v21.0","app_secret":"meta-app-secret")")));
  EXPECT_EQ(o2.api_version, "v21.0");
  EXPECT_EQ(o2.app_secret, "meta-app-secret");
  option_error([] { p::meta_options(js(R"({"catalog_id":"1"})")); }, "tenant_id");
  option_error([] { p::meta_options(js(options_text(R"(,"catalog_id":"cat-1")"))); },
               "catalog_id must be digits");
  option_error([] { p::meta_options(js(options_text(R"(,"access_token":null)"))); },
               "access_token is required");
  option_error([] { p::meta_options(js(options_text(R"(,"api_version":"21.0")"))); },
               "api_version must look like v23.0");
}

TEST(MetaRef, ParsesAndRefuses) {
  EXPECT_EQ(p::meta_ref(js(R"({"retailer_id":"SKU-1"})")).retailer_id, "SKU-1");
  option_error([] { p::meta_ref(js(R"({"id":"1"})")); }, "retailer_id is required");
}

TEST(MetaBatch, ExactRequestsSplitAtTheLimit) {
  const auto o = p::meta_options(js(options_text()));
  EXPECT_EQ(p::meta_batch_limit, 5000u);
  const auto reqs =
      p::meta_items_batch(o, "http://127.0.0.1:40214/",
                          {update("SKU-1", 7), update("SKU 2", 0), update("SKU-3", 3)}, 2);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].rows, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(reqs[1].rows, (std::vector<std::size_t>{2}));
  const auto &r = reqs[0].http;
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "http://127.0.0.1:40214/v23.0/880000000000001/items_batch");
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(r.body,
            R"({"access_token":"meta-access-token","item_type":"PRODUCT_ITEM","requests":[)"
            R"({"data":{"id":"SKU-1","quantity_to_sell_on_facebook":7},"method":"UPDATE"},)"
            R"({"data":{"id":"SKU 2","quantity_to_sell_on_facebook":0},"method":"UPDATE"}]})");
  EXPECT_EQ(reqs[1].http.body,
            R"({"access_token":"meta-access-token","item_type":"PRODUCT_ITEM","requests":[)"
            R"({"data":{"id":"SKU-3","quantity_to_sell_on_facebook":3},"method":"UPDATE"}]})");
  // The default limit keeps 5000 in one call.
  std::vector<p::MetaSkuUpdate> many(5001, update("x", 1));
  const auto big = p::meta_items_batch(o, "http://h", many);
  ASSERT_EQ(big.size(), 2u);
  EXPECT_EQ(big[0].rows.size(), 5000u);
  EXPECT_EQ(big[1].rows, (std::vector<std::size_t>{5000}));
}

TEST(MetaBatch, StatusRequestKeepsTheTokenOutOfTheUrl) {
  const auto o = p::meta_options(js(options_text()));
  const auto r = p::meta_batch_status(o, "http://127.0.0.1:40214", "AcPgVes000000000001/+=");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url,
            "http://127.0.0.1:40214/v23.0/880000000000001/check_batch_request_status"
            "?handle=AcPgVes000000000001%2F%2B%3D");
  EXPECT_EQ(header(r, "Authorization"), "Bearer meta-access-token");
  EXPECT_EQ(r.url.find("meta-access-token"), std::string::npos);
}

TEST(MetaClassify, BatchAnswers) {
  auto b = p::meta_classify_batch(answer(200, R"({"handles":["AcPgVes000000000001"]})"), 2, now_ms);
  EXPECT_EQ(b.handles, (std::vector<std::string>{"AcPgVes000000000001"}));
  ASSERT_EQ(b.rows.size(), 2u);
  EXPECT_EQ(b.rows[0].verdict, Verdict::success);
  b = p::meta_classify_batch(answer(200, R"({"handles":[]})"), 1, now_ms);
  EXPECT_EQ(b.rows[0].verdict, Verdict::permanent);
  b = p::meta_classify_batch(answer(400, error_body(4)), 3, now_ms);
  EXPECT_TRUE(b.handles.empty());
  ASSERT_EQ(b.rows.size(), 3u);
  EXPECT_EQ(b.rows[2].verdict, Verdict::retry);
}

TEST(MetaClassify, ErrorTable) {
  struct Row {
    long status;
    long code;
    const char *subcode;
    Verdict verdict;
  };
  const Row rows[] = {
      {400, 4, "", Verdict::retry},
      {400, 17, "", Verdict::retry},
      {400, 32, "", Verdict::retry},
      {400, 613, "", Verdict::retry},
      {400, 80004, "", Verdict::retry},
      {500, 2, "", Verdict::retry},
      {503, 2, "", Verdict::retry},
      {400, 1, "", Verdict::retry},
      {400, 190, "463", Verdict::reauthenticate},
      {400, 190, "", Verdict::reauthenticate},
      {400, 100, "", Verdict::permanent},
      {400, 10, "", Verdict::permanent},
  };
  for (const Row &row : rows) {
    const auto v =
        p::meta_classify_error(answer(row.status, error_body(row.code, row.subcode)), now_ms);
    EXPECT_EQ(v.verdict, row.verdict) << row.code;
    EXPECT_NE(v.reason.find("Graph API error " + std::to_string(row.code)), std::string::npos)
        << v.reason;
  }
  EXPECT_NE(p::meta_classify_error(answer(400, error_body(190, "463")), now_ms).reason.find("/463"),
            std::string::npos);
  EXPECT_EQ(p::meta_classify_error(answer(400, error_body(4), "7"), now_ms).retry_after_ms, 7000);
  EXPECT_EQ(p::meta_classify_error(no_answer(), now_ms).verdict, Verdict::retry);
  EXPECT_EQ(p::meta_classify_error(answer(502, "<html/>"), now_ms).verdict, Verdict::retry);
  EXPECT_EQ(p::meta_classify_error(answer(400, "{}"), now_ms).verdict, Verdict::permanent);
  EXPECT_EQ(p::meta_classify_error(answer(200, "{}"), now_ms).verdict, Verdict::permanent);
}

TEST(MetaClassify, BatchStatus) {
  const std::vector<std::string> ids = {"SKU-1", "SKU-2", "SKU-3"};
  auto s = p::meta_classify_status(
      answer(
          200,
          R"({"data":[{"handle":"h","status":"started","errors_total_count":0,"errors":[],"warnings":[]}]})"),
      ids, now_ms);
  EXPECT_FALSE(s.finished);
  EXPECT_TRUE(s.rows.empty());
  s = p::meta_classify_status(
      answer(
          200,
          R"({"data":[{"handle":"h","status":"finished","errors_total_count":2,"errors":[)"
          R"js({"line":1,"id":"SKU-2","message":"Item update rejected (injected by the mock)"},)js"
          R"({"id":"SKU-3","message":"Product item with retailer_id 'SKU-3' does not exist"}],)"
          R"("warnings_total_count":0,"warnings":[],"ids_of_invalid_requests":["SKU-2","SKU-3"]}]})"),
      ids, now_ms);
  EXPECT_TRUE(s.finished);
  ASSERT_EQ(s.rows.size(), 3u);
  EXPECT_EQ(s.rows[0].verdict, Verdict::success);
  EXPECT_EQ(s.rows[1].verdict, Verdict::permanent);
  EXPECT_NE(s.rows[1].reason.find("injected by the mock"), std::string::npos);
  EXPECT_EQ(s.rows[2].verdict, Verdict::permanent);
  s = p::meta_classify_status(answer(400, error_body(190, "463")), ids, now_ms);
  EXPECT_FALSE(s.finished);
  ASSERT_EQ(s.rows.size(), 3u);
  EXPECT_EQ(s.rows[0].verdict, Verdict::reauthenticate);
  s = p::meta_classify_status(answer(200, R"({"data":[]})"), ids, now_ms);
  ASSERT_EQ(s.rows.size(), 3u);
  EXPECT_EQ(s.rows[0].verdict, Verdict::permanent);
}

TEST(MetaRead, ExactRequestAndParse) {
  const auto o = p::meta_options(js(options_text()));
  const auto r = p::meta_read_products(o, "http://127.0.0.1:40214", {"SKU-1", "SKU 2"});
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(
      r.url,
      "http://127.0.0.1:40214/v23.0/880000000000001/products"
      "?filter=%7B%22retailer_id%22%3A%7B%22is_any%22%3A%5B%22SKU-1%22%2C%22SKU%202%22%5D%7D%7D"
      "&fields=retailer_id%2Cquantity_to_sell_on_facebook&limit=2");
  EXPECT_EQ(header(r, "Authorization"), "Bearer meta-access-token");
  const auto items = p::meta_parse_products(answer(
      200,
      R"({"data":[{"id":"900000000001","retailer_id":"SKU-1","quantity_to_sell_on_facebook":4},)"
      R"({"id":"900000000002","retailer_id":"SKU 2","quantity_to_sell_on_facebook":0}]})"));
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0], (std::pair<std::string, std::int64_t>{"SKU-1", 4}));
  EXPECT_EQ(items[1], (std::pair<std::string, std::int64_t>{"SKU 2", 0}));
  EXPECT_THROW(p::meta_parse_products(answer(400, error_body(190))), core::Error);
}
