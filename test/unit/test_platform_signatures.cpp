// Expected values were computed independently with Python's hmac module from
// the formulas each platform documents (see platform_signatures.hpp).
#include <gtest/gtest.h>

#include "core/platforms/platform_signatures.hpp"

namespace p = pgves::core::platforms;

namespace {

const char *kSecret = "e59af819cc";
const char *kPath = "/product/202309/products/1729592969712207008/inventory/update";
const char *kBody =
    R"({"skus":[{"id":"1729592969712207009","inventory":[{"warehouse_id":"7068517275539719942","quantity":7}]}]})";
const char *kTikTokSign = "15c4aec60aaae6f10ca8d2f5b34116daf2f573214943430285b3c8dd644c57c8";

}  // namespace

TEST(TikTokSign, MatchesAnIndependentComputation) {
  p::QueryParams q = {{"timestamp", "1700000000"}, {"app_key", "6abcdefgh"},
                      {"shop_cipher", "ROW_abc"},  {"sign", "zzz"},
                      {"version", "202309"},       {"access_token", "TTP_x"}};
  EXPECT_EQ(p::tiktok_request_sign(kSecret, kPath, q, kBody), kTikTokSign);
}

TEST(TikTokSign, IgnoresSignAndAccessTokenAndParameterOrder) {
  p::QueryParams a = {{"app_key", "6abcdefgh"},
                      {"shop_cipher", "ROW_abc"},
                      {"timestamp", "1700000000"},
                      {"version", "202309"}};
  p::QueryParams b = {{"version", "202309"},
                      {"access_token", "other"},
                      {"timestamp", "1700000000"},
                      {"app_key", "6abcdefgh"},
                      {"shop_cipher", "ROW_abc"}};
  EXPECT_EQ(p::tiktok_request_sign(kSecret, kPath, a, kBody), kTikTokSign);
  EXPECT_EQ(p::tiktok_request_sign(kSecret, kPath, b, kBody), kTikTokSign);
}

TEST(TikTokSign, CoversPathBodyAndEveryParameter) {
  p::QueryParams q = {{"app_key", "6abcdefgh"},
                      {"shop_cipher", "ROW_abc"},
                      {"timestamp", "1700000000"},
                      {"version", "202309"}};
  std::string body = kBody;
  EXPECT_NE(p::tiktok_request_sign(kSecret, kPath, q, body + " "), kTikTokSign);
  EXPECT_NE(p::tiktok_request_sign(kSecret, "/product/202309/products/1/inventory/update", q, body),
            kTikTokSign);
  q[2].second = "1700000001";
  EXPECT_NE(p::tiktok_request_sign(kSecret, kPath, q, body), kTikTokSign);
  q[2].second = "1700000000";
  EXPECT_NE(p::tiktok_request_sign("other", kPath, q, body), kTikTokSign);
}

TEST(ShopifyWebhook, VerifiesTheBase64HmacOfTheRawBody) {
  const std::string body = R"({"inventory_item_id":271878346596,"available":5})";
  const std::string sig = "ZjUh3KZ3TQ4L39ZvlgWkE+qCQo47ctanSSmCRUPkb2w=";
  EXPECT_TRUE(p::verify_shopify_webhook("shpss_secret", body, sig));
  EXPECT_FALSE(p::verify_shopify_webhook("shpss_other", body, sig));
  EXPECT_FALSE(p::verify_shopify_webhook("shpss_secret", body + "\n", sig));
  EXPECT_FALSE(p::verify_shopify_webhook("shpss_secret", body, sig.substr(1)));
  EXPECT_FALSE(p::verify_shopify_webhook("shpss_secret", body, ""));
}

TEST(TikTokWebhook, VerifiesTheHexHmacOfAppKeyAndBody) {
  const std::string body = R"({"type":1,"tts_notification_id":"7327"})";
  const std::string sig = "eb20d2f4f1014b9d29172850f5b87657a9bad98bccd5efcda1ca3ff964c3181b";
  EXPECT_TRUE(p::verify_tiktok_webhook("6abcdefgh", kSecret, body, sig));
  std::string upper = sig;
  for (char &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(p::verify_tiktok_webhook("6abcdefgh", kSecret, body, upper));
  EXPECT_FALSE(p::verify_tiktok_webhook("6abcdefgi", kSecret, body, sig));
  EXPECT_FALSE(p::verify_tiktok_webhook("6abcdefgh", kSecret, body + " ", sig));
  EXPECT_FALSE(p::verify_tiktok_webhook("6abcdefgh", kSecret, body, sig.substr(2)));
  EXPECT_FALSE(p::verify_tiktok_webhook("6abcdefgh", kSecret, body, std::string(64, 'g')));
}

TEST(MetaWebhook, VerifiesThePrefixedHexHmac) {
  const std::string body = R"({"object":"page","entry":[]})";
  const std::string sig = "sha256=7737c8c2c205014576d41d33bf51e33b58a44d48700b5820ea9397d612e36dd1";
  EXPECT_TRUE(p::verify_meta_webhook("meta_app_secret", body, sig));
  EXPECT_FALSE(p::verify_meta_webhook("meta_app_secret", body, sig.substr(7)));
  EXPECT_FALSE(p::verify_meta_webhook("meta_app_secret", body, "sha1=" + sig.substr(7)));
  EXPECT_FALSE(p::verify_meta_webhook("other", body, sig));
  EXPECT_FALSE(p::verify_meta_webhook("meta_app_secret", "{}", sig));
}
