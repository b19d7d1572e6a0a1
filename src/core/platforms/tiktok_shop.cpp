#include "core/platforms/tiktok_shop.hpp"

#include <algorithm>

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

TikTokOptions tiktok_options(const json::Value &options, bool check_url) {
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
  if (check_url) adapters::validate_http_url(o.auth_url);
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
    // One entry per SKU, with one inventory line per warehouse set.
    std::vector<std::string> sku_ids;
    std::vector<Value::Array> inventories;
    for (const std::size_t i : groups[g]) {
      const TikTokSkuUpdate &u = updates[i];
      Value::Object inventory{{"quantity", Value(static_cast<double>(u.quantity))}};
      const std::string &warehouse =
          u.ref.warehouse_id.empty() ? options.warehouse_id : u.ref.warehouse_id;
      if (!warehouse.empty()) inventory.emplace_back("warehouse_id", Value(warehouse));
      std::size_t k = 0;
      while (k < sku_ids.size() && sku_ids[k] != u.ref.sku_id) ++k;
      if (k == sku_ids.size()) {
        sku_ids.push_back(u.ref.sku_id);
        inventories.emplace_back();
      }
      inventories[k].push_back(Value(std::move(inventory)));
    }
    Value::Array skus;
    for (std::size_t k = 0; k < sku_ids.size(); ++k)
      skus.push_back(Value(Value::Object{
          {"id", Value(sku_ids[k])},
          {"inventory", Value(std::move(inventories[k]))},
      }));
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

namespace pgves::core {

using namespace platforms;

namespace {

const char *kTikTokExample = "https://open-api.tiktokglobalshop.com";

std::string tiktok_warehouse(const TikTokRef &ref, const json::Value &options) {
  if (!ref.warehouse_id.empty()) return ref.warehouse_id;
  const std::string *w = string_member(&options, "warehouse_id");
  return w ? *w : std::string();
}

TikTokOptions tiktok_send_options(const Endpoint &endpoint) {
  TikTokOptions options = tiktok_options(send_options(endpoint), false);
  if (options.access_token.empty())
    throw Error("no_access_token",
                "the tiktok_shop destination holds no access token yet: obtain one with its "
                "refresh token first");
  return options;
}

}  // namespace

void TikTokAdapter::validate_url(std::string_view url) const {
  validate_base_url(url, kTikTokExample);
}

std::vector<HeaderSpec> TikTokAdapter::validate_options(const json::Value &options) const {
  refuse_common_options(options, kind());
  (void)tiktok_options(options);
  return {};
}

// TikTok Shop allows about 50 requests a second per app and shop across all
// APIs (Partner Center's rate-limit notice); pg_ves takes a fifth for stock
// so that order and fulfilment traffic of the same app keeps its share.
Adapter::KindDefaults TikTokAdapter::defaults() const { return {10, 20, 8}; }

std::vector<PlatformRequest> TikTokAdapter::build_requests(const Endpoint &endpoint,
                                                           const std::vector<OutboxRow> &rows,
                                                           std::int64_t now_unix_ms) const {
  const TikTokOptions options = tiktok_send_options(endpoint);
  (void)lines_of(rows);
  struct Group {
    std::string product_id;
    std::vector<TikTokSkuUpdate> updates;
    std::vector<std::string> keys;  // sku@warehouse, each once per call
    std::vector<std::size_t> rows;
  };
  std::vector<Group> groups;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::vector<TikTokSkuUpdate> mine;
    std::vector<std::string> keys;
    for (const ListingFacts &l : *rows[r].listings) {
      TikTokSkuUpdate u;
      u.quantity = l.quantity;
      u.ref = tiktok_ref(*l.platform_ref);
      u.idempotency_key = std::to_string(rows[r].id);
      if (!mine.empty() && u.ref.product_id != mine.front().ref.product_id)
        throw Error("invalid_listing", "outbox row " + std::to_string(rows[r].id) +
                                           " has listings of two TikTok products; one row "
                                           "must be one request");
      keys.push_back(u.ref.sku_id + "@" +
                     (u.ref.warehouse_id.empty() ? options.warehouse_id : u.ref.warehouse_id));
      mine.push_back(std::move(u));
    }
    if (mine.size() > tiktok_max_skus)
      throw Error("invalid_listing", "outbox row " + std::to_string(rows[r].id) +
                                         " has more TikTok listings than one call carries");
    Group *into = nullptr;
    for (Group &g : groups) {
      if (g.product_id != mine.front().ref.product_id ||
          g.updates.size() + mine.size() > tiktok_max_skus)
        continue;
      bool clash = false;
      for (const std::string &k : keys)
        for (const std::string &c : g.keys) clash = clash || k == c;
      if (!clash) into = &g;
    }
    if (!into) {
      groups.push_back(Group{mine.front().ref.product_id, {}, {}, {}});
      into = &groups.back();
    }
    for (TikTokSkuUpdate &u : mine) into->updates.push_back(std::move(u));
    for (std::string &k : keys) into->keys.push_back(std::move(k));
    into->rows.push_back(r);
  }
  std::vector<PlatformRequest> out;
  for (Group &g : groups) {
    std::vector<PlatformRequest> one =
        tiktok_inventory_updates(options, endpoint.url, g.updates, now_unix_ms);
    out.push_back(PlatformRequest{std::move(one.at(0).http), std::move(g.rows)});
  }
  return out;
}

std::vector<RowVerdict> TikTokAdapter::classify(const Answer &answer, std::size_t row_count,
                                                std::int64_t now_unix_ms) const {
  return tiktok_classify(answer, row_count, now_unix_ms);
}

// The body carries TikTok's own "timestamp", but TikTok resends a webhook it
// could not deliver for hours with the same body: freshness is left to the
// dedupe by tts_notification_id, not checked against tolerance_s.
InboundCheck TikTokAdapter::verify_inbound(std::string_view key, const InboundMessage &message,
                                           std::int64_t now_unix_ms,
                                           std::int64_t tolerance_s) const {
  (void)now_unix_ms;
  (void)tolerance_s;
  const std::size_t nl = key.find('\n');
  if (key.empty() || nl == std::string_view::npos || nl == 0 || nl + 1 == key.size())
    return {false, "the destination has no app_key and app_secret to check TikTok Shop's with"};
  const std::string *signature = inbound_header(message, "Authorization");
  if (!signature) return {false, "Authorization is missing"};
  if (!verify_tiktok_webhook(key.substr(0, nl), key.substr(nl + 1), message.body, *signature))
    return {false, "Authorization does not match the body under app_key and app_secret"};
  return {true, {}};
}

void TikTokAdapter::validate_listing(const json::Value &platform_ref,
                                     const json::Value &options) const {
  (void)options;
  (void)tiktok_ref(platform_ref);
}

std::string TikTokAdapter::listing_key(const json::Value &platform_ref,
                                       const json::Value &options) const {
  const TikTokRef ref = tiktok_ref(platform_ref);
  return ref.sku_id + "@" + tiktok_warehouse(ref, options);
}

std::optional<HttpRequest> TikTokAdapter::token_request(const Endpoint &endpoint) const {
  return tiktok_token_refresh(tiktok_options(send_options(endpoint)));
}

TokenAnswer TikTokAdapter::parse_token(const Answer &answer, std::int64_t now_unix_ms) const {
  return tiktok_parse_token(answer, now_unix_ms);
}

std::vector<PlatformRequest> TikTokAdapter::build_reads(const Endpoint &endpoint,
                                                        const std::vector<ListingFacts> &listings,
                                                        std::int64_t now_unix_ms) const {
  const TikTokOptions options = tiktok_send_options(endpoint);
  std::vector<std::string> products;
  std::vector<std::vector<std::size_t>> of_product;
  for (std::size_t i = 0; i < listings.size(); ++i) {
    if (!listings[i].platform_ref) throw Error("invalid_listing", "a listing has no platform_ref");
    const TikTokRef ref = tiktok_ref(*listings[i].platform_ref);
    std::size_t p = 0;
    while (p < products.size() && products[p] != ref.product_id) ++p;
    if (p == products.size()) {
      products.push_back(ref.product_id);
      of_product.emplace_back();
    }
    of_product[p].push_back(i);
  }
  std::vector<PlatformRequest> out;
  for (std::size_t from = 0; from < products.size(); from += tiktok_max_search) {
    const std::size_t to = std::min(products.size(), from + tiktok_max_search);
    std::vector<std::string> ids(products.begin() + static_cast<std::ptrdiff_t>(from),
                                 products.begin() + static_cast<std::ptrdiff_t>(to));
    std::vector<std::size_t> rows;
    for (std::size_t p = from; p < to; ++p)
      rows.insert(rows.end(), of_product[p].begin(), of_product[p].end());
    std::sort(rows.begin(), rows.end());
    out.push_back(PlatformRequest{tiktok_inventory_search(options, endpoint.url, ids, now_unix_ms),
                                  std::move(rows)});
  }
  return out;
}

// A listing without a warehouse reads the SKU's total over its warehouses
// (a shop with one warehouse: that warehouse's count).
ReadAnswer TikTokAdapter::parse_reads(const Endpoint &endpoint, const Answer &answer,
                                      const std::vector<const ListingFacts *> &listings,
                                      std::int64_t now_unix_ms) const {
  ReadAnswer out;
  out.verdict = tiktok_classify_one(answer, now_unix_ms);
  if (out.verdict.verdict != Verdict::success) return out;
  std::vector<TikTokStock> stock;
  try {
    stock = tiktok_parse_search(answer);
  } catch (const Error &) {
    out.verdict = permanent("TikTok Shop answered the inventory search without data");
    return out;
  }
  const json::Value none;
  const json::Value &options = endpoint.options ? *endpoint.options : none;
  for (const ListingFacts *l : listings) {
    std::optional<std::int64_t> n;
    if (l && l->platform_ref) {
      const TikTokRef ref = tiktok_ref(*l->platform_ref);
      const std::string warehouse = tiktok_warehouse(ref, options);
      for (const TikTokStock &s : stock) {
        if (s.product_id != ref.product_id || s.sku_id != ref.sku_id) continue;
        if (!warehouse.empty() && s.warehouse_id != warehouse) continue;
        n = n.value_or(0) + s.available;
      }
    }
    out.quantities.push_back(n);
  }
  return out;
}

// The body TikTok Shop's webhook reference gives: {"type": N,
// "tts_notification_id": "...", "shop_id": "...", "timestamp": unix s,
// "data": {...}}. Type 1 (ORDER_STATUS_CHANGE) has data.order_id and
// data.order_status (e.g. "AWAITING_SHIPMENT"). Other types are passed on
// by topic only; TikTok sends no inventory-level webhook that pg_ves takes
// (counts are reconciled by reading them).
InboundContent TikTokAdapter::parse_inbound(const InboundMessage &message,
                                            const json::Value &options) const {
  (void)options;
  const auto body = try_parse(message.body);
  if (!body || body->kind() != json::Kind::object)
    throw Error("invalid_message", "the TikTok Shop webhook's body is not a JSON object");
  InboundContent out;
  if (const std::string *id = string_member(&*body, "tts_notification_id")) out.delivery_id = *id;
  const auto type = as_integer(body->find("type"));
  if (!type) throw Error("invalid_message", "a TikTok Shop webhook carries a numeric type");
  out.topic = *type == 1 ? "ORDER_STATUS_CHANGE" : "type " + std::to_string(*type);
  if (*type == 1) {
    const json::Value *data = body->find("data");
    const std::string *order_id = string_member(data, "order_id");
    const std::string *status = string_member(data, "order_status");
    if (!order_id || order_id->empty() || !status)
      throw Error("invalid_message", "ORDER_STATUS_CHANGE without data.order_id and order_status");
    OrderNotice notice;
    notice.order_id = *order_id;
    notice.status = *status;
    for (char &c : notice.status)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    notice.payload = jcs::canonicalize(*data);
    out.orders.push_back(std::move(notice));
  }
  return out;
}

std::string TikTokAdapter::inbound_key(const json::Value &options) const {
  const std::string *app_key = string_member(&options, "app_key");
  const std::string *app_secret = string_member(&options, "app_secret");
  if (!app_key || !app_secret || app_key->empty() || app_secret->empty() ||
      app_key->find('\n') != std::string::npos)
    return {};
  return *app_key + "\n" + *app_secret;
}

}  // namespace pgves::core
