// One interface per destination kind. Everything that differs between the
// places pg_ves sends to lives behind it: which options a destination of
// that kind accepts, the requests a batch of outbox rows becomes, what an
// answer means for each row, and how a message received from the platform
// is authenticated. The deliverer (src/pg/sync/) and the option checks
// (ves._destination_check) only ever ask find_adapter(kind); the list of
// kinds SQL accepts is adapter_kinds() (ves.destination_kinds()).
//
// A new platform is one adapter in its own file here, registered in
// registry.cpp; nothing else names a kind.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/error.hpp"
#include "core/delivery/delivery_outcome.hpp"
#include "core/delivery/http_request.hpp"
#include "core/json/json.hpp"
#include "core/platforms/destination_config.hpp"

namespace pgves::core {

// A destination option an adapter refuses. code() is the family the
// PostgreSQL layer maps to a SQLSTATE ("invalid_url" -> VE040,
// "invalid_header" -> VE041, "invalid_option" -> VE010); what() says what
// was wrong without quoting a secret, hint() what to do.
class OptionError : public Error {
 public:
  OptionError(std::string code, const std::string &message, std::string hint)
      : Error(std::move(code), message), hint_(std::move(hint)) {}

  const std::string &hint() const noexcept { return hint_; }

 private:
  std::string hint_;
};

// Where and with what a destination sends: views of the deliverer's own
// copies, so that no further copy of a credential is made.
struct Endpoint {
  const std::string &url;
  const std::string &secret;                                        // empty: none
  const std::vector<std::pair<std::string, std::string>> &headers;  // extra, in order
  // The kind's own options (Adapter::option_names(), stored in
  // ves.destinations.kind_options); nullptr: none given.
  const json::Value *options = nullptr;
};

// One outbox row to send: the exported VES envelope of its event.
struct OutboxRow {
  std::int64_t id = 0;        // ves.outbox.id
  std::string_view event_id;  // the event's UUID: idempotency key and message id
  std::string_view body;      // the envelope, JSON
  int attempt = 1;            // 1 for the first attempt
};

// One request and the rows (indexes into the batch) whose fate its answer decides.
struct PlatformRequest {
  HttpRequest http;
  std::vector<std::size_t> rows;
};

// What came back for one request.
struct Answer {
  bool transport_error = false;  // no HTTP response at all (refused, reset, timeout)
  long status = 0;
  std::string_view retry_after;  // the Retry-After header, "" when absent
  std::string_view body;         // what was read of the response body
};

enum class Verdict {
  success,         // accepted
  retry,           // transient; again after retry_after_ms (or the backoff when -1)
  permanent,       // refused; retrying cannot help (reason says why)
  gone,            // the endpoint no longer exists (HTTP 410): pause the destination
  reauthenticate,  // the credential was refused or expired: renew it, then retry
  stale,           // a compare-and-set precondition failed: the platform moved on
};

const char *to_string(Verdict verdict);

struct RowVerdict {
  Verdict verdict = Verdict::success;
  std::int64_t retry_after_ms = -1;  // retry: the wait the answer asked for, -1 none
  std::string reason;                // permanent, stale, reauthenticate: why
  // success: a verified sequencer receipt to store (compact JSON), or empty.
  std::string receipt;
  bool receipt_signature_verified = false;  // its signature was checked against a known key
};

// The deliverer's outcome for a verdict: reauthenticate is a retry with
// backoff until a kind can renew its credential, stale is permanent.
Classified to_classified(const RowVerdict &verdict);

// A message a platform sent to pg_ves (a webhook or a callback), as received.
struct InboundMessage {
  std::vector<std::pair<std::string, std::string>> headers;  // names in any case
  std::string_view body;
};

struct InboundCheck {
  bool valid = false;
  std::string reason;  // why it was refused; empty when valid
};

class Adapter {
 public:
  virtual ~Adapter() = default;

  // The value of ves.destinations.kind, and a few words for lists and hints.
  virtual std::string_view kind() const = 0;
  virtual std::string_view description() const = 0;

  // The options of this kind beyond the common ones (secret, headers, the
  // filters and limits that SQL parses): ves._destination_options accepts
  // them and stores them in ves.destinations.kind_options, and the deliverer
  // passes them back as Endpoint::options.
  virtual std::vector<std::string_view> option_names() const { return {}; }

  // Throws OptionError unless url is one this kind can send to.
  virtual void validate_url(std::string_view url) const = 0;

  // Checks the options of this kind that pg_ves parses (the secret and the
  // headers; the numeric limits are checked in SQL) and returns the parsed
  // headers when options has "headers". options is a JSON object. Throws
  // OptionError.
  virtual std::vector<HeaderSpec> validate_options(const json::Value &options) const = 0;

  // The requests that send rows (at least one row) at now_unix_ms. Every row
  // is covered by exactly one request. Throws Error when the endpoint cannot
  // make a request (invalid_url, invalid_header, invalid_webhook_secret).
  virtual std::vector<PlatformRequest> build_requests(const Endpoint &endpoint,
                                                      const std::vector<OutboxRow> &rows,
                                                      std::int64_t now_unix_ms) const = 0;

  // One verdict per row (row_count, in the order of PlatformRequest::rows)
  // of the request that got answer.
  virtual std::vector<RowVerdict> classify(const Answer &answer, std::size_t row_count,
                                           std::int64_t now_unix_ms) const = 0;

  // classify() for a kind that reads the rows themselves out of the answer
  // (per-row results, receipts); the deliverer calls this one. rows are those
  // of the request, in order.
  virtual std::vector<RowVerdict> classify_rows(const Endpoint &endpoint, const Answer &answer,
                                                const std::vector<OutboxRow> &rows,
                                                std::int64_t now_unix_ms) const {
    (void)endpoint;
    return classify(answer, rows.size(), now_unix_ms);
  }

  // Whether message was sent by the holder of key and is fresh: within
  // tolerance_s of now_unix_ms. Throws Error("unsupported") for a kind that
  // defines no signature for what it receives.
  virtual InboundCheck verify_inbound(std::string_view key, const InboundMessage &message,
                                      std::int64_t now_unix_ms,
                                      std::int64_t tolerance_s = 300) const = 0;
};

// The adapter of a kind, or nullptr for a kind pg_ves does not know.
const Adapter *find_adapter(std::string_view kind);

// Every kind, in the order lists and hints show them.
std::vector<std::string_view> adapter_kinds();

// "webhook (Standard Webhooks), http (plain JSON POST)": for hints.
std::string describe_kinds();

// Shared by adapters that speak plain HTTP (webhook, http).
namespace adapters {

// validate_url, and no user name or password in it; OptionError("invalid_url").
void validate_http_url(std::string_view url);

// parse_header_option as OptionError("invalid_header"), or {} without "headers".
std::vector<HeaderSpec> validate_header_option(const json::Value &options);

// The "secret" option, or nullptr when absent or null; OptionError("invalid_option")
// when it is not a string.
const std::string *secret_option(const json::Value &options);

// What a plain HTTP status means for every row of a request: classify_http
// (2xx success, 410 gone, 408/425/429/5xx retry with Retry-After, the rest
// permanent), a transport error a retry. A platform that answers 401 for an
// expired token, or 409/412 for a lost compare-and-set, says so in rules.
struct StatusRules {
  bool reauthenticate_on_401 = false;
  bool stale_on_409_412 = false;
};
std::vector<RowVerdict> classify_status(const Answer &answer, std::size_t row_count,
                                        std::int64_t now_unix_ms, StatusRules rules = {});

// One request per row, built by build(row).
template <typename Build>
std::vector<PlatformRequest> one_request_per_row(const std::vector<OutboxRow> &rows, Build build) {
  std::vector<PlatformRequest> out;
  out.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) out.push_back(PlatformRequest{build(rows[i]), {i}});
  return out;
}

}  // namespace adapters

}  // namespace pgves::core
