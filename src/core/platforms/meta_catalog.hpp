// Meta (Facebook / Instagram) catalog, Graph API Catalog Batch API: the
// requests a meta_catalog destination sends and what their answers mean.
// Pure functions, and MetaAdapter, the destination kind "meta_catalog".
//
// Reference: test/mock/platforms.py (class Meta) and issue 11.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/delivery/http_request.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/platform_common.hpp"

namespace pgves::core::platforms {

struct MetaOptions {
  StoreIds store;
  std::string catalog_id;
  std::string access_token;  // (secret)
  std::string api_version;   // "vN.M"
  std::string app_secret;    // inbound X-Hub-Signature-256 key ("" when not given)
};

constexpr const char *meta_default_api_version = "v23.0";
// The Catalog Batch API takes at most this many requests per call.
constexpr std::size_t meta_batch_limit = 5000;

// Required: tenant_id, store_id, catalog_id (digits), access_token.
// Optional: api_version ("vN.M"), app_secret. Throws OptionError.
MetaOptions meta_options(const json::Value &options);

// platform_ref: {"retailer_id"}. Throws OptionError.
struct MetaRef {
  std::string retailer_id;
};
MetaRef meta_ref(const json::Value &platform_ref);

struct MetaSkuUpdate {
  std::int64_t quantity = 0;
  MetaRef ref;
  std::string idempotency_key;  // the batch API has none: a resend sets the same count
};

// POST {url}/{api_version}/{catalog_id}/items_batch, JSON body
// {"access_token", "item_type":"PRODUCT_ITEM", "requests":[{"data":{"id",
// "quantity_to_sell_on_facebook"},"method":"UPDATE"}]}, at most batch_limit
// updates per request (PlatformRequest::rows: indexes into updates; line i of
// a request is its rows[i]).
std::vector<PlatformRequest> meta_items_batch(const MetaOptions &options, std::string_view url,
                                              const std::vector<MetaSkuUpdate> &updates,
                                              std::size_t batch_limit = meta_batch_limit);

// GET {url}/{api_version}/{catalog_id}/check_batch_request_status?handle=,
// the token in Authorization: Bearer (not in the URL).
HttpRequest meta_batch_status(const MetaOptions &options, std::string_view url,
                              std::string_view handle);

// GET {url}/{api_version}/{catalog_id}/products?filter={"retailer_id":{"is_any":[...]}}
// &fields=retailer_id,quantity_to_sell_on_facebook&limit=N, token in
// Authorization: Bearer: the read for reconciliation (one page of N items;
// paging.next is not followed).
HttpRequest meta_read_products(const MetaOptions &options, std::string_view url,
                               const std::vector<std::string> &retailer_ids);

// (retailer_id, quantity_to_sell_on_facebook) of each item a 200 read lists.
// Throws Error("invalid_answer") for any other answer.
std::vector<std::pair<std::string, std::int64_t>> meta_parse_products(const Answer &answer);

// An error answer {"error":{code, error_subcode, message}} (or no answer):
//   code 4, 17, 32, 613, 80004   retry (rate limits; Retry-After when given)
//   code 1, 2                    retry (transient)
//   code 190 (any subcode)       reauthenticate: the token expired (463) or is
//                                invalid; Meta has no refresh, so the deliverer
//                                pauses the destination and raises an alert
//   other codes                  permanent; no error object: by HTTP status
RowVerdict meta_classify_error(const Answer &answer, std::int64_t now_unix_ms);

// An items_batch answer: 200 {"handles":[...]} accepted (success for every
// line, pending the status check of handles); otherwise meta_classify_error
// for every line.
struct MetaBatchAnswer {
  std::vector<RowVerdict> rows;
  std::vector<std::string> handles;
};
MetaBatchAnswer meta_classify_batch(const Answer &answer, std::size_t line_count,
                                    std::int64_t now_unix_ms);

// A check_batch_request_status answer for a batch of line_count lines whose
// retailer ids are retailer_ids (line order): status "finished": success,
// except the lines in errors[] (by line, else by id), permanent with Meta's
// message; other statuses ("started", "in_progress"): finished = false;
// an error answer: meta_classify_error for every line.
struct MetaBatchStatus {
  bool finished = false;
  std::vector<RowVerdict> rows;  // when finished or on an error answer
};
MetaBatchStatus meta_classify_status(const Answer &answer,
                                     const std::vector<std::string> &retailer_ids,
                                     std::int64_t now_unix_ms);

// Largest number of retailer ids one products read asks for.
constexpr std::size_t meta_max_reads = 100;

}  // namespace pgves::core::platforms

namespace pgves::core {

// Kind "meta_catalog". Rows share one items_batch call (up to
// meta_batch_limit lines, a retailer id once per call). An accepted batch
// (200 with handles) is success for its rows, carrying the handle as
// follow_up: the worker asks check_batch_request_status about it later
// (follow_up_request, classify_follow_up) and marks the listings Meta
// refused per item as failed. The access token is long-lived: code 190 is reauthenticate and
// nothing renews it (the deliverer pauses the destination). Inbound:
// X-Hub-Signature-256 under app_secret. listing_key: the retailer id.
class MetaAdapter final : public Adapter {
 public:
  std::string_view kind() const override { return "meta_catalog"; }
  std::string_view description() const override { return "Meta catalog Batch API"; }
  std::vector<std::string_view> option_names() const override {
    return {"store_id", "catalog_id", "access_token", "api_version", "app_secret"};
  }
  std::vector<std::string_view> secret_option_names() const override {
    return {"access_token", "app_secret"};
  }
  void validate_url(std::string_view url) const override;
  std::vector<HeaderSpec> validate_options(const json::Value &options) const override;
  KindDefaults defaults() const override;
  std::size_t max_rows_per_request() const override;
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
  bool one_location_per_sku() const override { return true; }
  std::vector<PlatformRequest> build_reads(const Endpoint &endpoint,
                                           const std::vector<ListingFacts> &listings,
                                           std::int64_t now_unix_ms) const override;
  HttpRequest follow_up_request(const Endpoint &endpoint, std::string_view handle) const override;
  FollowUpAnswer classify_follow_up(const Endpoint &endpoint, const Answer &answer,
                                    const std::vector<std::string> &line_keys,
                                    std::int64_t now_unix_ms) const override;
  ReadAnswer parse_reads(const Endpoint &endpoint, const Answer &answer,
                         const std::vector<const ListingFacts *> &listings,
                         std::int64_t now_unix_ms) const override;
  InboundContent parse_inbound(const InboundMessage &message,
                               const json::Value &options) const override;
  std::string inbound_key(const json::Value &options) const override;
};

}  // namespace pgves::core
