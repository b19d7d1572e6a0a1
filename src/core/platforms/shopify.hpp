// Shopify Admin GraphQL: the requests a shopify destination sends and what
// their answers mean (pure functions), and ShopifyAdapter, the destination
// kind "shopify" built on them.
//
// Reference: test/mock/platforms.py (class Shopify) and issue 11, "Outbound".
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

// The options of a shopify destination, validated.
struct ShopifyOptions {
  StoreIds store;
  std::string access_token;    // X-Shopify-Access-Token (secret)
  std::string api_version;     // "YYYY-MM", at least shopify_min_api_version
  std::string location_id;     // default location gid ("" when not given)
  std::string webhook_secret;  // inbound X-Shopify-Hmac-Sha256 key ("" when not given)
};

// inventorySetQuantities needs changeFromQuantity, which Shopify requires from 2026-04.
constexpr const char *shopify_min_api_version = "2026-04";
constexpr const char *shopify_default_api_version = "2026-04";

// Throws OptionError("invalid_option") with a hint.
ShopifyOptions shopify_options(const json::Value &options);

// platform_ref of a mapped listing: {"inventory_item_id": "gid://shopify/InventoryItem/N"
// [, "location_id": "gid://shopify/Location/N"]}. Throws OptionError.
struct ShopifyRef {
  std::string inventory_item_id;
  std::string location_id;  // "" : the destination's location_id
};
ShopifyRef shopify_ref(const json::Value &platform_ref);

// One SKU's update.
struct ShopifySkuUpdate {
  std::int64_t quantity = 0;  // the sellable count to set
  ShopifyRef ref;
  std::optional<std::int64_t> last_known;  // changeFromQuantity; nullopt sends null
  std::string idempotency_key;             // the same on every retry of this update
};

// POST {url}/admin/api/{version}/graphql.json: one inventorySetQuantities
// mutation for every update (the quantities in the order given), input name
// "available", reason "correction", referenceDocumentUri
// "pgves://store/{store_id}", with @idempotent(key:) = shopify_call_key(...).
// Throws Error("invalid_option") when an update has no location and the
// destination no location_id, or when updates is empty.
HttpRequest shopify_set_quantities(const ShopifyOptions &options, std::string_view url,
                                   const std::vector<ShopifySkuUpdate> &updates);

// The @idempotent key of a call: "pgves-" and 40 hex digits of SHA-256 over
// the updates' idempotency keys and the mutation input. A retry of the same
// call reuses it; a call with other input (a new count, a new
// changeFromQuantity after a stale answer) gets a new one, as Shopify requires.
std::string shopify_call_key(const ShopifyOptions &options,
                             const std::vector<ShopifySkuUpdate> &updates);

// POST graphql.json: the "available" quantity of each (item, location).
HttpRequest shopify_read_quantities(const ShopifyOptions &options, std::string_view url,
                                    const std::vector<ShopifyRef> &refs);

// The quantities a read answered, in refs order (nullopt: unknown item or
// level). Throws Error("invalid_answer") unless the answer is a 200 with data.
std::vector<std::optional<std::int64_t>> shopify_parse_quantities(const Answer &answer,
                                                                  std::size_t count);

// One verdict per update of a shopify_set_quantities call (update_count):
//   200, userErrors empty               success
//   200, userErrors (all or nothing)    the line's error: CHANGE_FROM_QUANTITY_STALE
//                                       stale, other codes permanent; lines without
//                                       an error retry (nothing was applied); an
//                                       error without a line: permanent for all
//   200, errors[].extensions.code THROTTLED  retry after (requested cost -
//                                       currentlyAvailable) / restoreRate seconds
//   200, errors INTERNAL_SERVER_ERROR   retry; other top-level errors permanent
//   401                                 reauthenticate (token revoked or expired)
//   403, 404, other 4xx                 permanent (missing scope, old api_version)
//   5xx, 429, no answer                 retry (Retry-After honoured)
std::vector<RowVerdict> shopify_classify(const Answer &answer, std::size_t update_count,
                                         std::int64_t now_unix_ms);

// Largest number of quantities one inventorySetQuantities call carries.
constexpr std::size_t shopify_max_quantities = 250;
// Largest number of levels one read asks for.
constexpr std::size_t shopify_max_reads = 50;

}  // namespace pgves::core::platforms

namespace pgves::core {

// Kind "shopify". Rows share one inventorySetQuantities call (up to
// shopify_max_quantities lines; a call never holds the same item and location
// twice); a row's verdict is the worst of its lines'. The access token is
// long-lived: a 401 is reauthenticate and nothing renews it here (the
// deliverer pauses the destination). Inbound: X-Shopify-Hmac-Sha256 under
// webhook_secret; inventory_levels/update and the orders/* topics.
// listing_key: "gid://shopify/InventoryItem/N@gid://shopify/Location/M".
class ShopifyAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "shopify"; }
  std::string_view description() const override { return "Shopify Admin GraphQL"; }
  std::vector<std::string_view> option_names() const override {
    return {"store_id", "access_token", "api_version", "location_id", "webhook_secret"};
  }
  std::vector<std::string_view> secret_option_names() const override {
    return {"access_token", "webhook_secret"};
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
  std::vector<RowVerdict> classify_rows(const Endpoint &endpoint, const Answer &answer,
                                        const std::vector<OutboxRow> &rows,
                                        std::int64_t now_unix_ms) const override;
  InboundCheck verify_inbound(std::string_view key, const InboundMessage &message,
                              std::int64_t now_unix_ms, std::int64_t tolerance_s) const override;
  void validate_listing(const json::Value &platform_ref, const json::Value &options) const override;
  std::string listing_key(const json::Value &platform_ref,
                          const json::Value &options) const override;
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
