#include "core/crypto/crypto.hpp"

#include <sodium.h>

#include <mutex>
#include <new>
#include <utility>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::crypto {

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw Error("crypto_unavailable", "libsodium failed to initialize");
  });
}

SecretBytes::SecretBytes(std::size_t size) : size_(size) {
  init();
  data_ = static_cast<std::uint8_t *>(sodium_malloc(size));
  if (!data_) throw std::bad_alloc();
}

SecretBytes::~SecretBytes() {
  if (data_) sodium_free(data_);
}

SecretBytes::SecretBytes(SecretBytes &&other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes &SecretBytes::operator=(SecretBytes &&other) noexcept {
  if (this != &other) {
    if (data_) sodium_free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Hash32 sha256_32(ByteView message) {
  init();
  Hash32 out;
  crypto_hash_sha256(out.data(), message.data, message.size);
  return out;
}

bool constant_time_equal(ByteView a, ByteView b) {
  init();
  return a.size == b.size && sodium_memcmp(a.data, b.data, a.size) == 0;
}

Hash32 hmac_sha256_32(ByteView key, ByteView message) {
  init();
  // The streaming API, because the one-shot form fixes the key at 32 bytes
  // while webhook secrets come in any length.
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, key.data, key.size);
  crypto_auth_hmacsha256_update(&state, message.data, message.size);
  Hash32 out;
  crypto_auth_hmacsha256_final(&state, out.data());
  sodium_memzero(&state, sizeof state);
  return out;
}

Ed25519Keypair sign_seed_keypair(ByteView seed32) {
  if (seed32.size != crypto_sign_SEEDBYTES)
    throw Error("invalid_key", "an Ed25519 seed is 32 bytes, got " + std::to_string(seed32.size));
  Ed25519Keypair kp{{}, SecretBytes(crypto_sign_SECRETKEYBYTES)};
  crypto_sign_seed_keypair(kp.public_key.data(), kp.secret_key.data(), seed32.data);
  return kp;
}

Signature64 sign_detached_64(ByteView message, const SecretBytes &secret_key) {
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES)
    throw Error("invalid_key",
                "an Ed25519 secret key is 64 bytes, got " + std::to_string(secret_key.size()));
  init();
  Signature64 sig;
  crypto_sign_detached(sig.data(), nullptr, message.data, message.size, secret_key.data());
  return sig;
}

bool verify_detached(const Signature64 &signature, ByteView message,
                     const PublicKey32 &public_key) {
  init();
  return crypto_sign_verify_detached(signature.data(), message.data, message.size,
                                     public_key.data()) == 0;
}

std::string bin2hex(ByteView bin) {
  std::string out(bin.size * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), bin.data, bin.size);
  out.pop_back();
  return out;
}

std::string bin2hex0x(ByteView bin) { return "0x" + bin2hex(bin); }

std::vector<std::uint8_t> hex2bin(std::string_view hex) {
  if (hex.empty()) return {};
  std::vector<std::uint8_t> out(hex.size() / 2);
  const char *end = nullptr;
  std::size_t len = 0;
  if (hex.size() % 2 != 0 ||
      sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0 ||
      end != hex.data() + hex.size())
    throw Error("invalid_hex", "not a hex string of whole bytes");
  return out;
}

std::vector<std::uint8_t> hex2bin0x(std::string_view hex) {
  if (hex.substr(0, 2) != "0x") throw Error("invalid_hex", "hex value must start with 0x");
  return hex2bin(hex.substr(2));
}

std::string bin2base64(ByteView bin) {
  constexpr int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bin.size, variant), '\0');
  sodium_bin2base64(out.data(), out.size(), bin.data, bin.size, variant);
  out.pop_back();
  return out;
}

std::vector<std::uint8_t> base642bin(std::string_view b64) {
  std::vector<std::uint8_t> out(b64.size() / 4 * 3 + 3);
  const char *end = nullptr;
  std::size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != b64.data() + b64.size())
    throw Error("invalid_base64", "not padded standard base64");
  out.resize(len);
  return out;
}

}  // namespace pgves::core::crypto
