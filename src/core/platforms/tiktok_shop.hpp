// TikTok Shop Open API (version 202309): the requests a tiktok_shop
// destination sends, its token refresh, and what their answers mean. Pure
// functions; not registered as a destination kind yet.
//
// Reference: test/mock/platforms.py (class TikTok, TIKTOK_CODES) and issue 11.
#pragma once

#include <cstdint>
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
// Throws OptionError("invalid_option"/"invalid_url").
TikTokOptions tiktok_options(const json::Value &options);

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

}  // namespace pgves::core::platforms
