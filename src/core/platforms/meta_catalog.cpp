#include "core/platforms/meta_catalog.hpp"

#include <algorithm>
#include <regex>

#include "core/json/canonical_json.hpp"
#include "core/platforms/platform_signatures.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::platforms {
namespace {

using json::Value;

std::string edge_url(const MetaOptions &options, std::string_view url, const char *edge) {
  return join_url(url, "/" + percent_encode(options.api_version) + "/" +
                           percent_encode(options.catalog_id) + "/" + edge);
}

}  // namespace

MetaOptions meta_options(const json::Value &options) {
  MetaOptions o;
  o.store = store_ids_option(options);
  const char *catalog_hint = "catalog_id is the numeric id of the Commerce Manager catalog.";
  o.catalog_id = required_string(options, "catalog_id", catalog_hint);
  if (o.catalog_id.find_first_not_of("0123456789") != std::string::npos)
    throw OptionError("invalid_option", "option catalog_id must be digits", catalog_hint);
  o.access_token =
      required_string(options, "access_token",
                      "Give a system user access token with catalog_management permission.");
  const char *version_hint = "api_version is a Graph API version such as \"v23.0\".";
  o.api_version = optional_string(options, "api_version", meta_default_api_version, version_hint);
  static const std::regex version_re("^v[0-9]{1,3}\\.[0-9]{1,2}$");
  if (!std::regex_match(o.api_version, version_re))
    throw OptionError("invalid_option", "option api_version must look like v23.0", version_hint);
  o.app_secret = optional_string(options, "app_secret", "",
                                 "app_secret is the Meta app's secret, which signs webhooks.");
  return o;
}

MetaRef meta_ref(const json::Value &platform_ref) {
  const char *hint = "A Meta catalog listing is {\"retailer_id\": \"the item's retailer id\"}.";
  if (platform_ref.kind() != json::Kind::object)
    throw OptionError("invalid_option", "platform_ref must be a JSON object", hint);
  return MetaRef{required_string(platform_ref, "retailer_id", hint)};
}

std::vector<PlatformRequest> meta_items_batch(const MetaOptions &options, std::string_view url,
                                              const std::vector<MetaSkuUpdate> &updates,
                                              std::size_t batch_limit) {
  if (batch_limit == 0) batch_limit = meta_batch_limit;
  std::vector<PlatformRequest> out;
  for (std::size_t from = 0; from < updates.size(); from += batch_limit) {
    const std::size_t to = std::min(updates.size(), from + batch_limit);
    Value::Array requests;
    std::vector<std::size_t> rows;
    for (std::size_t i = from; i < to; ++i) {
      requests.push_back(Value(Value::Object{
          {"data",
           Value(Value::Object{
               {"id", Value(updates[i].ref.retailer_id)},
               {"quantity_to_sell_on_facebook", Value(static_cast<double>(updates[i].quantity))},
           })},
          {"method", Value("UPDATE")},
      }));
      rows.push_back(i);
    }
    HttpRequest r;
    r.method = "POST";
    r.url = edge_url(options, url, "items_batch");
    r.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    r.body = jcs::canonicalize(Value(Value::Object{
        {"access_token", Value(options.access_token)},
        {"item_type", Value("PRODUCT_ITEM")},
        {"requests", Value(std::move(requests))},
    }));
    out.push_back(PlatformRequest{std::move(r), std::move(rows)});
  }
  return out;
}

HttpRequest meta_batch_status(const MetaOptions &options, std::string_view url,
                              std::string_view handle) {
  HttpRequest r;
  r.method = "GET";
  r.url = edge_url(options, url, "check_batch_request_status") + "?" +
          form_encode({{"handle", std::string(handle)}});
  r.headers = {{"Accept", "application/json"}, {"Authorization", "Bearer " + options.access_token}};
  return r;
}

HttpRequest meta_read_products(const MetaOptions &options, std::string_view url,
                               const std::vector<std::string> &retailer_ids) {
  Value::Array ids;
  for (const std::string &id : retailer_ids) ids.push_back(Value(id));
  const std::string filter = jcs::canonicalize(Value(
      Value::Object{{"retailer_id", Value(Value::Object{{"is_any", Value(std::move(ids))}})}}));
  HttpRequest r;
  r.method = "GET";
  r.url = edge_url(options, url, "products") + "?" +
          form_encode({{"filter", filter},
                       {"fields", "retailer_id,quantity_to_sell_on_facebook"},
                       {"limit", std::to_string(retailer_ids.size())}});
  r.headers = {{"Accept", "application/json"}, {"Authorization", "Bearer " + options.access_token}};
  return r;
}

std::vector<std::pair<std::string, std::int64_t>> meta_parse_products(const Answer &answer) {
  const auto doc =
      answer.transport_error || answer.status != 200 ? std::nullopt : try_parse(answer.body);
  const Value *data = doc ? doc->find("data") : nullptr;
  if (!data || data->kind() != json::Kind::array)
    throw Error("invalid_answer", "the Graph API did not answer the products read with data");
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const Value &item : data->as_array()) {
    const std::string *id = string_member(&item, "retailer_id");
    const auto quantity = as_integer(item.find("quantity_to_sell_on_facebook"));
    if (id && quantity) out.emplace_back(*id, *quantity);
  }
  return out;
}

RowVerdict meta_classify_error(const Answer &answer, std::int64_t now_unix_ms) {
  if (answer.transport_error) return retry(-1, "no answer from the Graph API");
  const auto doc = try_parse(answer.body);
  const Value *error = doc ? doc->find("error") : nullptr;
  const auto code = error ? as_integer(error->find("code")) : std::nullopt;
  if (!code) {
    RowVerdict v = status_verdict(answer, now_unix_ms);
    if (v.verdict == Verdict::success)
      return permanent("the Graph API answered HTTP " + std::to_string(answer.status) +
                       " without a result");
    return v;
  }
  const auto subcode = as_integer(error->find("error_subcode"));
  const std::string *message = string_member(error, "message");
  const std::string reason = "Graph API error " + std::to_string(*code) +
                             (subcode ? "/" + std::to_string(*subcode) : std::string()) +
                             (message ? ": " + clip(*message) : std::string());
  switch (*code) {
    case 4:
    case 17:
    case 32:
    case 613:
    case 80004: {
      // Graph API rate limits come as HTTP 400; a Retry-After is honoured if present.
      return retry(parse_retry_after_ms(answer.retry_after, now_unix_ms), reason);
    }
    case 1:
    case 2:
      return retry(-1, reason);
    case 190:
      return reauthenticate(reason + " (renew access_token)");
    default:
      return permanent(reason);
  }
}

MetaBatchAnswer meta_classify_batch(const Answer &answer, std::size_t line_count,
                                    std::int64_t now_unix_ms) {
  MetaBatchAnswer out;
  if (!answer.transport_error && answer.status == 200) {
    const auto doc = try_parse(answer.body);
    const Value *handles = doc ? doc->find("handles") : nullptr;
    if (handles && handles->kind() == json::Kind::array) {
      for (const Value &h : handles->as_array())
        if (h.kind() == json::Kind::string && !h.as_string().empty())
          out.handles.push_back(h.as_string());
    }
    out.rows.assign(line_count, out.handles.empty()
                                    ? permanent("items_batch answered 200 without handles")
                                    : success());
    return out;
  }
  out.rows.assign(line_count, meta_classify_error(answer, now_unix_ms));
  return out;
}

MetaBatchStatus meta_classify_status(const Answer &answer,
                                     const std::vector<std::string> &retailer_ids,
                                     std::int64_t now_unix_ms) {
  MetaBatchStatus out;
  const std::size_t n = retailer_ids.size();
  if (answer.transport_error || answer.status != 200) {
    out.rows.assign(n, meta_classify_error(answer, now_unix_ms));
    return out;
  }
  const auto doc = try_parse(answer.body);
  const Value *data = doc ? doc->find("data") : nullptr;
  if (!data || data->kind() != json::Kind::array || data->as_array().empty()) {
    out.rows.assign(n, permanent("check_batch_request_status answered without data"));
    return out;
  }
  const Value &status = data->as_array().front();
  const std::string *state = string_member(&status, "status");
  if (!state || *state != "finished") return out;
  out.finished = true;
  out.rows.assign(n, success());
  const Value *errors = status.find("errors");
  if (!errors || errors->kind() != json::Kind::array) return out;
  for (const Value &e : errors->as_array()) {
    const std::string *message = string_member(&e, "message");
    const RowVerdict v = permanent("Meta refused the item update" +
                                   (message ? ": " + clip(*message) : std::string()));
    const auto line = as_integer(e.find("line"));
    if (line && *line >= 0 && static_cast<std::size_t>(*line) < n) {
      out.rows[static_cast<std::size_t>(*line)] = v;
      continue;
    }
    if (const std::string *id = string_member(&e, "id")) {
      for (std::size_t i = 0; i < n; ++i)
        if (retailer_ids[i] == *id) out.rows[i] = v;
    }
  }
  return out;
}

}  // namespace pgves::core::platforms

namespace pgves::core {

using namespace platforms;

namespace {

const char *kMetaExample = "https://graph.facebook.com";

}  // namespace

void MetaAdapter::validate_url(std::string_view url) const { validate_base_url(url, kMetaExample); }

std::vector<HeaderSpec> MetaAdapter::validate_options(const json::Value &options) const {
  refuse_common_options(options, kind());
  (void)meta_options(options);
  return {};
}

// The Catalog Batch API is limited per catalog by Meta's business use case
// rate limits, which grow with the catalog; one call carries up to 5,000
// items, so a call a second (burst 5) is far more than a store's stock
// changes need and stays clear of code 80004.
Adapter::KindDefaults MetaAdapter::defaults() const { return {1, 5, 2}; }

// one items_batch of up to 1000 SKUs, well inside the Catalog Batch API limit.
std::size_t MetaAdapter::max_rows_per_request() const { return 1000; }

std::vector<PlatformRequest> MetaAdapter::build_requests(const Endpoint &endpoint,
                                                         const std::vector<OutboxRow> &rows,
                                                         std::int64_t now_unix_ms) const {
  (void)now_unix_ms;
  const MetaOptions options = meta_options(send_options(endpoint));
  (void)lines_of(rows);
  std::vector<PlatformRequest> out;
  std::vector<MetaSkuUpdate> updates;
  std::vector<std::size_t> call_rows;
  auto flush = [&] {
    if (updates.empty()) return;
    std::vector<PlatformRequest> one =
        meta_items_batch(options, endpoint.url, updates, meta_batch_limit);
    out.push_back(PlatformRequest{std::move(one.at(0).http), call_rows});
    updates.clear();
    call_rows.clear();
  };
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::vector<ListingFacts> &listings = *rows[r].listings;
    if (listings.size() > meta_batch_limit)
      throw Error("invalid_listing", "outbox row " + std::to_string(rows[r].id) +
                                         " has more Meta listings than one batch carries");
    std::vector<MetaSkuUpdate> mine;
    for (const ListingFacts &l : listings) {
      MetaSkuUpdate u;
      u.quantity = l.quantity;
      u.ref = meta_ref(*l.platform_ref);
      u.idempotency_key = std::to_string(rows[r].id);
      mine.push_back(std::move(u));
    }
    bool clash = updates.size() + mine.size() > meta_batch_limit;
    for (const MetaSkuUpdate &m : mine)
      for (const MetaSkuUpdate &u : updates)
        clash = clash || m.ref.retailer_id == u.ref.retailer_id;
    if (clash) flush();
    for (MetaSkuUpdate &u : mine) updates.push_back(std::move(u));
    call_rows.push_back(r);
  }
  flush();
  return out;
}

std::vector<RowVerdict> MetaAdapter::classify(const Answer &answer, std::size_t row_count,
                                              std::int64_t now_unix_ms) const {
  return meta_classify_batch(answer, row_count, now_unix_ms).rows;
}

std::vector<RowVerdict> MetaAdapter::classify_rows(const Endpoint &endpoint, const Answer &answer,
                                                   const std::vector<OutboxRow> &rows,
                                                   std::int64_t now_unix_ms) const {
  (void)endpoint;
  const std::vector<Line> lines = lines_of(rows);
  MetaBatchAnswer batch = meta_classify_batch(answer, lines.size(), now_unix_ms);
  std::vector<RowVerdict> out = row_verdicts(lines, batch.rows, rows.size());
  // Meta answers one handle per call; the status check names every line.
  if (!batch.handles.empty())
    for (RowVerdict &v : out)
      if (v.verdict == Verdict::success) v.follow_up = batch.handles.front();
  return out;
}

HttpRequest MetaAdapter::follow_up_request(const Endpoint &endpoint,
                                           std::string_view handle) const {
  return meta_batch_status(meta_options(send_options(endpoint)), endpoint.url, handle);
}

FollowUpAnswer MetaAdapter::classify_follow_up(const Endpoint &endpoint, const Answer &answer,
                                               const std::vector<std::string> &line_keys,
                                               std::int64_t now_unix_ms) const {
  (void)endpoint;
  MetaBatchStatus status = meta_classify_status(answer, line_keys, now_unix_ms);
  return FollowUpAnswer{status.finished, std::move(status.rows)};
}

// Meta signs the raw body only; a replay has the same body and therefore the
// same derived delivery id (parse_inbound), so it is a duplicate.
InboundCheck MetaAdapter::verify_inbound(std::string_view key, const InboundMessage &message,
                                         std::int64_t now_unix_ms, std::int64_t tolerance_s) const {
  (void)now_unix_ms;
  (void)tolerance_s;
  if (key.empty()) return {false, "the destination has no app_secret to check Meta's with"};
  const std::string *signature = inbound_header(message, "X-Hub-Signature-256");
  if (!signature) return {false, "X-Hub-Signature-256 is missing"};
  if (!verify_meta_webhook(key, message.body, *signature))
    return {false, "X-Hub-Signature-256 does not match the body under app_secret"};
  return {true, {}};
}

void MetaAdapter::validate_listing(const json::Value &platform_ref,
                                   const json::Value &options) const {
  (void)options;
  (void)meta_ref(platform_ref);
}

std::string MetaAdapter::listing_key(const json::Value &platform_ref,
                                     const json::Value &options) const {
  (void)options;
  return meta_ref(platform_ref).retailer_id;
}

std::vector<PlatformRequest> MetaAdapter::build_reads(const Endpoint &endpoint,
                                                      const std::vector<ListingFacts> &listings,
                                                      std::int64_t now_unix_ms) const {
  (void)now_unix_ms;
  const MetaOptions options = meta_options(send_options(endpoint));
  std::vector<PlatformRequest> out;
  for (std::size_t from = 0; from < listings.size(); from += meta_max_reads) {
    const std::size_t to = std::min(listings.size(), from + meta_max_reads);
    std::vector<std::string> ids;
    std::vector<std::size_t> rows;
    for (std::size_t i = from; i < to; ++i) {
      if (!listings[i].platform_ref)
        throw Error("invalid_listing", "a listing has no platform_ref");
      ids.push_back(meta_ref(*listings[i].platform_ref).retailer_id);
      rows.push_back(i);
    }
    out.push_back(PlatformRequest{meta_read_products(options, endpoint.url, ids), std::move(rows)});
  }
  return out;
}

ReadAnswer MetaAdapter::parse_reads(const Endpoint &endpoint, const Answer &answer,
                                    const std::vector<const ListingFacts *> &listings,
                                    std::int64_t now_unix_ms) const {
  (void)endpoint;
  ReadAnswer out;
  if (!answer.transport_error && answer.status == 200) {
    std::vector<std::pair<std::string, std::int64_t>> items;
    try {
      items = meta_parse_products(answer);
    } catch (const Error &e) {
      out.verdict = permanent(e.what());
      return out;
    }
    for (const ListingFacts *l : listings) {
      std::optional<std::int64_t> n;
      if (l && l->platform_ref) {
        const std::string id = meta_ref(*l->platform_ref).retailer_id;
        for (const auto &item : items)
          if (item.first == id) n = item.second;
      }
      out.quantities.push_back(n);
    }
    return out;
  }
  out.verdict = meta_classify_error(answer, now_unix_ms);
  if (out.verdict.verdict == Verdict::success)
    out.verdict =
        permanent("the Graph API answered the read with HTTP " + std::to_string(answer.status));
  return out;
}

// Graph API webhooks share one envelope: {"object": "...", "entry": [{"id",
// "time", "changes": [{"field", "value"}]}]}, with no delivery id (the
// delivery id is the body's SHA-256). Meta documents no catalog stock
// webhook; pg_ves ASSUMES one as a change whose value holds "retailer_id"
// and an integer "quantity_to_sell_on_facebook" (a stock report), and takes
// a change whose field is "commerce_orders" with value {"order_id",
// "event"|"status"} as an order notice (Commerce Platform order events).
InboundContent MetaAdapter::parse_inbound(const InboundMessage &message,
                                          const json::Value &options) const {
  (void)options;
  const auto body = try_parse(message.body);
  if (!body || body->kind() != json::Kind::object)
    throw Error("invalid_message", "the Meta webhook's body is not a JSON object");
  InboundContent out;
  out.delivery_id = sha256_hex(message.body);
  const std::string *object = string_member(&*body, "object");
  out.topic = object ? *object : std::string();
  const json::Value *entries = body->find("entry");
  if (!entries || entries->kind() != json::Kind::array) return out;
  bool first_field = true;
  for (const json::Value &entry : entries->as_array()) {
    const auto time_s = as_integer(entry.find("time"));
    const json::Value *changes = entry.find("changes");
    if (!changes || changes->kind() != json::Kind::array) continue;
    for (const json::Value &change : changes->as_array()) {
      const std::string *field = string_member(&change, "field");
      const json::Value *value = change.find("value");
      if (field && first_field) {
        out.topic += "/" + *field;
        first_field = false;
      }
      if (!value || value->kind() != json::Kind::object) continue;
      const std::string *retailer_id = string_member(value, "retailer_id");
      const auto quantity = as_integer(value->find("quantity_to_sell_on_facebook"));
      if (retailer_id && !retailer_id->empty() && quantity) {
        StockReport report;
        report.platform_key = *retailer_id;
        report.quantity = *quantity;
        // Graph API entry times are Unix seconds (some fields send ms).
        if (time_s && *time_s > 0)
          report.observed_at_unix_ms = *time_s < 100000000000 ? *time_s * 1000 : *time_s;
        out.stock.push_back(std::move(report));
        continue;
      }
      if (field && *field == "commerce_orders") {
        const std::string *order_id = string_member(value, "order_id");
        const std::string *status = string_member(value, "event");
        if (!status) status = string_member(value, "status");
        if (!order_id || order_id->empty() || !status) continue;
        OrderNotice notice;
        notice.order_id = *order_id;
        notice.status = *status;
        for (char &c : notice.status)
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        notice.payload = jcs::canonicalize(*value);
        out.orders.push_back(std::move(notice));
      }
    }
  }
  return out;
}

std::string MetaAdapter::inbound_key(const json::Value &options) const {
  const std::string *secret = string_member(&options, "app_secret");
  return secret ? *secret : std::string();
}

}  // namespace pgves::core
