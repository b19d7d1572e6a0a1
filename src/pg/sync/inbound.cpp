// ves._inbound_message: the C half of ves.receive_webhook (src/sql/93_inbound.sql).
// Verifies a message a commerce platform sent with the destination's
// adapter and its opened credentials, records a security alert for a
// forgery (alerts.hpp: it outlives the error this raises), and returns the
// message's content as JSON for the SQL half to apply.
#include "core/base/error.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/inbound.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/jsonb_value.hpp"
#include "pg/base/safe.hpp"
#include "pg/sync/alerts.hpp"
#include "pg/sync/clock.hpp"
#include "pg/sync/platform_credentials.hpp"

extern "C" {
#include "utils/builtins.h"
#include "utils/uuid.h"
}

#include <sodium.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgves::pg {
namespace {

namespace core = pgves::core;
using core::json::Kind;
using core::json::Value;

// {"Name": "value"} or {"Name": ["value", ...]}, as HTTP frameworks hand
// headers over.
std::vector<std::pair<std::string, std::string>> header_pairs(const Value &headers) {
  const char *hint =
      "Pass the request's headers as a JSON object of strings, e.g. "
      "'{\"X-Shopify-Hmac-Sha256\": \"...\"}'.";
  if (headers.kind() != Kind::object)
    throw VesError(sqlstate::invalid_argument, "headers must be a JSON object", {}, hint);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto &[name, value] : headers.as_object()) {
    if (value.kind() == Kind::string) {
      out.emplace_back(name, value.as_string());
    } else if (value.kind() == Kind::array) {
      for (const Value &v : value.as_array()) {
        if (v.kind() != Kind::string)
          throw VesError(sqlstate::invalid_argument,
                         "header \"" + name + "\" must be a string or an array of strings", {},
                         hint);
        out.emplace_back(name, v.as_string());
      }
    } else {
      throw VesError(sqlstate::invalid_argument,
                     "header \"" + name + "\" must be a string or an array of strings", {}, hint);
    }
  }
  return out;
}

// The destination's kind options with its opened credentials over them:
// what inbound_key() reads the secret from.
Value merged_options(const Value &options, const Value &credentials) {
  Value::Object out;
  if (options.kind() == Kind::object)
    for (const auto &[k, v] : options.as_object()) {
      bool overridden = false;
      if (credentials.kind() == Kind::object && credentials.find(k)) overridden = true;
      if (!overridden) out.emplace_back(k, v);
    }
  if (credentials.kind() == Kind::object)
    for (const auto &[k, v] : credentials.as_object()) out.emplace_back(k, v);
  return Value(std::move(out));
}

}  // namespace
}  // namespace pgves::pg

using namespace pgves::pg;

// ves._inbound_message(destination_id int, kind text, name text, tenant_id
// uuid, store_id uuid, kind_options jsonb, headers jsonb, body bytea) -> jsonb
// (core::inbound_content_json). Raises VE050 for a message that does not
// verify (after queuing a security alert), VE051 when the destination
// cannot verify what it receives, VE052 for a verified message it cannot read.
PGVES_FUNCTION(ves_inbound_message) {
  for (int i : {0, 1, 2, 5, 6, 7})
    if (PG_ARGISNULL(i))
      throw VesError(sqlstate::null_argument, "arguments must not be NULL", {},
                     "Pass the destination, the request's headers and its raw body.");
  const int destination_id = PG_GETARG_INT32(0);
  const std::string kind = safe::text_string(PG_GETARG_DATUM(1));
  const std::string name = safe::text_string(PG_GETARG_DATUM(2));
  std::optional<pg_uuid_t> tenant, store;
  if (!PG_ARGISNULL(3)) tenant = *DatumGetUUIDP(PG_GETARG_DATUM(3));
  if (!PG_ARGISNULL(4)) store = *DatumGetUUIDP(PG_GETARG_DATUM(4));
  const Value options = jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(5)));
  const Value headers = jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(6)));
  const std::vector<uint8_t> body_bytes = safe::bytea_bytes(PG_GETARG_DATUM(7));
  const std::string body(body_bytes.begin(), body_bytes.end());

  const core::Adapter *adapter = core::find_adapter(kind);
  if (!adapter || !adapter->is_platform())
    throw VesError(
        sqlstate::cannot_receive,
        "destination \"" + name + "\" is of kind " + kind + ", which receives no webhooks", {},
        "Pass the name of a commerce platform destination (shopify, tiktok_shop, meta_catalog).");

  core::InboundMessage message{header_pairs(headers), body};
  std::string key;
  {
    safe::spi_connect();
    platform::Credentials credentials = platform::load(destination_id);
    safe::spi_finish();
    Value merged = merged_options(options, credentials.values);
    key = adapter->inbound_key(merged);
  }
  if (key.empty())
    throw VesError(sqlstate::cannot_receive,
                   "destination \"" + name + "\" has no secret to verify webhooks with", {},
                   "Set the platform's webhook secret with ves.alter_destination (shopify: "
                   "webhook_secret; tiktok_shop and meta_catalog: app_secret).");
  core::InboundCheck check;
  try {
    check = adapter->verify_inbound(key, message, unix_ms());
  } catch (const core::Error &e) {
    sodium_memzero(key.data(), key.size());
    if (e.code() == "unsupported")
      throw VesError(sqlstate::cannot_receive,
                     "destination \"" + name + "\" (kind " + kind + ") verifies no webhooks", {},
                     "This kind receives no messages.");
    throw;
  }
  sodium_memzero(key.data(), key.size());
  if (!check.valid) {
    alerts::Alert alert;
    alert.kind = "webhook_signature";
    alert.source = name;
    alert.reason = check.reason.empty() ? "the signature does not verify" : check.reason;
    alert.raw = body;
    alert.tenant = tenant;
    alert.store = store;
    alerts::report(alert);
    throw VesError(sqlstate::inbound_forged,
                   "the webhook for destination \"" + name + "\" does not verify", alert.reason,
                   "Nothing was applied and a security alert was recorded (ves.security_alerts). "
                   "If the platform's secret changed, set the new one with ves.alter_destination.");
  }
  core::InboundContent content;
  try {
    content = adapter->parse_inbound(message, options);
  } catch (const core::Error &e) {
    throw VesError(sqlstate::inbound_unreadable,
                   "the webhook for destination \"" + name + "\" verifies but cannot be read",
                   e.what(), "Check that the platform sends a topic pg_ves reads (see README).");
  }
  std::string json = core::inbound_content_json(content, kind, body);
  PG_RETURN_JSONB_P(safe::jsonb_from_text(json));
}
