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

// At most max bytes of a platform's text (not cutting a UTF-8 sequence), for reasons.
std::string clip(std::string_view text, std::size_t max = 200);

}  // namespace pgves::core::platforms
