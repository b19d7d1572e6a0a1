// TikTok Shop Open API (version 202309): the requests a tiktok_shop
// destination sends, its token refresh, and what their answers mean (pure
// functions), and TikTokAdapter, the destination kind "tiktok_shop".
//
// Reference: test/mock/platforms.py (class TikTok, TIKTOK_CODES) and issue 11.
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

struct TikTokOptions {
  StoreIds store;
  std::string app_key;
  std::string app_secret;     // signs requests (secret)
  std::string access_token;   // x-tts-access-token (secret; "" until refreshed)
  std::string refresh_token;  // (secret)
  std::string shop_cipher;
  std::string warehouse_id;  // default warehouse ("" : TikTok's default)
  std::string auth_url;      // token refresh base
};

constexpr const char *tiktok_default_auth_url = "https://auth.tiktok-shops.com";

// Required: tenant_id, store_id, app_key, app_secret, refresh_token,
// shop_cipher. Optional: access_token, warehouse_id, auth_url (an http(s) URL).
// Throws OptionError("invalid_option"/"invalid_url"). check_url false skips
// parsing auth_url again: options stored with the destination were checked
// when it was created or altered, and a request is built for every send.
TikTokOptions tiktok_options(const json::Value &options, bool check_url = true);

// platform_ref: {"product_id", "sku_id"[, "warehouse_id"]}, strings. Throws OptionError.
struct TikTokRef {
  std::string product_id;
  std::string sku_id;
  std::string warehouse_id;  // "" : the destination's warehouse_id
};
TikTokRef tiktok_ref(const json::Value &platform_ref);

struct TikTokSkuUpdate {
  std::int64_t quantity = 0;
  TikTokRef ref;
  std::string idempotency_key;  // TikTok has no idempotency key: a resend sets the same count
};

// One POST {url}/product/202309/products/{product_id}/inventory/update
// ?app_key=&shop_cipher=&timestamp=&sign= per product (in order of first
// appearance; PlatformRequest::rows are indexes into updates), header
// x-tts-access-token, body {"skus":[{"id","inventory":[{"quantity","warehouse_id"?}]}]}.
// sign is tiktok_request_sign over the path as sent and the exact body.
std::vector<PlatformRequest> tiktok_inventory_updates(const TikTokOptions &options,
                                                      std::string_view url,
                                                      const std::vector<TikTokSkuUpdate> &updates,
                                                      std::int64_t now_unix_ms);

// POST {url}/product/202309/inventory/search (signed like an update), body
// {"product_ids":[...]}: the read for reconciliation and stale handling.
HttpRequest tiktok_inventory_search(const TikTokOptions &options, std::string_view url,
                                    const std::vector<std::string> &product_ids,
                                    std::int64_t now_unix_ms);

// The available quantity per (product_id, sku_id, warehouse_id) of a code-0
// search answer (data.inventory[].skus[].warehouse_inventory[]). Throws
// Error("invalid_answer") for any other answer.
struct TikTokStock {
  std::string product_id;
  std::string sku_id;
  std::string warehouse_id;
  std::int64_t available = 0;
};
std::vector<TikTokStock> tiktok_parse_search(const Answer &answer);

// GET {auth_url}/api/v2/token/refresh?app_key=&app_secret=&refresh_token=&grant_type=refresh_token
HttpRequest tiktok_token_refresh(const TikTokOptions &options);

// code 0: data.access_token, access_token_expire_in (unix seconds), refresh_token.
// Other codes and statuses as tiktok_classify (refused credentials: permanent).
TokenAnswer tiktok_parse_token(const Answer &answer, std::int64_t now_unix_ms);

// The code table (test/mock/README.md). 0 and 106001 are TikTok's published
// codes; the others are the mock's choice within TikTok's code families and
// are ASSUMED here until checked against TikTok's error-code reference.
//   0                      success
//   105001, 105002         reauthenticate (token unknown / expired: refresh it)
//   106001 106002 106004   permanent (sign, app_key, shop_cipher: configuration)
//   106003                 permanent (timestamp outside the window: the clock)
//   36009004               retry (rate limited; Retry-After when given)
//   36009005               retry (internal error)
//   36009003 12052048 12052049 12052050 36004004 36004005   permanent
//   any other code         by HTTP status: 429/5xx retry, 401 reauthenticate, else permanent
//   no JSON code           by HTTP status as above
// Every SKU of the request gets the same verdict (TikTok answers per call).
RowVerdict tiktok_classify_one(const Answer &answer, std::int64_t now_unix_ms);
std::vector<RowVerdict> tiktok_classify(const Answer &answer, std::size_t row_count,
                                        std::int64_t now_unix_ms);

// Largest number of SKU lines one inventory update carries (pg_ves's choice;
// TikTok documents no lower bound it would refuse).
constexpr std::size_t tiktok_max_skus = 100;
// Largest number of product ids one inventory search asks for.
constexpr std::size_t tiktok_max_search = 20;

}  // namespace pgves::core::platforms

namespace pgves::core {

// Kind "tiktok_shop". One inventory update per product_id (rows of one
// product share it, up to tiktok_max_skus lines; all listings of a row must
// be of one product). TikTok answers per call: every row of a request gets
// its verdict. Access tokens expire and are renewed with the refresh token
// (token_request); TikTok rotates refresh tokens, the new one comes back in
// AccessToken::refresh_token. Inbound: Authorization = hex HMAC-SHA256 under
// app_secret over app_key + body, so inbound_key() is app_key + "\n" +
// app_secret. listing_key: sku_id + "@" + warehouse ("" for the default).
class TikTokAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "tiktok_shop"; }
  std::string_view description() const override { return "TikTok Shop Open API 202309"; }
  std::vector<std::string_view> option_names() const override {
    return {"store_id",      "app_key",     "app_secret",   "access_token",
            "refresh_token", "shop_cipher", "warehouse_id", "auth_url"};
  }
  std::vector<std::string_view> secret_option_names() const override {
    return {"app_secret", "access_token", "refresh_token"};
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
  std::optional<HttpRequest> token_request(const Endpoint &endpoint) const override;
  TokenAnswer parse_token(const Answer &answer, std::int64_t now_unix_ms) const override;
  std::vector<PlatformRequest> build_reads(const Endpoint &endpoint,
                                           const std::vector<ListingFacts> &listings,
                                           std::int64_t now_unix_ms) const override;
  ReadAnswer parse_reads(const Endpoint &endpoint, const Answer &answer,
                         const std::vector<const ListingFacts *> &listings,
                         std::int64_t now_unix_ms) const override;
  InboundContent parse_inbound(const InboundMessage &message,
                               const json::Value &options) const override;
  std::string inbound_key(const json::Value &options) const override;
};

}  // namespace pgves::core
