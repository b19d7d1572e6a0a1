#include "core/platforms/meta_catalog.hpp"

#include <algorithm>
#include <regex>

#include "core/json/canonical_json.hpp"

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
