// The signatures commerce platforms put on requests and webhooks, computed and
// checked here so that every platform adapter uses one tested implementation.
// Comparisons of received signatures take constant time.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgves::core::platforms {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// TikTok Shop API request signature (the `sign` query parameter): lowercase
// hex HMAC-SHA256 keyed by the app secret over
//   app_secret + path + name1 value1 name2 value2 ... + body + app_secret
// with the query parameters other than `sign` and `access_token`, sorted by
// name, and the exact body bytes (empty for a request without a body).
std::string tiktok_request_sign(std::string_view app_secret, std::string_view path,
                                const QueryParams &query, std::string_view body);

// Inbound webhooks. Each returns whether `signature` (the header's value as
// received) is the platform's signature of the raw body.
//   Shopify  X-Shopify-Hmac-Sha256: base64 HMAC-SHA256(webhook secret, body)
//   TikTok   Authorization: hex HMAC-SHA256(app secret, app_key + body)
//   Meta     X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256(app secret, body)
bool verify_shopify_webhook(std::string_view secret, std::string_view body,
                            std::string_view signature);
bool verify_tiktok_webhook(std::string_view app_key, std::string_view app_secret,
                           std::string_view body, std::string_view signature);
bool verify_meta_webhook(std::string_view app_secret, std::string_view body,
                         std::string_view signature);

}  // namespace pgves::core::platforms
