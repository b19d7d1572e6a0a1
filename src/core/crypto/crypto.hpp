#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/error.hpp"

namespace pgves::core::crypto {

using Hash32 = std::array<std::uint8_t, 32>;
using PublicKey32 = std::array<std::uint8_t, 32>;
using Signature64 = std::array<std::uint8_t, 64>;

// A read-only view of bytes, so callers can pass strings, arrays and vectors
// alike without copying.
struct ByteView {
  const std::uint8_t *data;
  std::size_t size;

  ByteView(const std::uint8_t *d, std::size_t n) : data(d), size(n) {}
  ByteView(std::string_view s)
      : data(reinterpret_cast<const std::uint8_t *>(s.data())), size(s.size()) {}
  ByteView(const std::string &s) : ByteView(std::string_view(s)) {}
  ByteView(const std::vector<std::uint8_t> &v) : data(v.data()), size(v.size()) {}
  template <std::size_t N>
  ByteView(const std::array<std::uint8_t, N> &a) : data(a.data()), size(N) {}
};

// Key material in guarded, locked memory (sodium_malloc) that is wiped on
// release; move-only so a secret never has two owners.
class SecretBytes {
 public:
  explicit SecretBytes(std::size_t size);
  ~SecretBytes();
  SecretBytes(SecretBytes &&other) noexcept;
  SecretBytes &operator=(SecretBytes &&other) noexcept;
  SecretBytes(const SecretBytes &) = delete;
  SecretBytes &operator=(const SecretBytes &) = delete;

  std::uint8_t *data() { return data_; }
  const std::uint8_t *data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::uint8_t *data_ = nullptr;
  std::size_t size_ = 0;
};

// Runs sodium_init() exactly once; every function below calls it first.
void init();

Hash32 sha256_32(ByteView message);

// sodium_memcmp: equal sizes and contents, in time independent of the contents.
bool constant_time_equal(ByteView a, ByteView b);
Hash32 hmac_sha256_32(ByteView key, ByteView message);

// secret_key is libsodium's 64-byte form (seed followed by the public key).
struct Ed25519Keypair {
  PublicKey32 public_key;
  SecretBytes secret_key;
};
Ed25519Keypair sign_seed_keypair(ByteView seed32);
Signature64 sign_detached_64(ByteView message, const SecretBytes &secret_key);
bool verify_detached(const Signature64 &signature, ByteView message, const PublicKey32 &public_key);

// Lowercase hex; the 0x form is the one VES v1 uses in JSON.
std::string bin2hex(ByteView bin);
std::string bin2hex0x(ByteView bin);
// Either case is accepted; anything else (odd length, stray characters, a
// missing 0x in the 0x form) throws Error("invalid_hex").
std::vector<std::uint8_t> hex2bin(std::string_view hex);
std::vector<std::uint8_t> hex2bin0x(std::string_view hex);

template <std::size_t N>
std::array<std::uint8_t, N> hex2bin0x_array(std::string_view hex) {
  const auto bin = hex2bin0x(hex);
  if (bin.size() != N)
    throw Error("invalid_hex", "expected " + std::to_string(N) + " bytes of hex, got " +
                                   std::to_string(bin.size()));
  std::array<std::uint8_t, N> out;
  std::copy(bin.begin(), bin.end(), out.begin());
  return out;
}

// Standard, padded base64 (RFC 4648 section 4); decoding throws
// Error("invalid_base64") unless all of the input is well-formed.
std::string bin2base64(ByteView bin);
std::vector<std::uint8_t> base642bin(std::string_view b64);

}  // namespace pgves::core::crypto
