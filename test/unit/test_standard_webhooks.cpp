#include <gtest/gtest.h>

#include <string>

#include "core/crypto/crypto.hpp"
#include "core/base/error.hpp"
#include "core/platforms/standard_webhooks.hpp"
#include "vectors.hpp"

using pgves::core::Error;
namespace crypto = pgves::core::crypto;
namespace webhooks = pgves::core::webhooks;

namespace {

struct HmacVector {
  std::string secret, id, timestamp, body, signature;
};

HmacVector hmac_vector() {
  const auto all = pgves::test::load_vector_json("standard_webhooks.json");
  const auto &v = *all.find("hmac_v1");
  return {v.find("secret")->as_string(), v.find("webhook_id")->as_string(),
          v.find("webhook_timestamp")->as_string(), v.find("body")->as_string(),
          v.find("webhook_signature")->as_string()};
}

const std::string seed_secret = "whsk_" + crypto::bin2base64(std::string(32, '\x07'));

}  // namespace

TEST(StandardWebhooks, V1SignatureMatchesVector) {
  const HmacVector v = hmac_vector();
  EXPECT_EQ(crypto::base642bin(v.secret.substr(6)).size(), 24u);
  EXPECT_EQ(webhooks::sign_v1(v.secret, v.id, v.timestamp, v.body), v.signature);
  EXPECT_EQ(webhooks::sign(v.secret, v.id, v.timestamp, v.body), v.signature);
  EXPECT_TRUE(webhooks::verify(v.secret, v.id, v.timestamp, v.body, v.signature));
  EXPECT_TRUE(
      webhooks::verify(v.secret, v.id, v.timestamp, v.body, "v1,bm90IGl0 v1a,eA== " + v.signature));
}

TEST(StandardWebhooks, V1TamperingFails) {
  const HmacVector v = hmac_vector();
  EXPECT_FALSE(webhooks::verify(v.secret, v.id, v.timestamp, v.body + " ", v.signature));
  EXPECT_FALSE(webhooks::verify(v.secret, v.id, "1614265331", v.body, v.signature));
  EXPECT_FALSE(webhooks::verify(v.secret, "msg_other", v.timestamp, v.body, v.signature));
  EXPECT_FALSE(
      webhooks::verify(v.secret, v.id, v.timestamp, v.body, "v1a," + v.signature.substr(3)));
  EXPECT_FALSE(webhooks::verify(v.secret, v.id, v.timestamp, v.body, ""));
  EXPECT_FALSE(webhooks::verify(v.secret, v.id, v.timestamp, v.body, "v1,%%%"));
  EXPECT_FALSE(webhooks::verify("whsec_" + crypto::bin2base64(std::string(24, 'k')), v.id,
                                v.timestamp, v.body, v.signature));
}

TEST(StandardWebhooks, V1aEd25519) {
  const std::string public_key = webhooks::public_key_for(seed_secret);
  ASSERT_EQ(public_key.rfind("whpk_", 0), 0u);
  const auto kp = crypto::sign_seed_keypair(std::string(32, '\x07'));
  EXPECT_EQ(public_key, "whpk_" + crypto::bin2base64(kp.public_key));

  const std::string sig = webhooks::sign_v1a(seed_secret, "msg_1", "1700000000", "{\"a\":1}");
  ASSERT_EQ(sig.rfind("v1a,", 0), 0u);
  EXPECT_EQ(webhooks::sign(seed_secret, "msg_1", "1700000000", "{\"a\":1}"), sig);
  const auto raw = crypto::base642bin(sig.substr(4));
  ASSERT_EQ(raw.size(), 64u);
  crypto::Signature64 s;
  std::copy(raw.begin(), raw.end(), s.begin());
  EXPECT_TRUE(crypto::verify_detached(s, std::string("msg_1.1700000000.{\"a\":1}"), kp.public_key));

  EXPECT_TRUE(webhooks::verify(public_key, "msg_1", "1700000000", "{\"a\":1}", sig));
  EXPECT_TRUE(webhooks::verify(public_key, "msg_1", "1700000000", "{\"a\":1}", "v1,AAAA " + sig));
  EXPECT_FALSE(webhooks::verify(public_key, "msg_1", "1700000000", "{\"a\":2}", sig));
  EXPECT_FALSE(
      webhooks::verify(public_key, "msg_1", "1700000000", "{\"a\":1}", "v1," + sig.substr(4)));
}

TEST(StandardWebhooks, MalformedSecretsAreRefused) {
  const auto code = [](const std::string &secret) {
    try {
      webhooks::sign(secret, "m", "1", "b");
    } catch (const Error &e) {
      return e.code();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(code("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "invalid_webhook_secret");
  EXPECT_EQ(code("whsec_"), "invalid_webhook_secret");
  EXPECT_EQ(code("whsec_not base64"), "invalid_webhook_secret");
  EXPECT_EQ(code("whsk_" + crypto::bin2base64(std::string(31, 'x'))), "invalid_webhook_secret");
  EXPECT_THROW(webhooks::verify("whpk_AAAA", "m", "1", "b", "v1a,AAAA"), Error);
}
