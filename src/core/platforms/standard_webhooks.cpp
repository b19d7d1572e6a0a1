#include "core/platforms/standard_webhooks.hpp"

#include <algorithm>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/base/error.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::webhooks {

namespace {

std::vector<std::uint8_t> decode_key(std::string_view key, std::string_view prefix,
                                     std::size_t required_size) {
  if (key.substr(0, prefix.size()) != prefix)
    throw Error("invalid_webhook_secret", "webhook key must start with " + std::string(prefix));
  std::vector<std::uint8_t> bin;
  try {
    bin = crypto::base642bin(key.substr(prefix.size()));
  } catch (const Error &) {
    throw Error("invalid_webhook_secret",
                "webhook key after " + std::string(prefix) + " is not base64");
  }
  if (bin.empty() || (required_size != 0 && bin.size() != required_size))
    throw Error("invalid_webhook_secret",
                "webhook key after " + std::string(prefix) + " has the wrong length");
  return bin;
}

std::string signed_content(std::string_view msg_id, std::string_view timestamp,
                           std::string_view body) {
  std::string content;
  content.reserve(msg_id.size() + timestamp.size() + body.size() + 2);
  content.append(msg_id).append(1, '.').append(timestamp).append(1, '.').append(body);
  return content;
}

crypto::Ed25519Keypair keypair(std::string_view whsk_secret) {
  auto seed = decode_key(whsk_secret, "whsk_", 32);
  auto kp = crypto::sign_seed_keypair(seed);
  std::fill(seed.begin(), seed.end(), 0);
  return kp;
}

}  // namespace

std::string sign_v1(std::string_view whsec_secret, std::string_view msg_id,
                    std::string_view timestamp, std::string_view body) {
  const auto key = decode_key(whsec_secret, "whsec_", 0);
  return "v1," +
         crypto::bin2base64(crypto::hmac_sha256_32(key, signed_content(msg_id, timestamp, body)));
}

std::string sign_v1a(std::string_view whsk_secret, std::string_view msg_id,
                     std::string_view timestamp, std::string_view body) {
  const auto kp = keypair(whsk_secret);
  return "v1a," + crypto::bin2base64(crypto::sign_detached_64(
                      signed_content(msg_id, timestamp, body), kp.secret_key));
}

std::string sign(std::string_view secret, std::string_view msg_id, std::string_view timestamp,
                 std::string_view body) {
  if (secret.substr(0, 5) == "whsk_") return sign_v1a(secret, msg_id, timestamp, body);
  return sign_v1(secret, msg_id, timestamp, body);
}

std::string public_key_for(std::string_view whsk_secret) {
  return "whpk_" + crypto::bin2base64(keypair(whsk_secret).public_key);
}

bool verify(std::string_view key, std::string_view msg_id, std::string_view timestamp,
            std::string_view body, std::string_view signature_header) {
  const bool ed25519 = key.substr(0, 5) == "whpk_";
  const std::string_view version = ed25519 ? "v1a," : "v1,";
  const auto key_bin = ed25519 ? decode_key(key, "whpk_", 32) : decode_key(key, "whsec_", 0);
  const std::string content = signed_content(msg_id, timestamp, body);
  const auto matches = [&](const std::vector<std::uint8_t> &sig) {
    if (!ed25519) return crypto::constant_time_equal(sig, crypto::hmac_sha256_32(key_bin, content));
    if (sig.size() != 64) return false;
    crypto::Signature64 s;
    crypto::PublicKey32 public_key;
    std::copy(sig.begin(), sig.end(), s.begin());
    std::copy(key_bin.begin(), key_bin.end(), public_key.begin());
    return crypto::verify_detached(s, content, public_key);
  };
  // Senders list several signatures while rotating keys; one valid entry suffices.
  while (!signature_header.empty()) {
    const std::size_t space = signature_header.find(' ');
    const std::string_view entry = signature_header.substr(0, space);
    signature_header =
        space == std::string_view::npos ? std::string_view() : signature_header.substr(space + 1);
    if (entry.substr(0, version.size()) != version) continue;
    try {
      if (matches(crypto::base642bin(entry.substr(version.size())))) return true;
    } catch (const Error &) {
      // An undecodable entry is simply not a match.
    }
  }
  return false;
}

}  // namespace pgves::core::webhooks
