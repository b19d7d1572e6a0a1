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
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/destination_config.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/settings.hpp"
#include "pg/store/keys.hpp"

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

// ves._destination_check(kind, url, options, OUT headers, OUT secret_box,
// OUT headers_box). url may be NULL (unchanged). headers is NULL unless
// options has "headers"; secret_box is NULL unless options has a non-null
// "secret"; headers_box is NULL unless some header is secret.
PGVES_FUNCTION(ves_destination_check) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
    throw VesError(sqlstate::null_argument, "kind and options must not be NULL", {},
                   "Pass '{}' for no options.");
  const core::Adapter &adapter = adapter_for(safe::text_string(PG_GETARG_DATUM(0)));
  if (!PG_ARGISNULL(1)) {
    std::string url = safe::text_string(PG_GETARG_DATUM(1));
    checked([&] { adapter.validate_url(url); });
  }
  std::string options_text = safe::jsonb_text(safe::jsonb_detoast(PG_GETARG_DATUM(2)));
  core::json::Value options = core::json::parse(options_text);
  sodium_memzero(options_text.data(), options_text.size());
  if (options.kind() != core::json::Kind::object)
    throw VesError(sqlstate::invalid_argument, "options must be a JSON object", {},
                   "Pass options such as '{\"secret\": \"whsec_...\", \"rate_limit\": 50}'.");

  Datum values[3] = {0, 0, 0};
  bool nulls[3] = {true, true, true};
  if (const core::json::Value *timeout = options.find("timeout_ms")) check_timeout(*timeout);
  std::vector<core::HeaderSpec> specs = checked([&] { return adapter.validate_options(options); });
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
