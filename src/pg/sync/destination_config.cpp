// Checks a destination when it is written and seals its credentials.
//
// ves.create_destination and ves.alter_destination call
// ves._destination_check before they write anything: the kind's adapter
// (src/core/platforms/adapter.hpp) checks the URL, the secret and the headers
// with the validators the worker builds its requests with, and timeout_ms is
// held to ves.max_timeout_ms. The secret and the values of secret headers
// come back sealed under the server key (the agent keys' crypto_secretbox),
// so plain text never reaches a table.
#include "core/base/error.hpp"
#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/destination_config.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/settings.hpp"
#include "pg/store/keys.hpp"
#include "pg/sync/remote_pg.hpp"

#include <sodium.h>

#include <cmath>
#include <string>
#include <vector>

using namespace pgves::pg;
namespace core = pgves::core;

namespace {

// The SQLSTATE of each family of core::OptionError (adapter.hpp).
int option_sqlstate(const std::string &code) {
  if (code == "invalid_url") return sqlstate::invalid_destination_url;
  if (code == "invalid_header") return sqlstate::invalid_destination_header;
  return sqlstate::invalid_argument;
}

// Runs one of the adapter's checks, turning its refusal into the VesError
// the SQL functions raise.
template <typename F>
auto checked(F &&check) -> decltype(check()) {
  try {
    return check();
  } catch (const core::OptionError &e) {
    throw VesError(option_sqlstate(e.code()), e.what(), {}, e.hint());
  }
}

const core::Adapter &adapter_for(const std::string &kind) {
  const core::Adapter *adapter = core::find_adapter(kind);
  if (!adapter)
    throw VesError(sqlstate::invalid_argument, "unknown destination kind \"" + kind + "\"", {},
                   "Kinds: " + core::describe_kinds() + ".");
  return *adapter;
}

void check_timeout(const core::json::Value &timeout) {
  if (timeout.kind() != core::json::Kind::number)
    return;  // the type and range checks follow in SQL
  double ms = timeout.as_number();
  if (ms > settings::max_timeout_ms)
    throw VesError(sqlstate::timeout_above_maximum,
                   "timeout_ms " + std::to_string(static_cast<long long>(std::floor(ms))) +
                       " is above ves.max_timeout_ms (" + std::to_string(settings::max_timeout_ms) +
                       ")",
                   {},
                   "Use a timeout_ms between 100 and " + std::to_string(settings::max_timeout_ms) +
                       ", or have a superuser raise ves.max_timeout_ms.");
}

Datum sealed(const std::string &plain) {
  std::vector<uint8> box = keys::seal_secret(plain);
  return safe::bytea_datum(box.data(), box.size());
}

// The OUT parameters of fcinfo's function as one composite Datum.
Datum composite_result(FunctionCallInfo fcinfo, Datum *values, bool *nulls) {
  return pg_call([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "pg_ves: ves._destination_check must return a composite");
    desc = BlessTupleDesc(desc);
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}

}  // namespace

namespace {

// Opens a sealed JSON object (a credentials box), or {} for NULL.
core::json::Value opened_object(FunctionCallInfo fcinfo, int arg) {
  if (PG_ARGISNULL(arg)) return core::json::Value(core::json::Value::Object{});
  std::vector<uint8_t> box = safe::bytea_bytes(PG_GETARG_DATUM(arg));
  std::string opened = keys::open_secret(box.data(), box.size());
  core::json::Value v = core::json::parse(opened);
  sodium_memzero(opened.data(), opened.size());
  return v;
}

// A jsonb argument parsed, or {} for NULL.
core::json::Value json_arg(FunctionCallInfo fcinfo, int arg) {
  if (PG_ARGISNULL(arg)) return core::json::Value(core::json::Value::Object{});
  std::string text = safe::jsonb_text(safe::jsonb_detoast(PG_GETARG_DATUM(arg)));
  core::json::Value v = core::json::parse(text);
  sodium_memzero(text.data(), text.size());
  return v;
}

bool contains(const std::vector<std::string_view> &names, const std::string &name) {
  for (std::string_view n : names)
    if (n == name) return true;
  return false;
}

// object with member name set to value (replaced when present), or removed
// when value is null.
void overlay(core::json::Value::Object &object, const std::string &name,
             const core::json::Value &value) {
  for (auto it = object.begin(); it != object.end(); ++it)
    if (it->first == name) {
      object.erase(it);
      break;
    }
  if (!value.is_null()) object.emplace_back(name, value);
}

}  // namespace

// ves._destination_check(kind, url, options, stored, stored_credentials,
// OUT headers, OUT secret_box, OUT headers_box, OUT credentials_box).
// url may be NULL (unchanged). headers is NULL unless options has
// "headers"; secret_box is NULL unless options has a non-null "secret";
// headers_box is NULL unless some header is secret.
//
// A kind with credentials (core::Adapter::secret_option_names()) is checked
// as a whole: its stored options (`stored`: kind_options and tenant_id) and
// opened stored credentials, overlaid with `options` (null removes one), so
// that altering one option cannot leave a set the worker cannot use;
// credentials_box is then the sealed credentials of that set (NULL when the
// kind has none).
PGVES_FUNCTION(ves_destination_check) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
    throw VesError(sqlstate::null_argument, "kind and options must not be NULL", {},
                   "Pass '{}' for no options.");
  const core::Adapter &adapter = adapter_for(safe::text_string(PG_GETARG_DATUM(0)));
  if (!PG_ARGISNULL(1)) {
    std::string url = safe::text_string(PG_GETARG_DATUM(1));
    checked([&] { adapter.validate_url(url); });
  }
  core::json::Value options = json_arg(fcinfo, 2);
  if (options.kind() != core::json::Kind::object)
    throw VesError(sqlstate::invalid_argument, "options must be a JSON object", {},
                   "Pass options such as '{\"secret\": \"whsec_...\", \"rate_limit\": 50}'.");

  Datum values[4] = {0, 0, 0, 0};
  bool nulls[4] = {true, true, true, true};
  if (const core::json::Value *timeout = options.find("timeout_ms")) check_timeout(*timeout);
  std::vector<std::string_view> secret_names = adapter.secret_option_names();
  std::vector<core::HeaderSpec> specs;
  // 0.2.0's SQL calls this with three arguments (until the update).
  const bool has_stored = PG_NARGS() > 3 && !PG_ARGISNULL(3);
  if (secret_names.empty() && !has_stored) {
    specs = checked([&] { return adapter.validate_options(options); });
  } else if (secret_names.empty()) {
    // An alteration is checked with what is stored, so that options that
    // only make sense together (a pull source's "pull", tenant_id and
    // store_id) cannot be left half given by changing one of them.
    core::json::Value stored = json_arg(fcinfo, 3);
    core::json::Value::Object merged;
    if (stored.kind() == core::json::Kind::object) merged = stored.as_object();
    for (const auto &[name, value] : options.as_object()) overlay(merged, name, value);
    core::json::Value whole(merged);
    specs = checked([&] { return adapter.validate_options(whole); });
  } else {
    // The whole set: what is stored, the stored credentials, then the change.
    core::json::Value::Object merged;
    core::json::Value stored = json_arg(fcinfo, 3);
    if (stored.kind() == core::json::Kind::object) merged = stored.as_object();
    core::json::Value stored_credentials = opened_object(fcinfo, 4);
    if (stored_credentials.kind() == core::json::Kind::object)
      for (const auto &[name, value] : stored_credentials.as_object()) overlay(merged, name, value);
    for (const auto &[name, value] : options.as_object()) overlay(merged, name, value);
    core::json::Value whole(merged);
    specs = checked([&] { return adapter.validate_options(whole); });
    if (const core::json::Value *conninfo = whole.find("conninfo");
        conninfo && conninfo->kind() == core::json::Kind::string)
      if (remote_pg::Refusal refused = remote_pg::conninfo_refusal(conninfo->as_string());
          !refused.message.empty())
        throw VesError(sqlstate::invalid_argument, refused.message, {}, refused.hint);
    core::json::Value::Object credentials;
    for (const auto &[name, value] : merged)
      if (contains(secret_names, name)) credentials.emplace_back(name, value);
    std::string plain = core::jcs::canonicalize(core::json::Value(std::move(credentials)));
    values[3] = sealed(plain);
    nulls[3] = false;
    sodium_memzero(plain.data(), plain.size());
  }
  if (const core::json::Value *secret = options.find("secret"); secret && !secret->is_null()) {
    values[1] = sealed(secret->as_string());
    nulls[1] = false;
  }
  if (options.find("headers")) {
    values[0] = PointerGetDatum(safe::jsonb_from_text(core::displayed_headers_json(specs)));
    nulls[0] = false;
    std::string secret_headers = core::secret_headers_json(specs);
    if (secret_headers != "{}") {
      values[2] = sealed(secret_headers);
      nulls[2] = false;
    }
    sodium_memzero(secret_headers.data(), secret_headers.size());
    for (core::HeaderSpec &h : specs) sodium_memzero(h.value.data(), h.value.size());
  }
  return composite_result(fcinfo, values, nulls);
}

// ves._listing_check(kind text, platform_ref jsonb, kind_options jsonb) ->
// text: the listing's key on the platform (core::Adapter::listing_key) once
// its adapter accepted platform_ref (VE010 with a hint otherwise).
PGVES_FUNCTION(ves_listing_check) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    throw VesError(sqlstate::null_argument, "kind and platform_ref must not be NULL", {},
                   "Pass the platform's ids of the listing as a JSON object.");
  const core::Adapter &adapter = adapter_for(safe::text_string(PG_GETARG_DATUM(0)));
  core::json::Value ref = json_arg(fcinfo, 1);
  core::json::Value options = json_arg(fcinfo, 2);
  std::string key = checked([&] {
    adapter.validate_listing(ref, options);
    return adapter.listing_key(ref, options);
  });
  return safe::text_datum(key);
}
