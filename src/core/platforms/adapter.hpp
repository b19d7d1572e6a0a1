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
#include <optional>
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
  // The kind's credential options (Adapter::secret_option_names(), opened
  // from ves.destination_secrets.credentials_box): a JSON object, nullptr
  // when the kind has none.
  const json::Value *credentials = nullptr;
  // An access token the deliverer obtained with token_request() and still
  // holds valid; "" when none (use the credentials' own access_token, if any).
  std::string_view access_token = {};
};

// One mapped listing of the SKU an outbox row is about (ves.listings), with
// the facts the deliverer read when it claimed the row: what a platform
// destination sends is the SKU's count at send time, not the event's.
struct ListingFacts {
  std::string_view sku;
  std::string_view location;
  const json::Value *platform_ref = nullptr;  // as validate_listing() accepted it
  std::int64_t quantity = 0;                  // the sellable count to set (available)
  // The count we last knew the platform to have (pushed and acknowledged,
  // or reported by it); nullopt when unknown.
  std::optional<std::int64_t> known;
};

// One outbox row to send: the exported VES envelope of its event.
struct OutboxRow {
  std::int64_t id = 0;        // ves.outbox.id
  std::string_view event_id;  // the event's UUID: idempotency key and message id
  std::string_view body;      // the envelope, JSON (empty for platform kinds)
  int attempt = 1;            // 1 for the first attempt
  // The event's version in its entity's stream, and whether the destination
  // may check the version it was written on (false once a person resolved a
  // version conflict in favour of this event).
  std::int64_t entity_version = 0;
  bool base_check = true;
  // Platform kinds (Adapter::is_platform()): the listings of the row's SKU
  // at this destination whose count differs from what the platform is known
  // to have (never empty: a row with nothing to change is not sent).
  const std::vector<ListingFacts> *listings = nullptr;
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
  std::string_view rate_limit;   // the x-amzn-RateLimit-Limit header, "" when absent
};

enum class Verdict {
  success,         // accepted
  retry,           // transient; again after retry_after_ms (or the backoff when -1)
  permanent,       // refused; retrying cannot help (reason says why)
  gone,            // the endpoint no longer exists (HTTP 410): pause the destination
  reauthenticate,  // the credential was refused or expired: renew it, then retry
  stale,           // a compare-and-set precondition failed: the platform moved on
  conflict,        // a version precondition failed: the event was written on a base the
                   // destination has moved past; a person decides (ves.resolve_conflict)
};

const char *to_string(Verdict verdict);

struct RowVerdict {
  Verdict verdict = Verdict::success;
  std::int64_t retry_after_ms = -1;  // retry: the wait the answer asked for, -1 none
  std::string reason;                // permanent, stale, reauthenticate, conflict: why
  // success: a verified sequencer receipt to store (compact JSON), or empty.
  std::string receipt;
  bool receipt_signature_verified = false;  // its signature was checked against a known key
  // success of a platform that accepted the row for later processing: the
  // handle to ask about its fate with (Adapter::follow_up_request), or empty.
  std::string follow_up;
};

// An access token a platform granted (token_request / parse_token).
struct AccessToken {
  std::string access_token;
  std::int64_t expires_at_unix_ms = 0;
  std::string refresh_token;  // the platform's current one ("" when it sent none)
};

// What a token endpoint answered: success with token; retry (429, 5xx, no
// answer); permanent (the credentials were refused; reason says which).
struct TokenAnswer {
  RowVerdict verdict;
  AccessToken token;
};

// What a platform told pg_ves in one inbound message (parse_inbound).
struct StockReport {
  std::string platform_key;  // matches listing_key() of a mapped listing
  std::int64_t quantity = 0;
  std::int64_t observed_at_unix_ms = 0;  // 0: when received
};
struct OrderNotice {
  std::string order_id;
  std::string status;   // the platform's status word, lowercased
  std::string payload;  // JSON object: what the platform sent about the order
};
struct InboundContent {
  std::string delivery_id;  // the platform's id of this delivery (dedupe key), "" none
  std::string topic;        // what the platform says the message is about
  std::vector<StockReport> stock;
  std::vector<OrderNotice> orders;
};

// What a read of listings answered: verdict success with one quantity per
// listing of the request (nullopt: the platform does not know it), or why
// not (retry, reauthenticate: renew the token and read again, permanent).
struct ReadAnswer {
  RowVerdict verdict;
  std::vector<std::optional<std::int64_t>> quantities;
};

// What a status request for an accepted batch answered (classify_follow_up):
// not finished yet (lines empty), finished with one verdict per line, or an
// error answer (finished false, lines: the error for every line).
struct FollowUpAnswer {
  bool finished = false;
  std::vector<RowVerdict> lines;
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

  // The limits a destination of this kind gets when its options name none:
  // rate_limit requests per second (0: unlimited) with a bucket of burst,
  // and at most concurrency requests in flight. Platform kinds return their
  // platform's published limits (see each adapter).
  struct KindDefaults {
    double rate_limit = 0;
    int burst = 10;
    int concurrency = 16;
  };
  virtual KindDefaults defaults() const { return {}; }

  // How many outbox rows one request may carry: the deliverer hands
  // build_requests() up to this many rows of a destination at once (1: one
  // row per request).
  virtual std::size_t max_rows_per_request() const { return 1; }

  // Whether requests go over libpq to another PostgreSQL (ves_postgres)
  // rather than HTTP: the deliverer hands their body to src/pg/sync/remote_pg.
  virtual bool over_libpq() const { return false; }

  // --- commerce platforms (shopify, tiktok_shop, amazon_sp, meta_catalog) ---

  // Whether this kind syncs mapped listings (ves.listings) rather than
  // sending events: its destinations serve one store (options tenant_id and
  // store_id), take inventory events only, and each row carries the facts of
  // the SKU's listings (OutboxRow::listings).
  virtual bool is_platform() const { return false; }

  // Options that are credentials: sealed in
  // ves.destination_secrets.credentials_box, never stored in kind_options nor
  // shown, handed back as Endpoint::credentials. A subset of option_names().
  virtual std::vector<std::string_view> secret_option_names() const { return {}; }

  // Checks a listing's platform_ref against the destination's kind options
  // (ves.destinations.kind_options; no credentials). Throws OptionError.
  virtual void validate_listing(const json::Value &platform_ref, const json::Value &options) const {
    (void)platform_ref;
    (void)options;
    throw OptionError("invalid_option", "this destination kind has no listings",
                      "Map listings to a commerce platform destination.");
  }
  // The identity of a listing on the platform as one string (e.g. a
  // Shopify inventory item and location), the key inbound reports and reads
  // are matched by (kind options as for validate_listing). Only called with
  // a platform_ref validate_listing accepted.
  virtual std::string listing_key(const json::Value &platform_ref,
                                  const json::Value &options) const {
    (void)platform_ref;
    (void)options;
    return {};
  }
  // Whether the platform holds one count per listing key, so one SKU may be
  // mapped to one location only (Amazon, Meta).
  virtual bool one_location_per_sku() const { return false; }

  // The request that obtains a fresh access token, or nullopt when this
  // kind's credentials need no renewal. Throws Error when the credentials
  // cannot make one.
  virtual std::optional<HttpRequest> token_request(const Endpoint &endpoint) const {
    (void)endpoint;
    return std::nullopt;
  }
  virtual TokenAnswer parse_token(const Answer &answer, std::int64_t now_unix_ms) const {
    (void)answer;
    (void)now_unix_ms;
    throw Error("unsupported", "this destination kind obtains no tokens");
  }

  // Reading the platform's current counts (reconciliation, a stale
  // compare-and-set): the requests that read listings (PlatformRequest::rows
  // index into listings), and what one of them answered for the listings of
  // that request, in order.
  virtual std::vector<PlatformRequest> build_reads(const Endpoint &endpoint,
                                                   const std::vector<ListingFacts> &listings,
                                                   std::int64_t now_unix_ms) const {
    (void)endpoint;
    (void)listings;
    (void)now_unix_ms;
    throw Error("unsupported", "this destination kind cannot read counts");
  }
  virtual ReadAnswer parse_reads(const Endpoint &endpoint, const Answer &answer,
                                 const std::vector<const ListingFacts *> &listings,
                                 std::int64_t now_unix_ms) const {
    (void)endpoint;
    (void)answer;
    (void)listings;
    (void)now_unix_ms;
    throw Error("unsupported", "this destination kind cannot read counts");
  }

  // Platforms that accept a batch and process it later (RowVerdict::follow_up):
  // the request that asks about handle, and what its answer says per line of
  // the batch; line_keys are the lines' listing_key()s in the order they were
  // sent.
  virtual HttpRequest follow_up_request(const Endpoint &endpoint, std::string_view handle) const {
    (void)endpoint;
    (void)handle;
    throw Error("unsupported", "this destination kind gives no handles to follow up");
  }
  virtual FollowUpAnswer classify_follow_up(const Endpoint &endpoint, const Answer &answer,
                                            const std::vector<std::string> &line_keys,
                                            std::int64_t now_unix_ms) const {
    (void)endpoint;
    (void)answer;
    (void)line_keys;
    (void)now_unix_ms;
    throw Error("unsupported", "this destination kind gives no handles to follow up");
  }

  // The content of an inbound message verify_inbound() accepted: its
  // delivery id, stock reports and order notices. Throws Error("invalid_message").
  virtual InboundContent parse_inbound(const InboundMessage &message,
                                       const json::Value &options) const {
    (void)message;
    (void)options;
    throw Error("unsupported", "this destination kind receives no messages");
  }
  // The key verify_inbound() checks an inbound message with, from the
  // destination's options and credentials merged ("" when none is set: the
  // message cannot be verified and is refused).
  virtual std::string inbound_key(const json::Value &options) const {
    (void)options;
    return {};
  }
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
