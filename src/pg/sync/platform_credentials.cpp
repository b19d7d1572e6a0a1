// See platform_credentials.hpp.
#include "pg/sync/platform_credentials.hpp"

#include "core/base/error.hpp"
#include "core/json/canonical_json.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/store/keys.hpp"
#include "pg/sync/clock.hpp"
#include "pg/sync/http_engine.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace pgves::pg::platform {
namespace {

namespace core = pgves::core;

std::vector<uint8_t> from_hex(const std::string &hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  size_t len = 0;
  if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, nullptr) != 0)
    throw core::Error("invalid_destination", "a sealed destination credential is not hex");
  out.resize(len);
  return out;
}

std::string opened(const std::vector<uint8_t> &box) {
  return keys::open_secret(box.data(), box.size());
}

const std::string *member(const core::json::Value &v, const char *name) {
  const core::json::Value *m = v.find(name);
  return m && m->kind() == core::json::Kind::string ? &m->as_string() : nullptr;
}

}  // namespace

Credentials::~Credentials() {
  sodium_memzero(token.access_token.data(), token.access_token.size());
  sodium_memzero(token.refresh_token.data(), token.refresh_token.size());
}

Credentials open_hex(const std::string &credentials_hex, const std::string &token_hex) {
  Credentials c;
  if (!credentials_hex.empty()) {
    c.box = from_hex(credentials_hex);
    std::string plain = opened(c.box);
    c.values = core::json::parse(plain);
    sodium_memzero(plain.data(), plain.size());
  }
  if (!token_hex.empty()) {
    std::string plain = opened(from_hex(token_hex));
    core::json::Value t = core::json::parse(plain);
    sodium_memzero(plain.data(), plain.size());
    if (const std::string *s = member(t, "access_token")) c.token.access_token = *s;
    if (const std::string *s = member(t, "refresh_token")) c.token.refresh_token = *s;
    if (const core::json::Value *e = t.find("expires_at_unix_ms");
        e && e->kind() == core::json::Kind::number)
      c.token.expires_at_unix_ms = static_cast<std::int64_t>(e->as_number());
  }
  return c;
}

Credentials load(int destination_id) {
  std::string credentials_hex, token_hex;
  pg_call_void([&] {
    Oid types[1] = {INT4OID};
    Datum args[1] = {Int32GetDatum(destination_id)};
    if (SPI_execute_with_args("SELECT encode(s.credentials_box, 'hex'), encode(t.token_box, 'hex')"
                              " FROM (SELECT $1 AS id) x"
                              " LEFT JOIN ves.destination_secrets s ON s.destination_id = x.id"
                              " LEFT JOIN ves.destination_tokens t ON t.destination_id = x.id",
                              1, types, args, nullptr, true, 1) != SPI_OK_SELECT ||
        SPI_processed != 1)
      elog(ERROR, "pg_ves: cannot read a destination's credentials");
    char *a = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    char *b = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
    if (a) credentials_hex.assign(a);
    if (b) token_hex.assign(b);
  });
  return open_hex(credentials_hex, token_hex);
}

bool token_usable(const core::AccessToken &token, std::int64_t now_unix_ms,
                  std::int64_t margin_ms) {
  return !token.access_token.empty() &&
         (token.expires_at_unix_ms == 0 || token.expires_at_unix_ms - margin_ms > now_unix_ms);
}

std::optional<core::HttpRequest> renewal_request(const core::Adapter &adapter,
                                                 const core::Endpoint &endpoint,
                                                 const Credentials &credentials, bool force) {
  if (!force && token_usable(credentials.token, unix_ms(), credentials.renew_margin_ms))
    return std::nullopt;
  // The platform's current refresh token, when it rotated it, is the one to use.
  core::json::Value::Object values = credentials.values.kind() == core::json::Kind::object
                                         ? credentials.values.as_object()
                                         : core::json::Value::Object{};
  if (!credentials.token.refresh_token.empty()) {
    for (auto it = values.begin(); it != values.end(); ++it)
      if (it->first == "refresh_token") {
        values.erase(it);
        break;
      }
    values.emplace_back("refresh_token", credentials.token.refresh_token);
  }
  core::json::Value current(std::move(values));
  core::Endpoint e = endpoint;
  e.credentials = &current;
  e.access_token = {};
  return adapter.token_request(e);
}

core::RowVerdict take_renewal(const core::Adapter &adapter, Credentials &credentials,
                              const HttpResult &r) {
  core::Answer answer{r.transport_error, r.status, r.retry_after, r.excerpt, r.rate_limit};
  core::TokenAnswer t = adapter.parse_token(answer, unix_ms());
  if (t.verdict.verdict != core::Verdict::success) {
    if (t.verdict.reason.empty())
      t.verdict.reason = r.transport_error ? "token request: " + r.error
                                           : "token request: HTTP " + std::to_string(r.status);
    else
      t.verdict.reason = "token request: " + t.verdict.reason;
    return t.verdict;
  }
  if (t.token.refresh_token.empty()) t.token.refresh_token = credentials.token.refresh_token;
  std::int64_t lifetime = t.token.expires_at_unix_ms - unix_ms();
  credentials.renew_margin_ms = lifetime > 0 ? std::min<std::int64_t>(60000, lifetime / 4) : 0;
  credentials.token = std::move(t.token);
  credentials.token_changed = true;
  return core::RowVerdict{};
}

core::RowVerdict ensure_token(const core::Adapter &adapter, const core::Endpoint &endpoint,
                              Credentials &credentials, long timeout_ms, bool force) {
  std::optional<core::HttpRequest> request = renewal_request(adapter, endpoint, credentials, force);
  if (!request) return core::RowVerdict{};
  std::vector<HttpResult> results = perform_all({*request}, timeout_ms);
  return take_renewal(adapter, credentials, results.at(0));
}

void store_token(int destination_id, Credentials &credentials) {
  if (!credentials.token_changed) return;
  credentials.token_changed = false;
  std::string plain = core::jcs::canonicalize(core::json::Value(core::json::Value::Object{
      {"access_token", credentials.token.access_token},
      {"expires_at_unix_ms", static_cast<double>(credentials.token.expires_at_unix_ms)},
      {"refresh_token", credentials.token.refresh_token}}));
  std::vector<uint8_t> box = keys::seal_secret(plain);
  sodium_memzero(plain.data(), plain.size());
  Datum token_box = safe::bytea_datum(box.data(), box.size());
  Datum used = credentials.box.empty()
                   ? Datum(0)
                   : safe::bytea_datum(credentials.box.data(), credentials.box.size());
  std::int64_t expires = credentials.token.expires_at_unix_ms;
  pg_call_void([&] {
    Oid types[4] = {INT4OID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID};
    // Unix milliseconds to PostgreSQL's epoch (2000-01-01) in microseconds.
    TimestampTz at = (expires - 946684800000LL) * 1000;
    Datum args[4] = {Int32GetDatum(destination_id), used, token_box, TimestampTzGetDatum(at)};
    char nulls[5] = {' ', used ? ' ' : 'n', ' ', expires ? ' ' : 'n', '\0'};
    if (SPI_execute_with_args("SELECT ves._store_destination_token($1, $2, $3, $4)", 4, types, args,
                              nulls, false, 1) != SPI_OK_SELECT)
      elog(ERROR, "pg_ves: cannot store a destination's access token");
  });
}

}  // namespace pgves::pg::platform
