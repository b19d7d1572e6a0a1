#include "core/platforms/shopify.hpp"

#include <algorithm>
#include <cmath>
#include <regex>

#include "core/crypto/crypto.hpp"
#include "core/json/canonical_json.hpp"
#include "core/platforms/platform_signatures.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::platforms {
namespace {

using json::Value;

bool is_gid(const std::string &s, const char *type) {
  const std::string prefix = std::string("gid://shopify/") + type + "/";
  if (s.size() <= prefix.size() || s.compare(0, prefix.size(), prefix) != 0) return false;
  for (std::size_t i = prefix.size(); i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

const char *kMutation =
    "mutation PgVesSetAvailable($input: InventorySetQuantitiesInput!, $key: String!) "
    "{ inventorySetQuantities(input: $input) @idempotent(key: $key) "
    "{ inventoryAdjustmentGroup { id } userErrors { code field message } } }";

Value mutation_input(const ShopifyOptions &options, const std::vector<ShopifySkuUpdate> &updates) {
  if (updates.empty()) throw Error("invalid_option", "a Shopify update needs at least one SKU");
  Value::Array quantities;
  for (const ShopifySkuUpdate &u : updates) {
    const std::string &location =
        u.ref.location_id.empty() ? options.location_id : u.ref.location_id;
    if (location.empty())
      throw Error("invalid_option", "the listing of " + u.ref.inventory_item_id +
                                        " has no location_id and the destination has none");
    quantities.push_back(Value(Value::Object{
        {"changeFromQuantity",
         u.last_known ? Value(static_cast<double>(*u.last_known)) : Value(nullptr)},
        {"inventoryItemId", Value(u.ref.inventory_item_id)},
        {"locationId", Value(location)},
        {"quantity", Value(static_cast<double>(u.quantity))},
    }));
  }
  return Value(Value::Object{
      {"name", Value("available")},
      {"quantities", Value(std::move(quantities))},
      {"reason", Value("correction")},
      {"referenceDocumentUri", Value("pgves://store/" + options.store.store_id)},
  });
}

HttpRequest graphql_post(const ShopifyOptions &options, std::string_view url, std::string body) {
  HttpRequest r;
  r.method = "POST";
  r.url = join_url(url, "/admin/api/" + options.api_version + "/graphql.json");
  r.headers = {{"Content-Type", "application/json"},
               {"Accept", "application/json"},
               {"X-Shopify-Access-Token", options.access_token}};
  r.body = std::move(body);
  return r;
}

}  // namespace

ShopifyOptions shopify_options(const json::Value &options) {
  ShopifyOptions o;
  o.store = store_ids_option(options);
  o.access_token = required_string(options, "access_token",
                                   "Give the Admin API access token of the app installed on the "
                                   "shop (shpat_...).");
  const char *version_hint =
      "api_version is a dated Shopify Admin API version YYYY-MM, at least 2026-04 (the first "
      "with changeFromQuantity), e.g. \"2026-04\".";
  o.api_version =
      optional_string(options, "api_version", shopify_default_api_version, version_hint);
  static const std::regex version_re("^20[0-9]{2}-(01|04|07|10)$");
  if (!std::regex_match(o.api_version, version_re))
    throw OptionError("invalid_option", "option api_version must look like 2026-04", version_hint);
  if (o.api_version < shopify_min_api_version)
    throw OptionError("invalid_option",
                      "option api_version " + o.api_version + " is older than 2026-04",
                      version_hint);
  const char *location_hint =
      "location_id is the gid of the Shopify location to set, e.g. \"gid://shopify/Location/1\".";
  o.location_id = optional_string(options, "location_id", "", location_hint);
  if (!o.location_id.empty() && !is_gid(o.location_id, "Location"))
    throw OptionError("invalid_option", "option location_id must be a gid://shopify/Location/N",
                      location_hint);
  o.webhook_secret =
      optional_string(options, "webhook_secret", "",
                      "Give the app's API secret key, which signs Shopify webhooks.");
  return o;
}

ShopifyRef shopify_ref(const json::Value &platform_ref) {
  const char *hint =
      "A Shopify listing is {\"inventory_item_id\": \"gid://shopify/InventoryItem/N\"} with an "
      "optional \"location_id\": \"gid://shopify/Location/N\".";
  if (platform_ref.kind() != json::Kind::object)
    throw OptionError("invalid_option", "platform_ref must be a JSON object", hint);
  ShopifyRef ref;
  ref.inventory_item_id = required_string(platform_ref, "inventory_item_id", hint);
  if (!is_gid(ref.inventory_item_id, "InventoryItem"))
    throw OptionError("invalid_option", "inventory_item_id must be a gid://shopify/InventoryItem/N",
                      hint);
  ref.location_id = optional_string(platform_ref, "location_id", "", hint);
  if (!ref.location_id.empty() && !is_gid(ref.location_id, "Location"))
    throw OptionError("invalid_option", "location_id must be a gid://shopify/Location/N", hint);
  return ref;
}

std::string shopify_call_key(const ShopifyOptions &options,
                             const std::vector<ShopifySkuUpdate> &updates) {
  std::string material = jcs::canonicalize(mutation_input(options, updates));
  for (const ShopifySkuUpdate &u : updates) {
    material += '\n';
    material += u.idempotency_key;
  }
  const std::string hex = crypto::bin2hex(crypto::sha256_32(crypto::ByteView(material)));
  return "pgves-" + hex.substr(0, 40);
}

HttpRequest shopify_set_quantities(const ShopifyOptions &options, std::string_view url,
                                   const std::vector<ShopifySkuUpdate> &updates) {
  Value body(Value::Object{
      {"query", Value(kMutation)},
      {"variables", Value(Value::Object{{"input", mutation_input(options, updates)},
                                        {"key", Value(shopify_call_key(options, updates))}})},
  });
  return graphql_post(options, url, jcs::canonicalize(body));
}

HttpRequest shopify_read_quantities(const ShopifyOptions &options, std::string_view url,
                                    const std::vector<ShopifyRef> &refs) {
  std::string decl, fields;
  Value::Object vars;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const std::string n = std::to_string(i);
    const std::string &location =
        refs[i].location_id.empty() ? options.location_id : refs[i].location_id;
    if (location.empty())
      throw Error("invalid_option", "the listing of " + refs[i].inventory_item_id +
                                        " has no location_id and the destination has none");
    decl += (i ? ", $i" : "$i") + n + ": ID!, $l" + n + ": ID!";
    fields += " q" + n + ": inventoryItem(id: $i" + n + ") { inventoryLevel(locationId: $l" + n +
              ") { quantities(names: [\"available\"]) { name quantity } } }";
    vars.emplace_back("i" + n, Value(refs[i].inventory_item_id));
    vars.emplace_back("l" + n, Value(location));
  }
  if (refs.empty()) throw Error("invalid_option", "a Shopify read needs at least one listing");
  Value body(Value::Object{
      {"query", Value("query PgVesReadAvailable(" + decl + ") {" + fields + " }")},
      {"variables", Value(std::move(vars))},
  });
  return graphql_post(options, url, jcs::canonicalize(body));
}

std::vector<std::optional<std::int64_t>> shopify_parse_quantities(const Answer &answer,
                                                                  std::size_t count) {
  const auto doc =
      answer.transport_error || answer.status != 200 ? std::nullopt : try_parse(answer.body);
  const Value *data = doc ? doc->find("data") : nullptr;
  if (!data || data->kind() != json::Kind::object)
    throw Error("invalid_answer", "Shopify did not answer the quantity read with data");
  std::vector<std::optional<std::int64_t>> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    const Value *item = data->find("q" + std::to_string(i));
    const Value *level = item ? item->find("inventoryLevel") : nullptr;
    const Value *quantities = level ? level->find("quantities") : nullptr;
    if (!quantities || quantities->kind() != json::Kind::array) continue;
    for (const Value &q : quantities->as_array()) {
      const std::string *name = string_member(&q, "name");
      if (name && *name == "available") out[i] = as_integer(q.find("quantity"));
    }
  }
  return out;
}

namespace {

// The wait a THROTTLED answer implies, from extensions.cost.
std::int64_t throttle_wait_ms(const Value &doc) {
  const Value *ext = doc.find("extensions");
  const Value *cost = ext ? ext->find("cost") : nullptr;
  const Value *status = cost ? cost->find("throttleStatus") : nullptr;
  if (!status) return -1;
  const Value *requested = cost->find("requestedQueryCost");
  const Value *available = status->find("currentlyAvailable");
  const Value *rate = status->find("restoreRate");
  if (!requested || !available || !rate || requested->kind() != json::Kind::number ||
      available->kind() != json::Kind::number || rate->kind() != json::Kind::number ||
      !(rate->as_number() > 0))
    return -1;
  const double missing = requested->as_number() - available->as_number();
  if (!(missing > 0)) return 0;
  const double ms = std::ceil(missing / rate->as_number() * 1000.0);
  return ms > static_cast<double>(max_retry_after_ms) ? max_retry_after_ms
                                                      : static_cast<std::int64_t>(ms);
}

// The index of the quantities line a userError's field names, or -1.
long error_line(const Value &error, std::size_t count) {
  const Value *field = error.find("field");
  if (!field || field->kind() != json::Kind::array) return -1;
  const auto &f = field->as_array();
  for (std::size_t i = 0; i + 1 < f.size(); ++i) {
    if (f[i].kind() != json::Kind::string || f[i].as_string() != "quantities") continue;
    if (f[i + 1].kind() != json::Kind::string) return -1;
    const std::string &s = f[i + 1].as_string();
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
      return -1;
    const long line = std::stol(s);
    return static_cast<std::size_t>(line) < count ? line : -1;
  }
  return -1;
}

std::string user_error_reason(const Value &error) {
  const std::string *code = string_member(&error, "code");
  const std::string *message = string_member(&error, "message");
  return "Shopify userError " + (code ? *code : std::string("(no code)")) +
         (message ? ": " + clip(*message) : std::string());
}

}  // namespace

std::vector<RowVerdict> shopify_classify(const Answer &answer, std::size_t update_count,
                                         std::int64_t now_unix_ms) {
  auto all = [&](RowVerdict v) { return std::vector<RowVerdict>(update_count, v); };
  if (answer.transport_error || answer.status != 200) {
    if (answer.status == 401)
      return all(reauthenticate("Shopify answered 401: the access token was refused"));
    RowVerdict v = status_verdict(answer, now_unix_ms);
    if (v.verdict == Verdict::permanent)
      v.reason = "Shopify answered HTTP " + std::to_string(answer.status) +
                 (answer.status == 403   ? " (the app lacks a scope, e.g. write_inventory)"
                  : answer.status == 404 ? " (unknown shop or api_version)"
                                         : "");
    return all(v);
  }
  const auto doc = try_parse(answer.body);
  if (!doc || doc->kind() != json::Kind::object)
    return all(permanent("Shopify answered 200 without a JSON object"));
  if (const Value *errors = doc->find("errors")) {
    std::string codes;
    bool throttled = false, internal = false;
    if (errors->kind() == json::Kind::array) {
      for (const Value &e : errors->as_array()) {
        const std::string *code = string_member(e.find("extensions"), "code");
        if (!code) continue;
        throttled = throttled || *code == "THROTTLED";
        internal = internal || *code == "INTERNAL_SERVER_ERROR";
        codes += (codes.empty() ? "" : ",") + *code;
      }
    }
    if (throttled) return all(retry(throttle_wait_ms(*doc), "Shopify throttled the call"));
    if (internal) return all(retry(-1, "Shopify answered INTERNAL_SERVER_ERROR"));
    const std::string *message = errors->kind() == json::Kind::array && !errors->as_array().empty()
                                     ? string_member(&errors->as_array().front(), "message")
                                     : nullptr;
    return all(permanent("Shopify refused the call" + (codes.empty() ? "" : " (" + codes + ")") +
                         (message ? ": " + clip(*message) : std::string())));
  }
  const Value *data = doc->find("data");
  const Value *payload = data ? data->find("inventorySetQuantities") : nullptr;
  const Value *user_errors = payload ? payload->find("userErrors") : nullptr;
  if (!user_errors || user_errors->kind() != json::Kind::array)
    return all(permanent("Shopify answered 200 without inventorySetQuantities.userErrors"));
  if (user_errors->as_array().empty()) return all(success());
  // All or nothing: nothing was applied. Lines without an error of their own
  // are retried; a line with several errors keeps the first that is not stale
  // (a stale line that is also invalid cannot be fixed by re-reading).
  std::vector<RowVerdict> out =
      all(retry(-1, "not applied: another line of the same Shopify call was refused"));
  std::vector<bool> decided(update_count, false);
  for (const Value &e : user_errors->as_array()) {
    const std::string *code = string_member(&e, "code");
    // IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED: this exact call was made before
    // and refused, and its answer never reached us (the worker was killed,
    // or the answer came after the timeout). Most likely it was stale; the
    // listings are read again, and the decided count goes out with a new
    // changeFromQuantity, hence a new key. A call refused for another
    // reason is refused again then, with that reason.
    const bool is_stale = code && (*code == "CHANGE_FROM_QUANTITY_STALE" ||
                                   *code == "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED");
    const long line = error_line(e, update_count);
    RowVerdict v = is_stale ? stale(user_error_reason(e)) : permanent(user_error_reason(e));
    if (line < 0) {
      // An error of the whole input (name, reason, idempotency): every line.
      for (std::size_t i = 0; i < update_count; ++i)
        if (!decided[i] || out[i].verdict == Verdict::stale) out[i] = v, decided[i] = true;
      continue;
    }
    const auto i = static_cast<std::size_t>(line);
    if (!decided[i] || (out[i].verdict == Verdict::stale && !is_stale)) out[i] = v;
    decided[i] = true;
  }
  return out;
}

}  // namespace pgves::core::platforms

namespace pgves::core {

using namespace platforms;

namespace {

const char *kShopifyExample = "https://pgves-test.myshopify.com";

// The location a listing is set at: its own, else the destination's.
std::string shopify_location(const ShopifyRef &ref, const json::Value &options) {
  if (!ref.location_id.empty()) return ref.location_id;
  const json::Value *loc = options.find("location_id");
  return loc && loc->kind() == json::Kind::string ? loc->as_string() : std::string();
}

std::string level_key(const std::string &item, const std::string &location) {
  return item + "@" + location;
}

}  // namespace

void ShopifyAdapter::validate_url(std::string_view url) const {
  validate_base_url(url, kShopifyExample);
}

std::vector<HeaderSpec> ShopifyAdapter::validate_options(const json::Value &options) const {
  refuse_common_options(options, kind());
  (void)shopify_options(options);
  return {};
}

// Shopify's GraphQL Admin API restores 100 cost points per second on the
// Standard plan (1,000 on Plus); inventorySetQuantities costs about 10, so
// 5 calls a second leaves room for reads and for the shop's other apps.
Adapter::KindDefaults ShopifyAdapter::defaults() const { return {5, 10, 4}; }

// one inventorySetQuantities of up to 100 SKUs (shopify_max_quantities lines at most: a SKU may
// have several locations).
std::size_t ShopifyAdapter::max_rows_per_request() const { return 100; }

std::vector<PlatformRequest> ShopifyAdapter::build_requests(const Endpoint &endpoint,
                                                            const std::vector<OutboxRow> &rows,
                                                            std::int64_t now_unix_ms) const {
  (void)now_unix_ms;
  const json::Value merged = send_options(endpoint);
  const ShopifyOptions options = shopify_options(merged);
  (void)lines_of(rows);  // every row has listings
  std::vector<PlatformRequest> out;
  std::vector<ShopifySkuUpdate> updates;
  std::vector<std::size_t> call_rows;
  std::vector<std::string> call_keys;
  auto flush = [&] {
    if (updates.empty()) return;
    out.push_back(
        PlatformRequest{shopify_set_quantities(options, endpoint.url, updates), call_rows});
    updates.clear();
    call_rows.clear();
    call_keys.clear();
  };
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::vector<ListingFacts> &listings = *rows[r].listings;
    if (listings.size() > shopify_max_quantities)
      throw Error("invalid_listing", "outbox row " + std::to_string(rows[r].id) + " has " +
                                         std::to_string(listings.size()) +
                                         " Shopify listings; one call sets at most " +
                                         std::to_string(shopify_max_quantities));
    std::vector<ShopifySkuUpdate> mine;
    std::vector<std::string> keys;
    for (const ListingFacts &l : listings) {
      ShopifySkuUpdate u;
      u.quantity = l.quantity;
      u.ref = shopify_ref(*l.platform_ref);
      u.last_known = l.known;
      // The call key (shopify_call_key) hashes these with the input: the
      // same rows with the same counts give the same key on every retry.
      u.idempotency_key = std::to_string(rows[r].id);
      const std::string location = shopify_location(u.ref, merged);
      if (location.empty())
        throw Error("invalid_listing", "the Shopify listing " + u.ref.inventory_item_id +
                                           " has no location_id and the destination has none");
      const std::string key = level_key(u.ref.inventory_item_id, location);
      for (const std::string &k : keys)
        if (k == key)
          throw Error("invalid_listing",
                      "outbox row " + std::to_string(rows[r].id) + " sets " + key + " twice");
      keys.push_back(key);
      mine.push_back(std::move(u));
    }
    bool clash = updates.size() + mine.size() > shopify_max_quantities;
    for (const std::string &k : keys)
      for (const std::string &c : call_keys) clash = clash || k == c;
    if (clash) flush();
    for (ShopifySkuUpdate &u : mine) updates.push_back(std::move(u));
    for (std::string &k : keys) call_keys.push_back(std::move(k));
    call_rows.push_back(r);
  }
  flush();
  return out;
}

std::vector<RowVerdict> ShopifyAdapter::classify(const Answer &answer, std::size_t row_count,
                                                 std::int64_t now_unix_ms) const {
  // Without the rows, one line per row.
  return shopify_classify(answer, row_count, now_unix_ms);
}

std::vector<RowVerdict> ShopifyAdapter::classify_rows(const Endpoint &endpoint,
                                                      const Answer &answer,
                                                      const std::vector<OutboxRow> &rows,
                                                      std::int64_t now_unix_ms) const {
  (void)endpoint;
  const std::vector<Line> lines = lines_of(rows);
  return row_verdicts(lines, shopify_classify(answer, lines.size(), now_unix_ms), rows.size());
}

// Shopify signs the raw body only: no timestamp is covered, so freshness
// cannot be checked here; a replay carries the same X-Shopify-Webhook-Id and
// is a duplicate where it is ingested.
InboundCheck ShopifyAdapter::verify_inbound(std::string_view key, const InboundMessage &message,
                                            std::int64_t now_unix_ms,
                                            std::int64_t tolerance_s) const {
  (void)now_unix_ms;
  (void)tolerance_s;
  if (key.empty()) return {false, "the destination has no webhook_secret to check Shopify's with"};
  const std::string *signature = inbound_header(message, "X-Shopify-Hmac-Sha256");
  if (!signature) return {false, "X-Shopify-Hmac-Sha256 is missing"};
  if (!verify_shopify_webhook(key, message.body, *signature))
    return {false, "X-Shopify-Hmac-Sha256 does not match the body under webhook_secret"};
  return {true, {}};
}

void ShopifyAdapter::validate_listing(const json::Value &platform_ref,
                                      const json::Value &options) const {
  const ShopifyRef ref = shopify_ref(platform_ref);
  if (shopify_location(ref, options).empty())
    throw OptionError("invalid_option",
                      "the listing has no location_id and the destination has none",
                      "Add \"location_id\": \"gid://shopify/Location/N\" to platform_ref, or give "
                      "the destination a default location_id.");
}

std::string ShopifyAdapter::listing_key(const json::Value &platform_ref,
                                        const json::Value &options) const {
  const ShopifyRef ref = shopify_ref(platform_ref);
  return level_key(ref.inventory_item_id, shopify_location(ref, options));
}

std::vector<PlatformRequest> ShopifyAdapter::build_reads(const Endpoint &endpoint,
                                                         const std::vector<ListingFacts> &listings,
                                                         std::int64_t now_unix_ms) const {
  (void)now_unix_ms;
  const json::Value merged = send_options(endpoint);
  const ShopifyOptions options = shopify_options(merged);
  std::vector<PlatformRequest> out;
  for (std::size_t from = 0; from < listings.size(); from += shopify_max_reads) {
    const std::size_t to = std::min(listings.size(), from + shopify_max_reads);
    std::vector<ShopifyRef> refs;
    std::vector<std::size_t> idx;
    for (std::size_t i = from; i < to; ++i) {
      if (!listings[i].platform_ref)
        throw Error("invalid_listing", "a listing has no platform_ref");
      refs.push_back(shopify_ref(*listings[i].platform_ref));
      idx.push_back(i);
    }
    out.push_back(PlatformRequest{shopify_read_quantities(options, endpoint.url, refs), idx});
  }
  return out;
}

ReadAnswer ShopifyAdapter::parse_reads(const Endpoint &endpoint, const Answer &answer,
                                       const std::vector<const ListingFacts *> &listings,
                                       std::int64_t now_unix_ms) const {
  (void)endpoint;
  ReadAnswer out;
  if (!answer.transport_error && answer.status == 200) {
    const auto doc = try_parse(answer.body);
    if (doc && !doc->find("errors")) {
      try {
        out.quantities = shopify_parse_quantities(answer, listings.size());
        return out;
      } catch (const Error &) {
        out.verdict = permanent("Shopify answered the read without data");
        return out;
      }
    }
  }
  out.verdict = shopify_classify(answer, 1, now_unix_ms).front();
  if (out.verdict.verdict == Verdict::success)
    out.verdict = permanent("Shopify answered the read without data");
  return out;
}

namespace {

// The order topics pg_ves takes (Shopify's webhook topic list) and the
// status word each stands for.
const char *order_status(std::string_view topic) {
  static const std::pair<const char *, const char *> topics[] = {
      {"orders/create", "created"},      {"orders/updated", "updated"},
      {"orders/paid", "paid"},           {"orders/cancelled", "cancelled"},
      {"orders/fulfilled", "fulfilled"}, {"orders/partially_fulfilled", "partially_fulfilled"},
  };
  for (const auto &t : topics)
    if (topic == t.first) return t.second;
  return nullptr;
}

// The decimal id after the last '/' (and before any '?') of a gid.
std::string gid_number(const std::string &gid) {
  const std::size_t q = gid.find('?');
  const std::string head = gid.substr(0, q);
  const std::size_t slash = head.rfind('/');
  const std::string n = slash == std::string::npos ? std::string() : head.substr(slash + 1);
  if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) return {};
  return n;
}

// A numeric id member, exactly: from its gid (admin_graphql_api_id) when the
// body has one (Shopify ids may exceed 2^53), else the JSON number.
std::string id_text(const json::Value &body, const char *member) {
  const auto n = as_integer(body.find(member));
  return n && *n > 0 ? std::to_string(*n) : std::string();
}

}  // namespace

// Payloads as Shopify's webhook reference gives them:
//   inventory_levels/update  {"inventory_item_id": N, "location_id": N,
//                             "available": N|null, "updated_at": RFC 3339,
//                             "admin_graphql_api_id":
//                             "gid://shopify/InventoryLevel/LOC?inventory_item_id=ITEM"}
//   orders/*                 the Order resource: "id", "admin_graphql_api_id", ...
InboundContent ShopifyAdapter::parse_inbound(const InboundMessage &message,
                                             const json::Value &options) const {
  (void)options;
  InboundContent out;
  const std::string *topic = inbound_header(message, "X-Shopify-Topic");
  if (!topic || topic->empty())
    throw Error("invalid_message", "a Shopify webhook carries X-Shopify-Topic");
  out.topic = *topic;
  if (const std::string *id = inbound_header(message, "X-Shopify-Webhook-Id"))
    out.delivery_id = *id;
  const auto body = try_parse(message.body);
  if (!body || body->kind() != json::Kind::object)
    throw Error("invalid_message", "the Shopify webhook's body is not a JSON object");
  if (out.topic == "inventory_levels/update") {
    std::string item, location;
    if (const std::string *gid = string_member(&*body, "admin_graphql_api_id")) {
      location = gid_number(*gid);
      const std::size_t at = gid->find("inventory_item_id=");
      if (at != std::string::npos) {
        item = gid->substr(at + 18);
        if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) item.clear();
      }
    }
    if (item.empty()) item = id_text(*body, "inventory_item_id");
    if (location.empty()) location = id_text(*body, "location_id");
    if (item.empty() || location.empty())
      throw Error("invalid_message",
                  "inventory_levels/update without inventory_item_id and location_id");
    // available is null for an item whose inventory Shopify does not track.
    if (const auto available = as_integer(body->find("available"))) {
      StockReport report;
      report.platform_key =
          level_key("gid://shopify/InventoryItem/" + item, "gid://shopify/Location/" + location);
      report.quantity = *available;
      if (const std::string *at = string_member(&*body, "updated_at"))
        report.observed_at_unix_ms = core::rfc3339_unix_ms(*at);
      out.stock.push_back(std::move(report));
    }
    return out;
  }
  if (const char *status = order_status(out.topic)) {
    OrderNotice notice;
    const std::string *gid = string_member(&*body, "admin_graphql_api_id");
    notice.order_id = gid ? gid_number(*gid) : std::string();
    if (notice.order_id.empty()) notice.order_id = id_text(*body, "id");
    if (notice.order_id.empty())
      throw Error("invalid_message", "a Shopify order webhook without the order's id");
    notice.status = status;
    notice.payload = std::string(message.body);
    out.orders.push_back(std::move(notice));
  }
  return out;
}

std::string ShopifyAdapter::inbound_key(const json::Value &options) const {
  const std::string *secret = string_member(&options, "webhook_secret");
  return secret ? *secret : std::string();
}

}  // namespace pgves::core
