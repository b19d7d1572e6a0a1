#include "core/platforms/platform_signatures.hpp"

#include <algorithm>
#include <cctype>

#include "core/crypto/crypto.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::platforms {
namespace {

crypto::Hash32 hmac(std::string_view key, std::string_view message) {
  return crypto::hmac_sha256_32(crypto::ByteView(key), crypto::ByteView(message));
}

// Lowercase hex digests compare case-insensitively: platforms document
// lowercase, some clients send uppercase. Anything else is not a signature.
bool equal_hex(const crypto::Hash32 &expected, std::string_view received) {
  if (received.size() != 2 * expected.size()) return false;
  std::string lowered(received);
  for (char &c : lowered) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const std::string want = crypto::bin2hex(crypto::ByteView(expected));
  return crypto::constant_time_equal(crypto::ByteView(want), crypto::ByteView(lowered));
}

}  // namespace

std::string tiktok_request_sign(std::string_view app_secret, std::string_view path,
                                const QueryParams &query, std::string_view body) {
  QueryParams signed_params;
  for (const auto &p : query)
    if (p.first != "sign" && p.first != "access_token") signed_params.push_back(p);
  std::stable_sort(signed_params.begin(), signed_params.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  std::string message(app_secret);
  message += path;
  for (const auto &p : signed_params) {
    message += p.first;
    message += p.second;
  }
  message += body;
  message += app_secret;
  return crypto::bin2hex(crypto::ByteView(hmac(app_secret, message)));
}

bool verify_shopify_webhook(std::string_view secret, std::string_view body,
                            std::string_view signature) {
  const std::string want = crypto::bin2base64(crypto::ByteView(hmac(secret, body)));
  return crypto::constant_time_equal(crypto::ByteView(want), crypto::ByteView(signature));
}

bool verify_tiktok_webhook(std::string_view app_key, std::string_view app_secret,
                           std::string_view body, std::string_view signature) {
  std::string message(app_key);
  message += body;
  return equal_hex(hmac(app_secret, message), signature);
}

bool verify_meta_webhook(std::string_view app_secret, std::string_view body,
                         std::string_view signature) {
  constexpr std::string_view prefix = "sha256=";
  if (signature.substr(0, prefix.size()) != prefix) return false;
  return equal_hex(hmac(app_secret, body), signature.substr(prefix.size()));
}

}  // namespace pgves::core::platforms
