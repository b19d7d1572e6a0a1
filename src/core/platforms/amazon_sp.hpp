// Amazon Selling Partner API (Listings Items 2021-08-01) and Login with
// Amazon: the requests an amazon_sp destination sends and what their answers
// mean (pure functions), and AmazonAdapter, the destination kind "amazon_sp".
//
// Reference: test/mock/platforms.py (class Amazon) and issue 11.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/delivery/http_request.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/platform_common.hpp"

namespace pgves::core::platforms {

struct AmazonOptions {
  StoreIds store;
  std::string seller_id;
  std::vector<std::string> marketplace_ids;  // at least one
  std::string client_id;
  std::string client_secret;  // (secret)
  std::string refresh_token;  // (secret)
  std::string lwa_url;        // Login with Amazon token endpoint
  std::string product_type;   // default productType ("PRODUCT" when not given)
};

constexpr const char *amazon_default_lwa_url = "https://api.amazon.com/auth/o2/token";
constexpr const char *amazon_default_product_type = "PRODUCT";

// Required: tenant_id, store_id, seller_id, marketplace_ids (non-empty array
// of strings), client_id, client_secret, refresh_token. Optional: lwa_url
// (http(s) URL), product_type. Throws OptionError. check_url false skips
// parsing lwa_url again (stored options, checked when they were stored).
AmazonOptions amazon_options(const json::Value &options, bool check_url = true);

// platform_ref: {"sku"[, "product_type"]}. Throws OptionError.
struct AmazonRef {
  std::string sku;
  std::string product_type;  // "" : the destination's product_type
};
AmazonRef amazon_ref(const json::Value &platform_ref);

struct AmazonSkuUpdate {
  std::int64_t quantity = 0;
  AmazonRef ref;
  std::string idempotency_key;  // SP-API has none: a resend replaces with the same count
};

// PATCH {url}/listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=A,B
// (seller and SKU percent-encoded as path segments), header
// x-amz-access-token, body {"patches":[{"op":"replace","path":
// "/attributes/fulfillment_availability","value":[{"fulfillment_channel_code":
// "DEFAULT","quantity":n}]}],"productType":...}. One SKU per request.
HttpRequest amazon_patch_quantity(const AmazonOptions &options, std::string_view url,
                                  const AmazonSkuUpdate &update, std::string_view access_token);

// GET the same item with includedData=fulfillmentAvailability (reconciliation).
HttpRequest amazon_read_quantity(const AmazonOptions &options, std::string_view url,
                                 const AmazonRef &ref, std::string_view access_token);

// fulfillmentAvailability[DEFAULT].quantity of a 200 read; nullopt for a 404
// (the SKU is not listed). Throws Error("invalid_answer") otherwise.
std::optional<std::int64_t> amazon_parse_quantity(const Answer &answer);

// POST lwa_url, Content-Type application/x-www-form-urlencoded, body
// grant_type=refresh_token&refresh_token=&client_id=&client_secret=.
HttpRequest amazon_token_request(const AmazonOptions &options);

// 200: access_token, expires_at = now + expires_in s. 400 invalid_grant and
// 401 invalid_client: permanent (the credentials were refused); 429, 5xx, no
// answer: retry; other statuses permanent.
TokenAnswer amazon_parse_token(const Answer &answer, std::int64_t now_unix_ms);

// The wait one request takes at the rate x-amzn-RateLimit-Limit announces
// (requests per second): ceil(1000 / rate) ms, or -1 when absent or invalid.
std::int64_t amazon_rate_wait_ms(std::string_view rate_limit_header);

// A PATCH answer (rate_limit_header: x-amzn-RateLimit-Limit, "" when absent):
//   200 status ACCEPTED          success
//   200 status INVALID + issues  permanent (the issues' codes and messages)
//   200 other / no status        permanent
//   401, 403                     reauthenticate (expired or refused access token: get a new one)
//   429                          retry after Retry-After, else amazon_rate_wait_ms
//   5xx, 408, no answer          retry
//   other 4xx                    permanent (errors[0].code and message)
RowVerdict amazon_classify(const Answer &answer, std::string_view rate_limit_header,
                           std::int64_t now_unix_ms);

}  // namespace pgves::core::platforms

namespace pgves::core {

// Kind "amazon_sp". One patchListingsItem per row (a row is one SKU: Amazon
// holds one count per seller SKU, one_location_per_sku). The access token
// comes from Login with Amazon (token_request with the refresh token) and is
// handed back as Endpoint::access_token; without one, build_requests throws
// Error("no_access_token"). 401/403 are reauthenticate; 429 waits for
// Retry-After, else for the rate x-amzn-RateLimit-Limit announces.
// Amazon sends no signed webhooks pg_ves takes: verify_inbound throws
// Error("unsupported"). listing_key: the seller SKU.
class AmazonAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "amazon_sp"; }
  std::string_view description() const override { return "Amazon SP-API Listings Items"; }
  std::vector<std::string_view> option_names() const override {
    return {"store_id",      "seller_id",     "marketplace_ids", "client_id",
            "client_secret", "refresh_token", "lwa_url",         "product_type"};
  }
  std::vector<std::string_view> secret_option_names() const override {
    return {"client_secret", "refresh_token"};
  }
  void validate_url(std::string_view url) const override;
  std::vector<HeaderSpec> validate_options(const json::Value &options) const override;
  KindDefaults defaults() const override;
  bool is_platform() const override { return true; }
  std::vector<PlatformRequest> build_requests(const Endpoint &endpoint,
                                              const std::vector<OutboxRow> &rows,
                                              std::int64_t now_unix_ms) const override;
  std::vector<RowVerdict> classify(const Answer &answer, std::size_t row_count,
                                   std::int64_t now_unix_ms) const override;
  InboundCheck verify_inbound(std::string_view key, const InboundMessage &message,
                              std::int64_t now_unix_ms, std::int64_t tolerance_s) const override;
  void validate_listing(const json::Value &platform_ref, const json::Value &options) const override;
  std::string listing_key(const json::Value &platform_ref,
                          const json::Value &options) const override;
  bool one_location_per_sku() const override { return true; }
  std::optional<HttpRequest> token_request(const Endpoint &endpoint) const override;
  TokenAnswer parse_token(const Answer &answer, std::int64_t now_unix_ms) const override;
  std::vector<PlatformRequest> build_reads(const Endpoint &endpoint,
                                           const std::vector<ListingFacts> &listings,
                                           std::int64_t now_unix_ms) const override;
  ReadAnswer parse_reads(const Endpoint &endpoint, const Answer &answer,
                         const std::vector<const ListingFacts *> &listings,
                         std::int64_t now_unix_ms) const override;
};

}  // namespace pgves::core
