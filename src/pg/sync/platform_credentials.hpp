// The credentials of a commerce platform destination, opened: the sealed
// credential options (ves.destination_secrets.credentials_box) and the
// access token the worker last obtained (ves.destination_tokens), and the
// renewal of that token. Used by the deliverer, ves.reconcile and
// ves.receive_webhook; only code running as the extension owner or the
// worker reaches the boxes.
#pragma once

#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "pg/base/postgres.hpp"
#include "pg/sync/http_engine.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgves::pg::platform {

struct Credentials {
  core::json::Value values = core::json::Value(core::json::Value::Object{});  // {} when none
  std::vector<uint8_t> box;    // credentials_box as stored: what a token is obtained with
  core::AccessToken token;     // empty when none
  bool token_changed = false;  // renewed since loaded: store_token() it
  // How long before its expiry a token is renewed: a minute, or a quarter
  // of the lifetime of one just granted when that is shorter.
  std::int64_t renew_margin_ms = 60000;

  Credentials() = default;
  Credentials(const Credentials &) = delete;
  Credentials &operator=(const Credentials &) = delete;
  Credentials(Credentials &&) = default;
  Credentials &operator=(Credentials &&) = default;
  ~Credentials();
};

// Opens the boxes as read in hex (either may be empty: none).
Credentials open_hex(const std::string &credentials_hex, const std::string &token_hex);

// Loads a destination's credentials and token (SPI connected; the caller
// runs as the extension owner).
Credentials load(int destination_id);

// Whether token may be used at now_unix_ms: set and not expiring within margin_ms.
bool token_usable(const core::AccessToken &token, std::int64_t now_unix_ms,
                  std::int64_t margin_ms = 60000);

// The request for a new access token when the kind renews tokens and the
// held one is not usable (or `force`, after the platform refused it);
// nothing when the held token will do. It carries the credentials: send it
// and let it go.
std::optional<core::HttpRequest> renewal_request(const core::Adapter &adapter,
                                                 const core::Endpoint &endpoint,
                                                 const Credentials &credentials,
                                                 bool force = false);

// Takes the token endpoint's answer to renewal_request: success with the
// new token held (credentials.token, token_changed set), retry or permanent
// with the reason otherwise.
core::RowVerdict take_renewal(const core::Adapter &adapter, Credentials &credentials,
                              const HttpResult &answer);

// Obtains a new access token now when the kind renews tokens and the held
// one is not usable (or `force`, after the platform refused it), by HTTP on
// a private engine (renewal_request, then take_renewal). Returns success when a usable token is
// held afterwards (credentials.token, token_changed set when renewed); retry or permanent with the
// reason otherwise. A kind without renewal always succeeds.
core::RowVerdict ensure_token(const core::Adapter &adapter, const core::Endpoint &endpoint,
                              Credentials &credentials, long timeout_ms, bool force = false);

// Stores a renewed token sealed (SPI connected, in a transaction) unless the
// destination's credentials changed since; clears token_changed.
void store_token(int destination_id, Credentials &credentials);

}  // namespace pgves::pg::platform
