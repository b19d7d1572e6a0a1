// What an adapter costs the sync worker per SKU update, without the
// network, the database or a mock: build_requests() and classify_rows()
// (with the platform's success answer) over batches of outbox rows, for each
// platform kind and for the generic webhook kind (one signed envelope per
// row), on one core. Built by bench/platforms.sh against src/core's objects.
//   adapters SECONDS BATCH   prints "kind rows_per_request us_per_row us_per_request"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"

using namespace pgves::core;

namespace {

struct Case {
  const char *kind;
  const char *options;      // the destination's kind options
  const char *credentials;  // its sealed credentials
  const char *answer;       // the platform's success answer
  std::string (*ref)(int);  // platform_ref of SKU i
};

std::string shopify_ref(int i) {
  return "{\"inventory_item_id\": \"gid://shopify/InventoryItem/" + std::to_string(1000 + i) +
         "\"}";
}
std::string tiktok_ref(int i) {
  return "{\"product_id\": \"" + std::to_string(7300 + i) + "\", \"sku_id\": \"" +
         std::to_string(8300 + i) + "\"}";
}
std::string amazon_ref(int i) { return "{\"sku\": \"SKU-" + std::to_string(i) + "\"}"; }
std::string meta_ref(int i) { return "{\"retailer_id\": \"SKU-" + std::to_string(i) + "\"}"; }
std::string no_ref(int) { return "null"; }

const char *kIds =
    "\"tenant_id\": \"00000000-0000-4000-8000-000000000001\", "
    "\"store_id\": \"00000000-0000-4000-9000-000000000001\"";

}  // namespace

int main(int argc, char **argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  int batch = argc > 2 ? std::atoi(argv[2]) : 16;
  const std::string ids = kIds;
  const std::string o_shopify =
      "{" + ids + ", \"location_id\": \"gid://shopify/Location/1\", \"api_version\": \"2026-04\"}";
  const std::string o_tiktok =
      "{" + ids +
      ", \"app_key\": \"tts_app_key\", \"shop_cipher\": \"ROW_pgves_test\", "
      "\"warehouse_id\": \"7000000000000000001\", \"auth_url\": \"http://127.0.0.1:1\"}";
  const std::string o_amazon =
      "{" + ids +
      ", \"seller_id\": \"A1PGVESTEST\", \"marketplace_ids\": [\"ATVPDKIKX0DER\"], "
      "\"client_id\": \"amzn1.application-oa2-client.pgvestest\", "
      "\"lwa_url\": \"http://127.0.0.1:1/auth/o2/token\", \"product_type\": \"PRODUCT\"}";
  const std::string o_meta =
      "{" + ids + ", \"catalog_id\": \"880000000000001\", \"api_version\": \"v23.0\"}";
  const std::vector<Case> cases = {
      {"webhook", "{}", "null", "", no_ref},
      {"shopify", o_shopify.c_str(), "{\"access_token\": \"shpat_pgves_test\"}",
       "{\"data\":{\"inventorySetQuantities\":{\"inventoryAdjustmentGroup\":{\"id\":"
       "\"gid://shopify/InventoryAdjustmentGroup/1\"},\"userErrors\":[]}},\"extensions\":{\"cost\":"
       "{\"requestedQueryCost\":10,\"actualQueryCost\":10,\"throttleStatus\":{\"maximumAvailable\":"
       "1000.0,\"currentlyAvailable\":990,\"restoreRate\":50.0}}}}",
       shopify_ref},
      {"tiktok_shop", o_tiktok.c_str(),
       "{\"app_secret\": \"tts_app_secret\", \"access_token\": \"tts_access_token_0\", "
       "\"refresh_token\": \"tts_refresh_token\"}",
       "{\"code\":0,\"message\":\"Success\",\"data\":{},\"request_id\":\"2026113012000001\"}",
       tiktok_ref},
      {"amazon_sp", o_amazon.c_str(),
       "{\"client_secret\": \"amzn-client-secret\", \"refresh_token\": "
       "\"Atzr|pgves-refresh-token\"}",
       "{\"sku\":\"SKU-1\",\"status\":\"ACCEPTED\",\"submissionId\":\"f1dc2914\",\"issues\":[]}",
       amazon_ref},
      {"meta_catalog", o_meta.c_str(), "{\"access_token\": \"meta-access-token\"}",
       "{\"handles\":[\"AcxRLHW3pV1\"]}", meta_ref},
  };
  // The envelope a webhook row carries: about the size pg_ves exports for a stock event.
  const std::string envelope =
      "{\"ves_version\":1,\"event_id\":\"0b9c6f1e-7c55-4a36-9d0e-0b8b3b1f2a11\",\"tenant_id\":"
      "\"00000000-0000-4000-8000-000000000001\",\"store_id\":\"00000000-0000-4000-9000-"
      "000000000001\","
      "\"source_agent_id\":\"00000000-0000-0000-0000-000000000000\",\"agent_key_id\":1,"
      "\"entity_type\":\"inventory\",\"entity_id\":\"SKU-1\",\"event_type\":\"inventory.set\","
      "\"created_at\":\"2026-11-30T12:00:00.000Z\",\"payload_kind\":0,\"payload\":{\"sku\":\"SKU-"
      "1\","
      "\"location\":\"default\",\"on_hand\":201,\"reserved\":0,\"available\":201},"
      "\"payload_plain_hash\":"
      "\"0x1f5c0d3b8e4a6f7a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708\","
      "\"payload_cipher_hash\":"
      "\"0x0000000000000000000000000000000000000000000000000000000000000000\","
      "\"agent_signature\":\"0x" +
      std::string(128, 'a') + "\"}";
  const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const std::vector<std::pair<std::string, std::string>> no_headers;
  const std::int64_t now = 1796040000000;
  for (const Case &c : cases) {
    const Adapter *adapter = find_adapter(c.kind);
    if (!adapter) {
      std::fprintf(stderr, "no adapter for %s\n", c.kind);
      return 1;
    }
    const json::Value options = json::parse(c.options), credentials = json::parse(c.credentials);
    const bool platform = adapter->is_platform();
    const std::string url = platform ? "http://127.0.0.1:1" : "http://127.0.0.1:1/hook";
    const std::string &key = platform ? std::string() : secret;
    Endpoint endpoint{
        url,
        key,
        no_headers,
        platform ? &options : nullptr,
        platform ? &credentials : nullptr,
        platform ? std::string_view("access-token-from-the-token-endpoint") : std::string_view()};
    std::vector<json::Value> refs;
    for (int i = 0; i < batch; ++i) refs.push_back(json::parse(c.ref(i + 1)));
    std::vector<std::vector<ListingFacts>> listings(batch);
    std::vector<std::string> skus(batch), event_ids(batch);
    std::vector<OutboxRow> rows(batch);
    for (int i = 0; i < batch; ++i) {
      skus[i] = "SKU-" + std::to_string(i + 1);
      char id[40];
      std::snprintf(id, sizeof id, "0b9c6f1e-7c55-4a36-9d0e-%012d", i + 1);
      event_ids[i] = id;
      if (platform)
        listings[i].push_back(ListingFacts{skus[i], "default", &refs[i], 200 + i, 100 + i});
      rows[i] = OutboxRow{1000 + i, event_ids[i], envelope, 1};
      rows[i].listings = platform ? &listings[i] : nullptr;
    }
    // One batch as the deliverer hands it over: up to max_rows_per_request
    // rows per build_requests() call.
    const std::size_t per_call = std::min<std::size_t>(batch, adapter->max_rows_per_request());
    long n_rows = 0, n_requests = 0;
    std::size_t bytes = 0;
    auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      for (std::size_t first = 0; first < rows.size(); first += per_call) {
        std::vector<OutboxRow> part(rows.begin() + first,
                                    rows.begin() + std::min(rows.size(), first + per_call));
        std::vector<PlatformRequest> requests = adapter->build_requests(endpoint, part, now);
        for (const PlatformRequest &r : requests) {
          std::vector<OutboxRow> mine;
          for (std::size_t i : r.rows) mine.push_back(part[i]);
          Answer answer;
          answer.status = 200;
          answer.body = c.answer;
          std::vector<RowVerdict> v = adapter->classify_rows(endpoint, answer, mine, now);
          for (const RowVerdict &x : v)
            if (x.verdict != Verdict::success) {
              std::fprintf(stderr, "%s: a success answer was classified %s (%s)\n", c.kind,
                           to_string(x.verdict), x.reason.c_str());
              return 1;
            }
          bytes += r.http.body.size();
          ++n_requests;
        }
        n_rows += static_cast<long>(part.size());
      }
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    std::printf("%s %.1f %.2f %.2f %.0f\n", c.kind, double(n_rows) / n_requests,
                elapsed / n_rows * 1e6, elapsed / n_requests * 1e6, double(bytes) / n_requests);
  }
  return 0;
}
