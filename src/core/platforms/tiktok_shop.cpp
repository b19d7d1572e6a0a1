#include "core/platforms/tiktok_shop.hpp"

#include "core/json/canonical_json.hpp"
#include "core/platforms/platform_signatures.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::platforms {
namespace {

using json::Value;

const char *kRefHint =
    "A TikTok Shop listing is {\"product_id\": \"...\", \"sku_id\": \"...\"} with an optional "
    "\"warehouse_id\", all strings.";

}  // namespace

TikTokOptions tiktok_options(const json::Value &options) {
  TikTokOptions o;
  o.store = store_ids_option(options);
  const char *app_hint = "Give the app_key and app_secret of your TikTok Shop Partner Center app.";
  const char *token_hint =
      "Give the tokens the shop's authorization returned (access_token, refresh_token) and "
      "the shop's shop_cipher.";
  o.app_key = required_string(options, "app_key", app_hint);
  o.app_secret = required_string(options, "app_secret", app_hint);
  o.refresh_token = required_string(options, "refresh_token", token_hint);
  o.shop_cipher = required_string(options, "shop_cipher", token_hint);
  o.access_token = optional_string(options, "access_token", "", token_hint);
  o.warehouse_id = optional_string(options, "warehouse_id", "",
                                   "warehouse_id is the TikTok Shop warehouse id, a string.");
  o.auth_url = optional_string(
      options, "auth_url", tiktok_default_auth_url,
      "auth_url is the token refresh base, e.g. " + std::string(tiktok_default_auth_url) + ".");
  adapters::validate_http_url(o.auth_url);
  return o;
}

TikTokRef tiktok_ref(const json::Value &platform_ref) {
  if (platform_ref.kind() != json::Kind::object)
    throw OptionError("invalid_option", "platform_ref must be a JSON object", kRefHint);
  TikTokRef ref;
  ref.product_id = required_string(platform_ref, "product_id", kRefHint);
  ref.sku_id = required_string(platform_ref, "sku_id", kRefHint);
  ref.warehouse_id = optional_string(platform_ref, "warehouse_id", "", kRefHint);
  return ref;
}

namespace {

HttpRequest signed_post(const TikTokOptions &options, std::string_view url,
                        const std::string &api_path, std::string body, std::int64_t now_unix_ms) {
  QueryParams query = {{"app_key", options.app_key},
                       {"shop_cipher", options.shop_cipher},
                       {"timestamp", std::to_string(now_unix_ms / 1000)}};
  const std::string sign =
      tiktok_request_sign(options.app_secret, url_path(url) + api_path, query, body);
  query.emplace_back("sign", sign);
  HttpRequest r;
  r.method = "POST";
  r.url = join_url(url, api_path) + "?" + form_encode(query);
  r.headers = {{"Content-Type", "application/json"}, {"x-tts-access-token", options.access_token}};
  r.body = std::move(body);
  return r;
}

}  // namespace

std::vector<PlatformRequest> tiktok_inventory_updates(const TikTokOptions &options,
                                                      std::string_view url,
                                                      const std::vector<TikTokSkuUpdate> &updates,
                                                      std::int64_t now_unix_ms) {
  std::vector<std::string> products;
  std::vector<std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < updates.size(); ++i) {
    std::size_t g = 0;
    while (g < products.size() && products[g] != updates[i].ref.product_id) ++g;
    if (g == products.size()) {
      products.push_back(updates[i].ref.product_id);
      groups.emplace_back();
    }
    groups[g].push_back(i);
  }
  std::vector<PlatformRequest> out;
  for (std::size_t g = 0; g < products.size(); ++g) {
    Value::Array skus;
    for (const std::size_t i : groups[g]) {
      const TikTokSkuUpdate &u = updates[i];
      Value::Object inventory{{"quantity", Value(static_cast<double>(u.quantity))}};
      const std::string &warehouse =
          u.ref.warehouse_id.empty() ? options.warehouse_id : u.ref.warehouse_id;
      if (!warehouse.empty()) inventory.emplace_back("warehouse_id", Value(warehouse));
      skus.push_back(Value(Value::Object{
          {"id", Value(u.ref.sku_id)},
          {"inventory", Value(Value::Array{Value(std::move(inventory))})},
      }));
    }
    std::string body = jcs::canonicalize(Value(Value::Object{{"skus", Value(std::move(skus))}}));
    HttpRequest r =
        signed_post(options, url,
                    "/product/202309/products/" + percent_encode(products[g]) + "/inventory/update",
                    std::move(body), now_unix_ms);
    out.push_back(PlatformRequest{std::move(r), groups[g]});
  }
  return out;
}

HttpRequest tiktok_inventory_search(const TikTokOptions &options, std::string_view url,
                                    const std::vector<std::string> &product_ids,
                                    std::int64_t now_unix_ms) {
  Value::Array ids;
  for (const std::string &id : product_ids) ids.push_back(Value(id));
  return signed_post(
      options, url, "/product/202309/inventory/search",
      jcs::canonicalize(Value(Value::Object{{"product_ids", Value(std::move(ids))}})), now_unix_ms);
}

std::vector<TikTokStock> tiktok_parse_search(const Answer &answer) {
  const auto doc = answer.transport_error ? std::nullopt : try_parse(answer.body);
  const auto code = doc ? as_integer(doc->find("code")) : std::nullopt;
  const Value *data = doc ? doc->find("data") : nullptr;
  const Value *inventory = data ? data->find("inventory") : nullptr;
  if (answer.status != 200 || code != 0 || !inventory || inventory->kind() != json::Kind::array)
    throw Error("invalid_answer", "TikTok Shop did not answer the inventory search with data");
  std::vector<TikTokStock> out;
  for (const Value &product : inventory->as_array()) {
    const std::string *product_id = string_member(&product, "product_id");
    const Value *skus = product.find("skus");
    if (!product_id || !skus || skus->kind() != json::Kind::array) continue;
    for (const Value &sku : skus->as_array()) {
      const std::string *sku_id = string_member(&sku, "id");
      const Value *warehouses = sku.find("warehouse_inventory");
      if (!sku_id || !warehouses || warehouses->kind() != json::Kind::array) continue;
      for (const Value &w : warehouses->as_array()) {
        const std::string *warehouse_id = string_member(&w, "warehouse_id");
        const auto available = as_integer(w.find("available_quantity"));
        if (warehouse_id && available)
          out.push_back(TikTokStock{*product_id, *sku_id, *warehouse_id, *available});
      }
    }
  }
  return out;
}

HttpRequest tiktok_token_refresh(const TikTokOptions &options) {
  HttpRequest r;
  r.method = "GET";
  r.url = join_url(options.auth_url, "/api/v2/token/refresh") + "?" +
          form_encode({{"app_key", options.app_key},
                       {"app_secret", options.app_secret},
                       {"refresh_token", options.refresh_token},
                       {"grant_type", "refresh_token"}});
  return r;
}

namespace {

std::string describe(std::int64_t code, const Value *doc) {
  const std::string *message = doc ? string_member(doc, "message") : nullptr;
  return "TikTok Shop code " + std::to_string(code) +
         (message ? ": " + clip(*message) : std::string());
}

}  // namespace

RowVerdict tiktok_classify_one(const Answer &answer, std::int64_t now_unix_ms) {
  if (answer.transport_error) return retry(-1, "no answer from TikTok Shop");
  const auto doc = try_parse(answer.body);
  const auto code = doc ? as_integer(doc->find("code")) : std::nullopt;
  if (!code) {
    RowVerdict v = status_verdict(answer, now_unix_ms, true);
    if (v.verdict == Verdict::success)
      return permanent("TikTok Shop answered HTTP " + std::to_string(answer.status) +
                       " without a code");
    return v;
  }
  const Value *d = &*doc;
  switch (*code) {
    case 0:
      if (answer.status >= 200 && answer.status < 300) return success();
      {
        RowVerdict v = status_verdict(answer, now_unix_ms, true);
        v.reason = describe(*code, d) + " with HTTP " + std::to_string(answer.status);
        return v;
      }
    case 105001:
    case 105002:
      return reauthenticate(describe(*code, d));
    case 106001:
    case 106002:
    case 106004:
      return permanent(describe(*code, d) + " (check app_key, app_secret and shop_cipher)");
    case 106003:
      return permanent(describe(*code, d) + " (check the database server's clock)");
    case 36009004:
      return retry(parse_retry_after_ms(answer.retry_after, now_unix_ms), describe(*code, d));
    case 36009005:
      return retry(-1, describe(*code, d));
    case 36009003:
    case 12052048:
    case 12052049:
    case 12052050:
    case 36004004:
    case 36004005:
      return permanent(describe(*code, d));
    default: {
      RowVerdict v = status_verdict(answer, now_unix_ms, true);
      if (v.verdict == Verdict::success) return permanent(describe(*code, d));
      v.reason = describe(*code, d);
      return v;
    }
  }
}

std::vector<RowVerdict> tiktok_classify(const Answer &answer, std::size_t row_count,
                                        std::int64_t now_unix_ms) {
  return std::vector<RowVerdict>(row_count, tiktok_classify_one(answer, now_unix_ms));
}

TokenAnswer tiktok_parse_token(const Answer &answer, std::int64_t now_unix_ms) {
  TokenAnswer out;
  out.verdict = tiktok_classify_one(answer, now_unix_ms);
  // A refused refresh cannot be fixed by refreshing again.
  if (out.verdict.verdict == Verdict::reauthenticate) out.verdict.verdict = Verdict::permanent;
  if (out.verdict.verdict != Verdict::success) return out;
  const auto doc = try_parse(answer.body);
  const Value *data = doc ? doc->find("data") : nullptr;
  const std::string *token = string_member(data, "access_token");
  const auto expires = data ? as_integer(data->find("access_token_expire_in")) : std::nullopt;
  if (!token || token->empty() || !expires) {
    out.verdict = permanent("TikTok Shop token answer without access_token and expiry");
    return out;
  }
  out.token.access_token = *token;
  out.token.expires_at_unix_ms = *expires * 1000;
  if (const std::string *refresh = string_member(data, "refresh_token"))
    out.token.refresh_token = *refresh;
  (void)now_unix_ms;
  return out;
}

}  // namespace pgves::core::platforms
