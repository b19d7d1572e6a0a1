#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/crypto/crypto.hpp"

using pgves::core::Error;
namespace crypto = pgves::core::crypto;

namespace {

std::vector<std::uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

}  // namespace

TEST(Crypto, Sha256KnownAnswer) {
  EXPECT_EQ(crypto::bin2hex(crypto::sha256_32(std::string("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(crypto::bin2hex(crypto::sha256_32(std::string())),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Crypto, HmacSha256Rfc4231) {
  EXPECT_EQ(crypto::bin2hex(crypto::hmac_sha256_32(std::string("Jefe"),
                                                   std::string("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Case 6: a key longer than the block size.
  EXPECT_EQ(crypto::bin2hex(crypto::hmac_sha256_32(
                std::vector<std::uint8_t>(131, 0xaa),
                std::string("Test Using Larger Than Block-Size Key - Hash Key First"))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(Crypto, Ed25519Rfc8032TestOne) {
  const auto seed =
      crypto::hex2bin("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  const auto kp = crypto::sign_seed_keypair(seed);
  EXPECT_EQ(crypto::bin2hex(kp.public_key),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  ASSERT_EQ(kp.secret_key.size(), 64u);
  const auto sig = crypto::sign_detached_64(std::string(), kp.secret_key);
  EXPECT_EQ(crypto::bin2hex(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
            "701cf9b46bd25bf5f0"
            "595bbe24655141438e7a100b");
  EXPECT_TRUE(crypto::verify_detached(sig, std::string(), kp.public_key));
}

TEST(Crypto, TamperedSignatureFailsVerify) {
  const auto kp = crypto::sign_seed_keypair(std::vector<std::uint8_t>(32, 7));
  const std::string msg = "ves event";
  auto sig = crypto::sign_detached_64(msg, kp.secret_key);
  ASSERT_TRUE(crypto::verify_detached(sig, msg, kp.public_key));
  EXPECT_FALSE(crypto::verify_detached(sig, std::string("ves event!"), kp.public_key));
  sig[10] ^= 1;
  EXPECT_FALSE(crypto::verify_detached(sig, msg, kp.public_key));
  EXPECT_THROW(crypto::sign_seed_keypair(std::vector<std::uint8_t>(31)), Error);
  EXPECT_THROW(crypto::sign_detached_64(msg, crypto::SecretBytes(32)), Error);
}

TEST(Crypto, SecretBytesMoves) {
  crypto::SecretBytes a(16);
  a.data()[0] = 42;
  crypto::SecretBytes b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.size(), 16u);
  EXPECT_EQ(b.data()[0], 42);
  crypto::SecretBytes c(1);
  c = std::move(b);
  EXPECT_EQ(c.size(), 16u);
  EXPECT_EQ(c.data()[0], 42);
}

TEST(Crypto, Hex) {
  const std::vector<std::uint8_t> bin{0x00, 0xab, 0xff};
  EXPECT_EQ(crypto::bin2hex(bin), "00abff");
  EXPECT_EQ(crypto::bin2hex0x(bin), "0x00abff");
  EXPECT_EQ(crypto::hex2bin("00ABff"), bin);
  EXPECT_EQ(crypto::hex2bin0x("0x00abff"), bin);
  EXPECT_TRUE(crypto::hex2bin("").empty());
  for (const char *bad : {"0", "0g", "00 ", " 00", "0x00", "00:11"})
    EXPECT_THROW(crypto::hex2bin(bad), Error) << bad;
  EXPECT_THROW(crypto::hex2bin0x("00abff"), Error);
  EXPECT_THROW(crypto::hex2bin0x_array<4>("0x00abff"), Error);
  EXPECT_EQ(crypto::hex2bin0x_array<3>("0x00abff")[1], 0xab);
}

TEST(Crypto, Base64Rfc4648) {
  const std::pair<const char *, const char *> cases[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto &[plain, encoded] : cases) {
    EXPECT_EQ(crypto::bin2base64(std::string(plain)), encoded);
    EXPECT_EQ(crypto::base642bin(encoded), bytes(plain));
  }
  EXPECT_EQ(crypto::base642bin("+/8="), (std::vector<std::uint8_t>{0xfb, 0xff}));
  for (const char *bad : {"Zg", "Zg=", "Z===", "Zm9v!", "-_8=", "Zm9v Zg==", "Zg==Zg=="})
    EXPECT_THROW(crypto::base642bin(bad), Error) << bad;
}

TEST(Crypto, ConstantTimeEqual) {
  EXPECT_TRUE(crypto::constant_time_equal(std::string("abc"), std::string("abc")));
  EXPECT_FALSE(crypto::constant_time_equal(std::string("abc"), std::string("abd")));
  EXPECT_FALSE(crypto::constant_time_equal(std::string("abc"), std::string("ab")));
}
