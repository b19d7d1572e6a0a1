#include "core/ves/pull.hpp"

#include <algorithm>
#include <cmath>

#include "core/base/error.hpp"
#include "core/delivery/delivery_outcome.hpp"
#include "core/json/canonical_json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/ves/envelope.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::pull {

namespace {

// A JSON number that is an integer in [lo, hi].
bool integer_in(const json::Value &v, double lo, double hi) {
  return v.kind() == json::Kind::number && std::floor(v.as_number()) == v.as_number() &&
         v.as_number() >= lo && v.as_number() <= hi;
}

std::optional<ves::Uuid> uuid_option(const json::Value &options, std::string_view name) {
  const json::Value *v = options.find(name);
  if (!v || v->is_null()) return std::nullopt;
  if (v->kind() == json::Kind::string) {
    try {
      return ves::parse_uuid(v->as_string());
    } catch (const Error &) {
    }
  }
  throw OptionError("invalid_option", std::string(name) + " must be a UUID",
                    "Give the stream's " + std::string(name) + " as a UUID string.");
}

}  // namespace

Options parse_options(const json::Value &options) {
  Options out;
  if (options.kind() != json::Kind::object) return out;
  if (const json::Value *p = options.find("pull"); p && !p->is_null()) {
    if (p->kind() != json::Kind::boolean)
      throw OptionError("invalid_option", "pull must be true or false",
                        "\"pull\": true makes the destination a source that pg_ves pulls "
                        "events from.");
    out.pull = p->as_bool();
  }
  out.tenant = uuid_option(options, "tenant_id");
  out.store = uuid_option(options, "store_id");
  if (const json::Value *v = options.find("pull_interval_ms"); v && !v->is_null()) {
    if (!integer_in(*v, 10, 86400000))
      throw OptionError("invalid_option", "pull_interval_ms must be an integer from 10 to 86400000",
                        "How often the worker pulls, in milliseconds (default 1000).");
    out.interval_ms = static_cast<std::int64_t>(v->as_number());
  }
  if (const json::Value *v = options.find("pull_batch"); v && !v->is_null()) {
    if (!integer_in(*v, 1, kMaxBatch))
      throw OptionError("invalid_option", "pull_batch must be an integer from 1 to 1000",
                        "How many events one read asks for (default 100; sequencers serve at "
                        "most 1000).");
    out.batch = static_cast<std::int64_t>(v->as_number());
  }
  if (out.pull && (!out.tenant || !out.store))
    throw OptionError("invalid_option",
                      "a destination with \"pull\": true needs tenant_id and store_id",
                      "Name the stream to pull: '{\"pull\": true, \"tenant_id\": \"<uuid>\", "
                      "\"store_id\": \"<uuid>\"}'.");
  return out;
}

HttpRequest page_request(std::string_view url, std::string_view secret, bool bearer,
                         const ves::Uuid &tenant, const ves::Uuid &store, std::int64_t from,
                         std::int64_t limit) {
  HttpRequest request;
  request.method = "GET";
  std::string base(url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  request.url = base + "/api/v1/events?tenant_id=" + ves::format_uuid(tenant) +
                "&store_id=" + ves::format_uuid(store) + "&from=" + std::to_string(from) +
                "&limit=" + std::to_string(limit);
  validate_url(request.url);
  request.headers.emplace_back("accept", "application/json");
  if (!secret.empty())
    request.headers.emplace_back("authorization",
                                 std::string(bearer ? "Bearer " : "ApiKey ") + std::string(secret));
  return request;
}

FetchVerdict classify_fetch(bool transport_error, long status, std::string_view retry_after,
                            std::string_view body, std::string_view transport_message,
                            std::int64_t now_unix_ms) {
  FetchVerdict v;
  if (transport_error) {
    v.error = "the sequencer could not be read: " + std::string(transport_message);
    return v;
  }
  if (status == 200) {
    v.ok = true;
    return v;
  }
  std::string excerpt(body.substr(0, 200));
  for (char &c : excerpt)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  v.error = "the sequencer answered HTTP " + std::to_string(status) +
            (excerpt.empty() ? std::string() : ": " + excerpt);
  if (status == 429 || status == 503) {
    const std::int64_t ms = parse_retry_after_ms(retry_after, now_unix_ms);
    v.retry_after_ms = ms > 0 ? ms : 0;
  }
  // Credentials, a wrong URL or a refused query do not heal by themselves;
  // they are still tried again, slowly, since an operator may fix them.
  v.retry = !(status == 400 || status == 401 || status == 403 || status == 404);
  return v;
}

std::int64_t backoff_ms(int failures, std::int64_t interval_ms, std::int64_t retry_after_ms) {
  constexpr std::int64_t cap = 300000;
  std::int64_t pause = std::max<std::int64_t>(interval_ms, 500);
  for (int i = 1; i < failures && pause < cap; ++i) pause *= 2;
  pause = std::min(pause, cap);
  return std::max(pause, std::min(retry_after_ms, max_retry_after_ms));
}

const char *stop_name(Stop s) {
  switch (s) {
    case Stop::none:
      return "none";
    case Stop::hole:
      return "hole";
    case Stop::repeat:
      return "repeat";
    case Stop::out_of_order:
      return "out_of_order";
    case Stop::unreadable:
      return "unreadable";
  }
  return "none";
}

Plan plan_page(std::string_view body, std::int64_t from) {
  json::Value page;
  try {
    page = json::parse(body);
  } catch (const Error &e) {
    throw Error("invalid_page",
                std::string("the page is not JSON (or was cut short): ") + e.what());
  }
  const json::Value *events = page.kind() == json::Kind::object ? page.find("events") : nullptr;
  if (!events || events->kind() != json::Kind::array)
    throw Error("invalid_page", "the page is not an object with an \"events\" array");
  Plan plan;
  plan.served = static_cast<std::int64_t>(events->as_array().size());
  std::int64_t expected = from;
  std::string last_id;  // event id of the last item taken
  for (const json::Value &item : events->as_array()) {
    const json::Value *env = item.kind() == json::Kind::object ? item.find("envelope") : nullptr;
    const json::Value *seq =
        env && env->kind() == json::Kind::object ? env->find("sequence_number") : nullptr;
    if (!seq || !integer_in(*seq, 1, 9007199254740991.0)) {
      if (plan.stop == Stop::none) {
        Item bad;
        bad.sequence = expected;
        bad.raw = jcs::canonicalize(item);
        bad.problem = !env || env->kind() != json::Kind::object
                          ? "the item has no envelope object"
                          : "the envelope has no positive integer sequence_number";
        plan.items.push_back(std::move(bad));
        plan.stop = Stop::unreadable;
        plan.stop_at = expected;
        plan.detail = plan.items.back().problem;
      }
      continue;
    }
    const std::int64_t n = static_cast<std::int64_t>(seq->as_number());
    plan.head = std::max(plan.head, n);
    if (plan.stop != Stop::none) continue;  // only the head is still of use
    const json::Value *id = env->find("event_id");
    const std::string this_id = id && id->kind() == json::Kind::string ? id->as_string() : "";
    if (n == expected) {
      Item it;
      it.sequence = n;
      it.envelope = *env;
      if (const json::Value *r = item.find("receipt"); r && !r->is_null()) it.receipt = *r;
      it.raw = jcs::canonicalize(item);
      plan.items.push_back(std::move(it));
      last_id = this_id;
      ++expected;
    } else if (n == expected - 1 && !plan.items.empty() && !this_id.empty() && this_id == last_id) {
      ++plan.repeated;  // the same event served twice in a row
    } else {
      plan.stop = n > expected ? Stop::hole : n == expected - 1 ? Stop::repeat : Stop::out_of_order;
      plan.stop_at = expected;
      plan.served_at_stop = n;
      plan.detail = plan.stop == Stop::hole
                        ? "sequence number " + std::to_string(expected) +
                              " is missing (the page went on at " + std::to_string(n) + ")"
                    : plan.stop == Stop::repeat ? "sequence number " + std::to_string(n) +
                                                      " was served again for another event"
                                                : "sequence number " + std::to_string(n) +
                                                      " came after " + std::to_string(expected - 1);
    }
  }
  return plan;
}

ItemCheck check_item(const Item &item, const ves::Uuid &tenant, const ves::Uuid &store,
                     const sequencer::Settings &settings) {
  ItemCheck out;
  if (!item.problem.empty()) {
    out.kind = "pulled_event_envelope";
    out.reason = item.problem;
    return out;
  }
  ves::Event e;
  try {
    e = ves::envelope_from_json(item.envelope);
  } catch (const Error &err) {
    out.kind = "pulled_event_envelope";
    out.reason = std::string("the envelope cannot be read: ") + err.what();
    return out;
  }
  if (e.tenant_id != tenant || e.store_id != store) {
    out.kind = "pulled_event_stream";
    out.reason = "the event belongs to stream " + ves::format_uuid(e.tenant_id) + "/" +
                 ves::format_uuid(e.store_id) + ", not to the stream pulled";
    return out;
  }
  if (!e.sequence_number || static_cast<std::int64_t>(*e.sequence_number) != item.sequence) {
    out.kind = "pulled_event_stream";
    out.reason = "the envelope's sequence_number is not the number it was served at";
    return out;
  }
  if (!item.receipt) {
    out.kind = "pulled_event_receipt";
    out.reason = "the event was served without its sequencer receipt";
    return out;
  }
  const json::Value *rn =
      item.receipt->kind() == json::Kind::object ? item.receipt->find("sequenceNumber") : nullptr;
  if (!rn || !integer_in(*rn, 1, 9007199254740991.0) ||
      static_cast<std::int64_t>(rn->as_number()) != item.sequence) {
    out.kind = "pulled_event_receipt";
    out.reason = "the receipt is not for the number the event was served at";
    return out;
  }
  const sequencer::ReceiptCheck rc = sequencer::check_receipt(*item.receipt, e, settings);
  if (!rc.valid) {
    out.kind = "pulled_event_receipt";
    out.reason = "the receipt does not verify: " + rc.reason;
    return out;
  }
  out.event = std::move(e);
  return out;
}

}  // namespace pgves::core::pull
