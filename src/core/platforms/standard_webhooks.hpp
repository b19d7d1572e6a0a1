#pragma once

#include <string>
#include <string_view>

namespace pgves::core::webhooks {

// Standard Webhooks signatures over "{msg_id}.{timestamp}.{body}".
//   whsec_<base64 key>   -> "v1,<base64 HMAC-SHA256>"
//   whsk_<base64 seed32> -> "v1a,<base64 Ed25519 signature>", verified with
//   whpk_<base64 public key>.
// Malformed secrets or keys throw Error("invalid_webhook_secret").

std::string sign_v1(std::string_view whsec_secret, std::string_view msg_id,
                    std::string_view timestamp, std::string_view body);
std::string sign_v1a(std::string_view whsk_secret, std::string_view msg_id,
                     std::string_view timestamp, std::string_view body);

// Picks v1 or v1a from the secret's prefix, so a destination only stores its secret.
std::string sign(std::string_view secret, std::string_view msg_id, std::string_view timestamp,
                 std::string_view body);

// The whpk_ public key that receivers of sign_v1a() need.
std::string public_key_for(std::string_view whsk_secret);

// True when any entry of the space-separated webhook-signature header is a
// valid signature under key (whsec_ for v1 entries, whpk_ for v1a entries).
// The timestamp's freshness is the caller's policy and is not checked here.
bool verify(std::string_view key, std::string_view msg_id, std::string_view timestamp,
            std::string_view body, std::string_view signature_header);

}  // namespace pgves::core::webhooks
