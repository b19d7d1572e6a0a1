// Meta (Facebook / Instagram) catalog, Graph API Catalog Batch API: the
// requests a meta_catalog destination sends and what their answers mean.
// Pure functions; not registered as a destination kind yet.
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

}  // namespace pgves::core::platforms
