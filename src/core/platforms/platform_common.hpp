// What the four commerce platform adapters (shopify, tiktok_shop, amazon_sp,
// meta_catalog) share: URL and form encoding, reading their options, reading
// JSON answers, and the shape of an access token they obtain.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/ves/timestamp.hpp"

namespace pgves::core::platforms {

using Params = std::vector<std::pair<std::string, std::string>>;

// RFC 3986 percent-encoding: every byte except the unreserved characters
// (A-Z a-z 0-9 - . _ ~) becomes %XX with uppercase hex. Safe for one path
// segment (a '/' in a SKU becomes %2F), a query name or value, and a form field.
std::string percent_encode(std::string_view text);

// "a=1&b=2" with each name and value percent_encode'd, in the given order:
// a URL's query string, or an application/x-www-form-urlencoded body.
std::string form_encode(const Params &params);

// base (an http(s) URL without query or fragment; trailing '/' dropped)
// followed by path (which starts with '/').
std::string join_url(std::string_view base, std::string_view path);

// The path part of base ("" for "https://host", "/x" for "https://host/x/"),
// which every request path built on base starts with: what TikTok's sign covers.
std::string url_path(std::string_view base);

// Options. Each throws OptionError("invalid_option", ...) naming the option.
// required_string: present, a string, not empty, no control characters.
std::string required_string(const json::Value &options, std::string_view name,
                            std::string_view hint);
// optional_string: absent or null gives fallback; otherwise as required_string.
std::string optional_string(const json::Value &options, std::string_view name, std::string fallback,
                            std::string_view hint);

// tenant_id and store_id: required UUIDs (the VES ids of the one store a
// platform destination serves), returned in lowercase text form. Also
// refuses options that are not a JSON object.
struct StoreIds {
  std::string tenant_id;
  std::string store_id;
};
StoreIds store_ids_option(const json::Value &options);

// A JSON number that is an integer within +-2^53, or nullopt.
std::optional<std::int64_t> as_integer(const json::Value *value);
// A JSON string member of object, or nullptr.
const std::string *string_member(const json::Value *object, std::string_view key);
// json::parse, or nullopt instead of an exception.
std::optional<json::Value> try_parse(std::string_view text);

using core::AccessToken;
using core::TokenAnswer;

RowVerdict success();
RowVerdict retry(std::int64_t after_ms = -1, std::string reason = {});
RowVerdict permanent(std::string reason);
RowVerdict reauthenticate(std::string reason);
RowVerdict stale(std::string reason);

// An answer read by its HTTP status only (adapters::classify_status): no
// answer, 408/425/429/5xx retry with Retry-After, 410 gone, 401
// reauthenticate when reauthenticate_on_401, 2xx success, the rest permanent.
RowVerdict status_verdict(const Answer &answer, std::int64_t now_unix_ms,
                          bool reauthenticate_on_401 = false);

// --- what the four adapters share (ShopifyAdapter, TikTokAdapter, ...) ---

// The option set a request is built from: the kind options, the credentials
// over them, and the access token the deliverer holds (Endpoint::access_token)
// over the credentials' own. tenant_id lives in SQL, not in kind_options, and
// no request carries it: when absent, the nil UUID stands in so that the
// options parsers (which require it at create time) accept the set.
json::Value send_options(const Endpoint &endpoint);

// The url of a platform destination: the API base (http(s), no user
// information, no query or fragment); OptionError("invalid_url") whose hint
// gives example.
void validate_base_url(std::string_view url, std::string_view example);

// Platform kinds take neither "secret" nor "headers" (their credentials are
// their own options); OptionError("invalid_option") naming the kind.
void refuse_common_options(const json::Value &options, std::string_view kind);

// The worse of two verdicts for a row with several listings:
// gone > permanent > stale > reauthenticate > retry > success; of two
// retries the longer wait.
RowVerdict worst(const RowVerdict &a, const RowVerdict &b);

// One listing of one row of a batch, in row order then listing order.
struct Line {
  std::size_t row = 0;
  const ListingFacts *listing = nullptr;
};
// Throws Error("invalid_listing") for a row without listings.
std::vector<Line> lines_of(const std::vector<OutboxRow> &rows);
// Each row's verdict: the worst of its lines' (line_verdicts parallel to lines).
std::vector<RowVerdict> row_verdicts(const std::vector<Line> &lines,
                                     const std::vector<RowVerdict> &line_verdicts,
                                     std::size_t row_count);

// The value of an inbound header (name in any case), or nullptr.
const std::string *inbound_header(const InboundMessage &message, std::string_view name);

// Lowercase hex SHA-256 of text (a delivery id for platforms that send none).
std::string sha256_hex(std::string_view text);

// At most max bytes of a platform's text (not cutting a UTF-8 sequence), for reasons.
std::string clip(std::string_view text, std::size_t max = 200);

}  // namespace pgves::core::platforms
