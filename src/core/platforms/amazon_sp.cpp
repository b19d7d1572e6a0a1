#include "core/platforms/amazon_sp.hpp"

#include <cmath>
#include <cstdlib>
#include <utility>

#include "core/json/canonical_json.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::platforms {
namespace {

using json::Value;

const char *kRefHint =
    "An Amazon listing is {\"sku\": \"seller SKU\"} with an optional \"product_type\", e.g. "
    "\"PRODUCT\".";

std::string item_path(const AmazonOptions &options, const std::string &sku) {
  return "/listings/2021-08-01/items/" + percent_encode(options.seller_id) + "/" +
         percent_encode(sku);
}

std::string marketplaces(const AmazonOptions &options) {
  std::string out;
  for (const std::string &m : options.marketplace_ids) {
    if (!out.empty()) out += ',';
    out += percent_encode(m);
  }
  return out;
}

// errors[0] of an SP-API error body: "code: message", or "".
std::string first_error(const Value *doc) {
  const Value *errors = doc ? doc->find("errors") : nullptr;
  if (!errors || errors->kind() != json::Kind::array || errors->as_array().empty()) return {};
  const Value &e = errors->as_array().front();
  const std::string *code = string_member(&e, "code");
  const std::string *message = string_member(&e, "message");
  return (code ? *code : std::string("?")) + (message ? ": " + clip(*message) : std::string());
}

}  // namespace

AmazonOptions amazon_options(const json::Value &options, bool check_url) {
  AmazonOptions o;
  o.store = store_ids_option(options);
  const char *seller_hint = "Give the seller_id (merchant token) of the Amazon seller account.";
  const char *lwa_hint =
      "Give the LWA client_id and client_secret of your SP-API app and the seller's "
      "refresh_token (Atzr|...).";
  const char *mp_hint =
      "marketplace_ids is a non-empty array of marketplace ids, e.g. [\"ATVPDKIKX0DER\"].";
  o.seller_id = required_string(options, "seller_id", seller_hint);
  const Value *mps = options.find("marketplace_ids");
  if (!mps || mps->kind() != json::Kind::array || mps->as_array().empty())
    throw OptionError("invalid_option", "option marketplace_ids must be a non-empty array",
                      mp_hint);
  for (const Value &m : mps->as_array()) {
    if (m.kind() != json::Kind::string || m.as_string().empty() ||
        m.as_string().find(',') != std::string::npos)
      throw OptionError("invalid_option",
                        "option marketplace_ids must hold non-empty strings without commas",
                        mp_hint);
    o.marketplace_ids.push_back(m.as_string());
  }
  o.client_id = required_string(options, "client_id", lwa_hint);
  o.client_secret = required_string(options, "client_secret", lwa_hint);
  o.refresh_token = required_string(options, "refresh_token", lwa_hint);
  o.lwa_url = optional_string(options, "lwa_url", amazon_default_lwa_url,
                              "lwa_url is the Login with Amazon token endpoint, by default " +
                                  std::string(amazon_default_lwa_url) + ".");
  if (check_url) adapters::validate_http_url(o.lwa_url);
  o.product_type = optional_string(options, "product_type", amazon_default_product_type,
                                   "product_type is an Amazon product type, e.g. \"PRODUCT\".");
  return o;
}

AmazonRef amazon_ref(const json::Value &platform_ref) {
  if (platform_ref.kind() != json::Kind::object)
    throw OptionError("invalid_option", "platform_ref must be a JSON object", kRefHint);
  AmazonRef ref;
  ref.sku = required_string(platform_ref, "sku", kRefHint);
  ref.product_type = optional_string(platform_ref, "product_type", "", kRefHint);
  return ref;
}

HttpRequest amazon_patch_quantity(const AmazonOptions &options, std::string_view url,
                                  const AmazonSkuUpdate &update, std::string_view access_token) {
  const Value body(Value::Object{
      {"patches", Value(Value::Array{Value(Value::Object{
                      {"op", Value("replace")},
                      {"path", Value("/attributes/fulfillment_availability")},
                      {"value", Value(Value::Array{Value(Value::Object{
                                    {"fulfillment_channel_code", Value("DEFAULT")},
                                    {"quantity", Value(static_cast<double>(update.quantity))},
                                })})},
                  })})},
      {"productType",
       Value(update.ref.product_type.empty() ? options.product_type : update.ref.product_type)},
  });
  HttpRequest r;
  r.method = "PATCH";
  r.url = join_url(url, item_path(options, update.ref.sku)) +
          "?marketplaceIds=" + marketplaces(options);
  r.headers = {{"Content-Type", "application/json"},
               {"Accept", "application/json"},
               {"x-amz-access-token", std::string(access_token)}};
  r.body = jcs::canonicalize(body);
  return r;
}

HttpRequest amazon_read_quantity(const AmazonOptions &options, std::string_view url,
                                 const AmazonRef &ref, std::string_view access_token) {
  HttpRequest r;
  r.method = "GET";
  r.url = join_url(url, item_path(options, ref.sku)) + "?marketplaceIds=" + marketplaces(options) +
          "&includedData=fulfillmentAvailability";
  r.headers = {{"Accept", "application/json"}, {"x-amz-access-token", std::string(access_token)}};
  return r;
}

std::optional<std::int64_t> amazon_parse_quantity(const Answer &answer) {
  if (!answer.transport_error && answer.status == 404) return std::nullopt;
  const auto doc =
      answer.transport_error || answer.status != 200 ? std::nullopt : try_parse(answer.body);
  const Value *fa = doc ? doc->find("fulfillmentAvailability") : nullptr;
  if (!fa || fa->kind() != json::Kind::array)
    throw Error("invalid_answer", "Amazon did not answer the read with fulfillmentAvailability");
  for (const Value &entry : fa->as_array()) {
    const std::string *channel = string_member(&entry, "fulfillmentChannelCode");
    if (channel && *channel == "DEFAULT") {
      if (auto n = as_integer(entry.find("quantity"))) return n;
    }
  }
  throw Error("invalid_answer", "Amazon's read has no DEFAULT fulfillment quantity");
}

HttpRequest amazon_token_request(const AmazonOptions &options) {
  HttpRequest r;
  r.method = "POST";
  r.url = options.lwa_url;
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded;charset=UTF-8"},
               {"Accept", "application/json"}};
  r.body = form_encode({{"grant_type", "refresh_token"},
                        {"refresh_token", options.refresh_token},
                        {"client_id", options.client_id},
                        {"client_secret", options.client_secret}});
  return r;
}

TokenAnswer amazon_parse_token(const Answer &answer, std::int64_t now_unix_ms) {
  TokenAnswer out;
  const auto doc = answer.transport_error ? std::nullopt : try_parse(answer.body);
  if (answer.transport_error || answer.status != 200) {
    out.verdict = status_verdict(answer, now_unix_ms);
    if (out.verdict.verdict == Verdict::permanent || out.verdict.verdict == Verdict::gone) {
      const std::string *error = doc ? string_member(&*doc, "error") : nullptr;
      const std::string *description = doc ? string_member(&*doc, "error_description") : nullptr;
      out.verdict =
          permanent("Login with Amazon refused the token request (HTTP " +
                    std::to_string(answer.status) + (error ? ", " + clip(*error) : std::string()) +
                    (description ? ": " + clip(*description) : std::string()) +
                    "); check client_id, client_secret and refresh_token");
    }
    return out;
  }
  const std::string *token = doc ? string_member(&*doc, "access_token") : nullptr;
  const std::int64_t expires_in = doc ? as_integer(doc->find("expires_in")).value_or(0) : 0;
  if (!token || token->empty() || expires_in <= 0) {
    out.verdict = permanent("Login with Amazon answered 200 without access_token and expires_in");
    return out;
  }
  out.token.access_token = *token;
  out.token.expires_at_unix_ms = now_unix_ms + expires_in * 1000;
  if (const std::string *refresh = string_member(&*doc, "refresh_token"))
    out.token.refresh_token = *refresh;
  return out;
}

std::int64_t amazon_rate_wait_ms(std::string_view rate_limit_header) {
  const std::string text(rate_limit_header);
  if (text.empty()) return -1;
  char *end = nullptr;
  const double rate = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(rate > 0) || !std::isfinite(rate)) return -1;
  const double ms = std::ceil(1000.0 / rate);
  return ms > static_cast<double>(max_retry_after_ms) ? max_retry_after_ms
                                                      : static_cast<std::int64_t>(ms);
}

RowVerdict amazon_classify(const Answer &answer, std::string_view rate_limit_header,
                           std::int64_t now_unix_ms) {
  if (answer.transport_error) return retry(-1, "no answer from Amazon SP-API");
  const auto doc = try_parse(answer.body);
  const Value *d = doc ? &*doc : nullptr;
  if (answer.status == 200) {
    const std::string *status = string_member(d, "status");
    if (status && *status == "ACCEPTED") return success();
    std::string reason = "Amazon answered status " + (status ? *status : std::string("(none)"));
    const Value *issues = d ? d->find("issues") : nullptr;
    if (issues && issues->kind() == json::Kind::array) {
      for (const Value &issue : issues->as_array()) {
        const std::string *code = string_member(&issue, "code");
        const std::string *message = string_member(&issue, "message");
        reason += "; " + (code ? *code : std::string("?")) +
                  (message ? ": " + clip(*message) : std::string());
      }
    }
    return permanent(clip(reason, 600));
  }
  const std::string error = first_error(d);
  const std::string said = error.empty() ? std::string() : " (" + error + ")";
  if (answer.status == 401 || answer.status == 403)
    return reauthenticate("Amazon answered HTTP " + std::to_string(answer.status) + said);
  if (answer.status == 429) {
    std::int64_t wait = status_verdict(answer, now_unix_ms).retry_after_ms;
    if (wait < 0) wait = amazon_rate_wait_ms(rate_limit_header);
    return retry(wait, "Amazon throttled the request" + said);
  }
  RowVerdict v = status_verdict(answer, now_unix_ms);
  if (v.verdict == Verdict::success)
    return permanent("Amazon answered HTTP " + std::to_string(answer.status) +
                     " without a submission status");
  v.reason = "Amazon answered HTTP " + std::to_string(answer.status) + said;
  return v;
}

}  // namespace pgves::core::platforms

namespace pgves::core {

using namespace platforms;

namespace {

const char *kAmazonExample = "https://sellingpartnerapi-na.amazon.com";

// The options and the access token a request is sent with.
std::pair<AmazonOptions, std::string> amazon_send(const Endpoint &endpoint) {
  const json::Value merged = send_options(endpoint);
  AmazonOptions options = amazon_options(merged, false);
  const std::string *token = string_member(&merged, "access_token");
  if (!token || token->empty())
    throw Error("no_access_token",
                "the amazon_sp destination holds no access token yet: obtain one from Login "
                "with Amazon first");
  return {std::move(options), *token};
}

}  // namespace

void AmazonAdapter::validate_url(std::string_view url) const {
  validate_base_url(url, kAmazonExample);
}

std::vector<HeaderSpec> AmazonAdapter::validate_options(const json::Value &options) const {
  refuse_common_options(options, kind());
  (void)amazon_options(options);
  return {};
}

// The Listings Items API's published usage plan for patchListingsItem (and
// getListingsItem): 5 requests a second, burst 5.
Adapter::KindDefaults AmazonAdapter::defaults() const { return {5, 5, 5}; }

std::vector<PlatformRequest> AmazonAdapter::build_requests(const Endpoint &endpoint,
                                                           const std::vector<OutboxRow> &rows,
                                                           std::int64_t now_unix_ms) const {
  (void)now_unix_ms;
  const auto [options, token] = amazon_send(endpoint);
  (void)lines_of(rows);
  std::vector<PlatformRequest> out;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].listings->size() != 1)
      throw Error("invalid_listing", "outbox row " + std::to_string(rows[r].id) + " has " +
                                         std::to_string(rows[r].listings->size()) +
                                         " Amazon listings; Amazon sets one SKU per request");
    const ListingFacts &l = rows[r].listings->front();
    AmazonSkuUpdate u;
    u.quantity = l.quantity;
    u.ref = amazon_ref(*l.platform_ref);
    u.idempotency_key = std::to_string(rows[r].id);
    out.push_back(PlatformRequest{amazon_patch_quantity(options, endpoint.url, u, token), {r}});
  }
  return out;
}

std::vector<RowVerdict> AmazonAdapter::classify(const Answer &answer, std::size_t row_count,
                                                std::int64_t now_unix_ms) const {
  return std::vector<RowVerdict>(row_count,
                                 amazon_classify(answer, answer.rate_limit, now_unix_ms));
}

InboundCheck AmazonAdapter::verify_inbound(std::string_view key, const InboundMessage &message,
                                           std::int64_t now_unix_ms,
                                           std::int64_t tolerance_s) const {
  (void)key;
  (void)message;
  (void)now_unix_ms;
  (void)tolerance_s;
  // SP-API notifications arrive through Amazon SQS or EventBridge, not as
  // signed HTTP requests to the application.
  throw Error("unsupported", "amazon_sp destinations receive no webhooks");
}

void AmazonAdapter::validate_listing(const json::Value &platform_ref,
                                     const json::Value &options) const {
  (void)options;
  (void)amazon_ref(platform_ref);
}

std::string AmazonAdapter::listing_key(const json::Value &platform_ref,
                                       const json::Value &options) const {
  (void)options;
  return amazon_ref(platform_ref).sku;
}

std::optional<HttpRequest> AmazonAdapter::token_request(const Endpoint &endpoint) const {
  return amazon_token_request(amazon_options(send_options(endpoint)));
}

TokenAnswer AmazonAdapter::parse_token(const Answer &answer, std::int64_t now_unix_ms) const {
  return amazon_parse_token(answer, now_unix_ms);
}

std::vector<PlatformRequest> AmazonAdapter::build_reads(const Endpoint &endpoint,
                                                        const std::vector<ListingFacts> &listings,
                                                        std::int64_t now_unix_ms) const {
  (void)now_unix_ms;
  const auto [options, token] = amazon_send(endpoint);
  std::vector<PlatformRequest> out;
  for (std::size_t i = 0; i < listings.size(); ++i) {
    if (!listings[i].platform_ref) throw Error("invalid_listing", "a listing has no platform_ref");
    out.push_back(PlatformRequest{
        amazon_read_quantity(options, endpoint.url, amazon_ref(*listings[i].platform_ref), token),
        {i}});
  }
  return out;
}

ReadAnswer AmazonAdapter::parse_reads(const Endpoint &endpoint, const Answer &answer,
                                      const std::vector<const ListingFacts *> &listings,
                                      std::int64_t now_unix_ms) const {
  (void)endpoint;
  ReadAnswer out;
  if (!answer.transport_error && (answer.status == 200 || answer.status == 404)) {
    try {
      out.quantities.assign(listings.size(), amazon_parse_quantity(answer));
    } catch (const Error &e) {
      out.verdict = permanent(e.what());
    }
    return out;
  }
  out.verdict = amazon_classify(answer, answer.rate_limit, now_unix_ms);
  if (out.verdict.verdict == Verdict::success)
    out.verdict = permanent("Amazon answered the read with HTTP " + std::to_string(answer.status));
  return out;
}

}  // namespace pgves::core
