// Checks a destination when it is written and seals its credentials.
//
// ves.create_destination and ves.alter_destination call
// ves._destination_check before they write anything: the URL, the headers
// and the secret go through the src/core validators the worker builds its
// requests with, and timeout_ms is held to ves.max_timeout_ms. The secret
// and the values of secret headers come back sealed under the server key
// (the agent keys' crypto_secretbox), so plain text never reaches a table.
#include "core/platforms/destination_config.hpp"
#include "core/base/error.hpp"
#include "core/delivery/http_request.hpp"
#include "core/json/json.hpp"
#include "pg/base/boundary.hpp"
#include "pg/store/keys.hpp"
#include "pg/base/settings.hpp"
#include "pg/store/stored_event.hpp"

#include <sodium.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace pgves::pg;
namespace core = pgves::core;

namespace {

std::string arg_text(FunctionCallInfo fcinfo, int n) {
  const text *t = PG_GETARG_TEXT_PP(n);
  return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

bytea *to_bytea(const std::vector<uint8> &bytes) {
  bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
  SET_VARSIZE(b, VARHDRSZ + bytes.size());
  std::memcpy(VARDATA(b), bytes.data(), bytes.size());
  return b;
}

void check_url(const std::string &url) {
  try {
    core::validate_url(url);
  } catch (const core::Error &e) {
    throw VesError(sqlstate::invalid_destination_url, e.what(), {},
                   "Give an http:// or https:// URL with a host and no spaces, e.g. "
                   "https://example.com/hooks/pg-ves.");
  }
  if (core::url_has_userinfo(url))
    throw VesError(
        sqlstate::invalid_destination_url, "destination url must not carry a user name or password",
        {},
        "The url is stored in plain text; send credentials in a secret header instead, e.g. "
        "{\"headers\": {\"Authorization\": {\"value\": \"Basic ...\", \"secret\": true}}}.");
}

std::vector<core::HeaderSpec> check_headers(const core::json::Value &headers) {
  try {
    return core::parse_header_option(headers);
  } catch (const core::Error &e) {
    throw VesError(
        sqlstate::invalid_destination_header, e.what(), {},
        "headers is an object of names (RFC 9110 token characters) to string values "
        "without control characters; a secret one is {\"value\": \"...\", \"secret\": true}.");
  }
}

void check_secret(const std::string &kind, const core::json::Value &secret) {
  if (secret.is_null()) return;
  if (secret.kind() != core::json::Kind::string)
    throw VesError(sqlstate::invalid_argument, "the destination secret must be a string", {},
                   "Pass the secret your endpoint gave you as a JSON string.");
  const std::string &s = secret.as_string();
  if (kind == "webhook") {
    try {
      core::validate_webhook_secret(s);
    } catch (const core::Error &) {
      // The core's message may describe the secret; say only what is expected.
      throw VesError(
          sqlstate::invalid_argument,
          "a webhook secret starts with whsec_ (HMAC) or whsk_ (Ed25519) followed by base64", {},
          "Use the secret your endpoint gave you, e.g. whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw.");
    }
  } else {
    for (char c : s)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        throw VesError(sqlstate::invalid_argument,
                       "the destination secret contains a control character", {},
                       "Pass the secret as it was given to you, without line breaks.");
  }
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

}  // namespace

// ves._destination_check(kind, url, options, OUT headers, OUT secret_box,
// OUT headers_box). url may be NULL (unchanged). headers is NULL unless
// options has "headers"; secret_box is NULL unless options has a non-null
// "secret"; headers_box is NULL unless some header is secret.
PGVES_FUNCTION(ves_destination_check) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
    throw VesError(sqlstate::null_argument, "kind and options must not be NULL", {},
                   "Pass '{}' for no options.");
  std::string kind = arg_text(fcinfo, 0);
  if (!PG_ARGISNULL(1)) check_url(arg_text(fcinfo, 1));
  std::string options_text = jsonb_text(PG_GETARG_JSONB_P(2));
  core::json::Value options = core::json::parse(options_text);
  sodium_memzero(options_text.data(), options_text.size());
  if (options.kind() != core::json::Kind::object)
    throw VesError(sqlstate::invalid_argument, "options must be a JSON object", {},
                   "Pass options such as '{\"secret\": \"whsec_...\", \"rate_limit\": 50}'.");

  Datum values[3] = {0, 0, 0};
  bool nulls[3] = {true, true, true};
  if (const core::json::Value *timeout = options.find("timeout_ms")) check_timeout(*timeout);
  if (const core::json::Value *secret = options.find("secret")) {
    check_secret(kind, *secret);
    if (!secret->is_null()) {
      std::vector<uint8> box = keys::seal_secret(secret->as_string());
      values[1] = PointerGetDatum(to_bytea(box));
      nulls[1] = false;
    }
  }
  if (const core::json::Value *headers = options.find("headers")) {
    std::vector<core::HeaderSpec> specs = check_headers(*headers);
    std::string shown = core::displayed_headers_json(specs);
    values[0] = PointerGetDatum(pg_call([&] { return jsonb_from_text(shown); }));
    nulls[0] = false;
    std::string sealed = core::secret_headers_json(specs);
    if (sealed != "{}") {
      std::vector<uint8> box = keys::seal_secret(sealed);
      values[2] = PointerGetDatum(to_bytea(box));
      nulls[2] = false;
    }
    sodium_memzero(sealed.data(), sealed.size());
    for (core::HeaderSpec &h : specs) sodium_memzero(h.value.data(), h.value.size());
  }
  return pg_call([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "pg_ves: ves._destination_check must return a composite");
    desc = BlessTupleDesc(desc);
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}
