// See reconcile.hpp.
#include "pg/sync/reconcile.hpp"

#include "core/base/error.hpp"
#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/jsonb_value.hpp"
#include "pg/base/progress.hpp"
#include "pg/base/safe.hpp"
#include "pg/sync/alerts.hpp"
#include "pg/sync/clock.hpp"
#include "pg/sync/deliverer.hpp"
#include "pg/sync/http_engine.hpp"
#include "pg/sync/own_transaction.hpp"
#include "pg/sync/platform_credentials.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "utils/snapmgr.h"
}

#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgves::pg::reconcile {
namespace {

namespace core = pgves::core;
using core::json::Kind;
using core::json::Value;

// The token bucket of a destination's reads in this process. It outlives a
// call, so that the slices of a run (and one session's runs) keep to the
// destination's rate together: a bucket made for each slice would start
// every slice with a full burst, and a destination whose burst is larger
// than what its rate refills during the pause between slices would be read
// faster than its rate_limit.
core::TokenBucket &read_bucket(int destination_id, double rate_per_s, double burst) {
  static std::map<int, core::TokenBucket> buckets;
  auto it = buckets.find(destination_id);
  if (it == buckets.end())
    return buckets.emplace(destination_id, core::TokenBucket(rate_per_s, burst)).first->second;
  it->second.reconfigure(rate_per_s, burst);
  return it->second;
}

// The pace of a destination's reads, from a reader's (rate_limit float8,
// burst int, concurrency int) arguments starting at `arg`: its read bucket
// and concurrency, no deadline, waiting for tokens.
Pace read_pace(FunctionCallInfo fcinfo, int arg, int destination_id) {
  core::TokenBucket &bucket =
      read_bucket(destination_id, PG_ARGISNULL(arg) ? 0 : PG_GETARG_FLOAT8(arg),
                  PG_ARGISNULL(arg + 1) ? 1 : PG_GETARG_INT32(arg + 1));
  return Pace{&bucket,
              PG_ARGISNULL(arg + 2) ? 0 : static_cast<std::size_t>(PG_GETARG_INT32(arg + 2)), 0};
}

struct Listing {
  std::string sku, location;
  Value ref;
  std::optional<std::int64_t> known;
  std::int64_t available = 0;
};

// Where a slice of a run starts and how long it is: after the listing
// (sku, location) when `after` is set, at most `limit` listings when set.
struct Slice {
  std::optional<std::pair<std::string, std::string>> after;
  std::optional<std::int64_t> limit;
};

// The destination's listings (all, or the stale ones) with the SKU's count,
// in (SKU, location) order, those of the slice.
std::vector<Listing> load_listings(int destination_id, bool stale_only, const Slice &slice) {
  static SavedPlan plan{
      "SELECT l.sku, l.location, l.platform_ref::text, l.known_quantity,"
      " coalesce(i.available, 0)::int8"
      " FROM ves.listings l LEFT JOIN ves.inventory i ON i.tenant_id = l.tenant_id"
      " AND i.store_id = l.store_id AND i.sku = l.sku AND i.location = l.location"
      " WHERE l.destination_id = $1 AND (NOT $2 OR l.state = 'stale')"
      "   AND ($3::text IS NULL OR (l.sku, l.location) > ($3, $4))"
      " ORDER BY l.sku, l.location LIMIT $5",
      5,
      {INT4OID, BOOLOID, TEXTOID, TEXTOID, INT8OID},
      nullptr};
  Datum args[5] = {Int32GetDatum(destination_id), BoolGetDatum(stale_only), 0, 0,
                   Int64GetDatum(slice.limit.value_or(0))};
  char nulls[6] = {' ', ' ', 'n', 'n', slice.limit ? ' ' : 'n', '\0'};
  if (slice.after) {
    args[2] = safe::text_datum(slice.after->first);
    args[3] = safe::text_datum(slice.after->second);
    nulls[2] = nulls[3] = ' ';
  }
  safe::spi_run(plan, args, nulls, true, SPI_OK_SELECT);
  std::vector<Listing> out;
  const uint64 n = SPI_processed;
  out.reserve(n);
  for (uint64 r = 0; r < n; ++r) {
    Listing l;
    l.sku = safe::spi_text(r, 1);
    l.location = safe::spi_text(r, 2);
    l.ref = core::json::parse(safe::spi_text(r, 3));
    if (!safe::spi_isnull(r, 4)) l.known = safe::spi_int64(r, 4, 0);
    l.available = safe::spi_int64(r, 5, 0);
    out.push_back(std::move(l));
  }
  return out;
}

constexpr std::size_t kChunk = 200;  // listings read per round of requests
// How long a worker's slice (max_listings given) may start reads for.
constexpr std::int64_t kSliceBudgetMs = 1000;

// What each listing of a round of reads got: nothing yet (not asked, or no
// usable answer), or the platform's count (nullopt: it does not know the
// item).
using Got = std::vector<std::optional<std::optional<std::int64_t>>>;

// How many rows, from the first, the first `sent` requests asked about.
std::size_t asked_prefix(const std::vector<core::PlatformRequest> &requests, std::size_t sent,
                         std::size_t rows) {
  std::vector<bool> asked(rows, false);
  for (std::size_t q = 0; q < sent; ++q)
    for (std::size_t row : requests[q].rows) asked[row] = true;
  std::size_t k = 0;
  while (k < rows && asked[k]) ++k;
  return k;
}

// Takes the answers to the first `sent` requests into got (by row). Returns
// whether the platform refused the access token and it was not renewed for
// these reads yet (`renewed`): the caller renews it and asks again. Any
// other failure sets `error` (the first one's reason), leaving its rows
// without a count.
bool take_answers(const core::Adapter &adapter, const core::Endpoint &endpoint,
                  const std::vector<core::PlatformRequest> &requests,
                  const std::vector<HttpResult> &results, std::size_t sent,
                  const std::vector<core::ListingFacts> &facts, bool renewed, Got &got,
                  std::string &error) {
  bool reauthenticate = false;
  for (std::size_t q = 0; q < sent; ++q) {
    const HttpResult &h = results[q];
    core::Answer answer{h.transport_error, h.status, h.retry_after, h.excerpt, h.rate_limit};
    std::vector<const core::ListingFacts *> of;
    for (std::size_t row : requests[q].rows) of.push_back(&facts[row]);
    core::ReadAnswer ra = adapter.parse_reads(endpoint, answer, of, unix_ms());
    if (ra.verdict.verdict == core::Verdict::success &&
        ra.quantities.size() == requests[q].rows.size()) {
      for (std::size_t k = 0; k < requests[q].rows.size(); ++k)
        got[requests[q].rows[k]] = ra.quantities[k];
    } else if (ra.verdict.verdict == core::Verdict::reauthenticate && !renewed) {
      reauthenticate = true;
    } else if (error.empty()) {
      error = ra.verdict.reason.empty()
                  ? (h.transport_error ? h.error : "HTTP " + std::to_string(h.status))
                  : ra.verdict.reason;
    }
  }
  return reauthenticate;
}

// Adds the counts of listings[from + i] for i in [0, covered) to reads,
// each with asked_ms: no later than when it was asked for (Unix ms); those
// without one count as unread.
void add_reads(const std::vector<Listing> &listings, std::size_t from, std::size_t covered,
               const Got &got, std::int64_t asked_ms, Value::Array &reads, std::int64_t &unread) {
  for (std::size_t i = 0; i < covered; ++i) {
    if (!got[i]) {
      ++unread;
      continue;
    }
    const Listing &l = listings[from + i];
    reads.emplace_back(
        Value::Object{{"sku", l.sku},
                      {"location", l.location},
                      {"quantity", *got[i] ? Value(static_cast<double>(**got[i])) : Value(nullptr)},
                      {"asked_ms", static_cast<double>(asked_ms)}});
  }
}

// Where a slice starts: the listing it starts after, null for the first.
Value slice_after(const Slice &slice) {
  return slice.after
             ? Value(Value::Object{{"sku", slice.after->first}, {"location", slice.after->second}})
             : Value(nullptr);
}

// What a slice read, as ves._reconcile_read returns it (see there): `end`
// listings of `listings` are the slice; a slice that read none ends where it
// started.
Value::Object slice_result(Value::Array reads, std::int64_t unread, const std::string &error,
                           const std::vector<Listing> &listings, std::size_t end,
                           const Slice &slice, bool more) {
  Value last = end > 0 ? Value(Value::Object{{"sku", listings[end - 1].sku},
                                             {"location", listings[end - 1].location}})
                       : slice_after(slice);
  return Value::Object{{"reads", Value(std::move(reads))},
                       {"unread", static_cast<double>(unread)},
                       {"error", error.empty() ? Value(nullptr) : Value(error)},
                       {"last", std::move(last)},
                       {"more", more}};
}

// Facts of listings [from, to) for an adapter's build_reads.
std::vector<core::ListingFacts> listing_facts(const std::vector<Listing> &listings,
                                              std::size_t from, std::size_t to) {
  std::vector<core::ListingFacts> facts;
  for (std::size_t i = from; i < to; ++i) {
    const Listing &l = listings[i];
    facts.push_back(core::ListingFacts{l.sku, l.location, &l.ref, l.available, l.known});
  }
  return facts;
}

// A batch's follow-up answer, as ves._follow_up_read returns it (see
// there): `h` answered the question about the batch whose lines' keys are
// `keys`; nullptr: it was not asked.
Value follow_up_answer(const core::Adapter &adapter, const core::Endpoint &endpoint,
                       const HttpResult *h, const Value &keys_json) {
  if (!h)
    return Value(Value::Object{{"asked", false},
                               {"finished", false},
                               {"error", Value(nullptr)},
                               {"failed", Value(Value::Array{})}});
  std::vector<std::string> keys;
  for (const Value &k : keys_json.as_array())
    keys.push_back(k.kind() == Kind::string ? k.as_string() : std::string());
  core::Answer answer{h->transport_error, h->status, h->retry_after, h->excerpt, h->rate_limit};
  core::FollowUpAnswer a = adapter.classify_follow_up(endpoint, answer, keys, unix_ms());
  Value::Array failed;
  std::string error;
  if (a.finished) {
    for (std::size_t line = 0; line < a.lines.size(); ++line)
      if (a.lines[line].verdict != core::Verdict::success)
        failed.push_back(Value(
            Value::Object{{"line", static_cast<double>(line)}, {"reason", a.lines[line].reason}}));
  } else if (!a.lines.empty()) {
    error = a.lines.front().reason.empty()
                ? (h->transport_error ? h->error : "HTTP " + std::to_string(h->status))
                : a.lines.front().reason;
  }
  return Value(Value::Object{{"asked", true},
                             {"finished", a.finished},
                             {"error", error.empty() ? Value(nullptr) : Value(error)},
                             {"failed", Value(std::move(failed))}});
}

// The arguments the platform readers start with: (destination_id int, kind
// text, url text, kind_options jsonb, timeout_ms int). None of the first
// `nargs` may be NULL; `call` is the SQL call to use instead.
struct DestinationArgs {
  int id = 0;
  std::string kind;
  std::string url;
  Value options;
  long timeout_ms = 0;
};

DestinationArgs destination_args(FunctionCallInfo fcinfo, int nargs, const char *call) {
  for (int i = 0; i < nargs; ++i)
    if (PG_ARGISNULL(i))
      throw VesError(sqlstate::null_argument, "arguments must not be NULL", {},
                     std::string("Call ") + call + ".");
  DestinationArgs a;
  a.id = PG_GETARG_INT32(0);
  a.kind = safe::text_string(PG_GETARG_DATUM(1));
  a.url = safe::text_string(PG_GETARG_DATUM(2));
  a.options = jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(3)));
  a.timeout_ms = PG_GETARG_INT32(4);
  return a;
}

}  // namespace
}  // namespace pgves::pg::reconcile

using namespace pgves::pg;

// ves._reconcile_read(destination_id int, kind text, url text, kind_options
// jsonb, timeout_ms int, stale_only boolean, after_sku text, after_location
// text, max_listings int, rate_limit float8, burst int, concurrency int)
// -> jsonb
//   {"reads": [{"sku", "location", "quantity" (null: the platform does not
//    know the item), "asked_ms" (Unix ms no later than the read was sent)}],
//    "unread": n, "error": "why some could not be read",
//    "last": {"sku", "location"} (the last listing of the slice, null when
//    it had none), "more": whether max_listings cut the slice short}
// The slice: the listings after (after_sku, after_location) in (SKU,
// location) order (NULL: from the first), at most max_listings (NULL: all).
// Reads keep to the destination's rate_limit (per second; 0: none), burst
// and concurrency, waiting for the bucket (ves.reconcile in a session; the
// sync worker reads its slices on its own engine, see worker_round).
// Reads the platform's counts of the destination's listings through its
// adapter (build_reads / parse_reads), renewing the access token once when
// the platform refuses it. Progress shows in ves.progress.
PGVES_FUNCTION(ves_reconcile_read) {
  namespace core = pgves::core;
  using core::json::Value;
  const reconcile::DestinationArgs args =
      reconcile::destination_args(fcinfo, 6, "ves.reconcile(destination)");
  const int destination_id = args.id;
  const std::string &kind = args.kind;
  const std::string &url = args.url;
  const Value &options = args.options;
  const long timeout_ms = args.timeout_ms;
  const bool stale_only = PG_GETARG_BOOL(5);
  reconcile::Slice slice;
  if (!PG_ARGISNULL(6) && !PG_ARGISNULL(7))
    slice.after.emplace(safe::text_string(PG_GETARG_DATUM(6)),
                        safe::text_string(PG_GETARG_DATUM(7)));
  if (!PG_ARGISNULL(8)) {
    if (PG_GETARG_INT32(8) < 1)
      throw VesError(sqlstate::invalid_argument, "max_listings must be at least 1", {},
                     "Pass NULL to read every listing.");
    slice.limit = PG_GETARG_INT32(8);
  }
  const core::Adapter *adapter = core::find_adapter(kind);
  if (!adapter || !adapter->is_platform())
    throw VesError(sqlstate::reconcile_failed, "destinations of kind " + kind + " have no listings",
                   {}, "Reconcile a commerce platform destination.");

  // The destination's limits hold for reads as for pushes.
  Pace pace = reconcile::read_pace(fcinfo, 9, destination_id);
  safe::spi_connect();
  std::vector<reconcile::Listing> listings =
      reconcile::load_listings(destination_id, stale_only, slice);
  platform::Credentials credentials = platform::load(destination_id);
  const std::string no_secret;
  const std::vector<std::pair<std::string, std::string>> no_headers;
  core::Endpoint endpoint{url, no_secret, no_headers, &options, &credentials.values, {}};

  Value::Array reads;
  std::int64_t unread = 0;
  std::string error;
  std::size_t end = listings.size();  // the slice: listings [0, end)
  pg_call_void([&] { progress::start("reconcile", static_cast<int64>(listings.size())); });
  if (!listings.empty()) {
    core::RowVerdict token = platform::ensure_token(*adapter, endpoint, credentials, timeout_ms);
    bool renewed = credentials.token_changed;
    if (token.verdict != core::Verdict::success) {
      unread = static_cast<std::int64_t>(listings.size());
      error = token.reason;
    }
    for (std::size_t from = 0; error.empty() && from < end; from += reconcile::kChunk) {
      const std::size_t to = std::min(listings.size(), from + reconcile::kChunk);
      const std::vector<core::ListingFacts> facts = reconcile::listing_facts(listings, from, to);
      reconcile::Got got(facts.size());
      std::size_t covered = facts.size();  // rows [0, covered) were asked about
      const std::int64_t asked_ms = unix_ms();
      for (int attempt = 0; attempt < 2; ++attempt) {
        endpoint.access_token = credentials.token.access_token;
        std::vector<core::PlatformRequest> requests =
            adapter->build_reads(endpoint, facts, unix_ms());
        std::vector<core::HttpRequest> http;
        for (const auto &r : requests) http.push_back(r.http);
        std::vector<HttpResult> results;
        const std::size_t sent = perform_paced(http, timeout_ms, pace, &results);
        // Requests not sent (none here: this call waits for every token)
        // would end the slice before the first row they were to ask about.
        if (sent < requests.size())
          covered = std::min(covered, reconcile::asked_prefix(requests, sent, facts.size()));
        if (!reconcile::take_answers(*adapter, endpoint, requests, results, sent, facts, renewed,
                                     got, error))
          break;
        // The platform refused the token: renew it once and read again
        // what is still unread.
        renewed = true;
        core::RowVerdict v =
            platform::ensure_token(*adapter, endpoint, credentials, timeout_ms, true);
        if (v.verdict != core::Verdict::success) {
          if (error.empty()) error = v.reason;
          break;
        }
      }
      if (covered < facts.size()) end = from + covered;
      reconcile::add_reads(listings, from, covered, got, asked_ms, reads, unread);
      const std::int64_t done = static_cast<std::int64_t>(std::min(to, end));
      pg_call_void([&] { progress::update(done, unread); });
    }
  }
  platform::store_token(destination_id, credentials);
  safe::spi_finish();
  pg_call_void([] { progress::finish(); });
  const bool more = end < listings.size() ||
                    (slice.limit && static_cast<std::int64_t>(listings.size()) == *slice.limit);
  PG_RETURN_JSONB_P(safe::jsonb_from_text(core::jcs::canonicalize(Value(
      reconcile::slice_result(std::move(reads), unread, error, listings, end, slice, more)))));
}

// ves._follow_up_read(destination_id int, kind text, url text, kind_options
// jsonb, timeout_ms int, handles text[], lines jsonb, rate_limit float8,
// burst int, concurrency int) -> jsonb
//   lines: for each handle, the array of its lines' keys in the order sent.
//   Answers, per handle: {"asked": whether the platform was asked this time,
//   "finished": bool, "error": why it is not known yet (null when the
//   platform simply has not finished or was not asked), "failed": [{"line",
//   "reason"}] (finished batches: the lines the platform refused)}.
// Asks the platform about batches it accepted for later processing
// (Adapter::follow_up_request / classify_follow_up). The questions are
// platform calls like any other: they keep to the destination's rate_limit
// (per second; 0: none), burst and concurrency, spending the destination's
// read bucket with reconciliation reads. A round asks only what the bucket
// allows at once (the sync worker runs it between deliveries: a wait for a
// token would hold them up) and starts none after kSliceBudgetMs; the
// handles not asked are asked in a later round.
PGVES_FUNCTION(ves_follow_up_read) {
  namespace core = pgves::core;
  using core::json::Value;
  const reconcile::DestinationArgs args =
      reconcile::destination_args(fcinfo, 7, "ves.follow_up_batches()");
  const int destination_id = args.id;
  const std::string &kind = args.kind;
  const std::string &url = args.url;
  const Value &options = args.options;
  const long timeout_ms = args.timeout_ms;
  const std::vector<std::string> handles = safe::text_array_strings(PG_GETARG_DATUM(5));
  const Value lines = jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(6)));
  const core::Adapter *adapter = core::find_adapter(kind);
  if (!adapter)
    throw VesError(sqlstate::invalid_argument, "unknown destination kind " + kind, {},
                   "Call ves.follow_up_batches().");
  if (lines.kind() != core::json::Kind::array || lines.as_array().size() != handles.size())
    throw VesError(sqlstate::invalid_argument, "lines must hold one array per handle", {},
                   "Call ves.follow_up_batches().");

  safe::spi_connect();
  platform::Credentials credentials = platform::load(destination_id);
  safe::spi_finish();
  const std::string no_secret;
  const std::vector<std::pair<std::string, std::string>> no_headers;
  core::Endpoint endpoint{url, no_secret, no_headers, &options, &credentials.values, {}};
  endpoint.access_token = credentials.token.access_token;

  std::vector<core::HttpRequest> http;
  for (const std::string &h : handles) http.push_back(adapter->follow_up_request(endpoint, h));
  Pace pace = reconcile::read_pace(fcinfo, 7, destination_id);
  pace.deadline_us = steady_us() + reconcile::kSliceBudgetMs * 1000;
  pace.wait_for_tokens = false;
  std::vector<HttpResult> results;
  const std::size_t sent = perform_paced(http, timeout_ms, pace, &results);
  Value::Array out;
  for (std::size_t i = 0; i < handles.size(); ++i)
    out.push_back(reconcile::follow_up_answer(*adapter, endpoint, i < sent ? &results[i] : nullptr,
                                              lines.as_array()[i]));
  PG_RETURN_JSONB_P(safe::jsonb_from_text(pgves::core::jcs::canonicalize(Value(std::move(out)))));
}

namespace pgves::pg::reconcile {
namespace {

// Stale listings are looked for at most once a second after the worker
// recorded outcomes, and at least every kIdleCheckMs (reconcile_interval,
// listings marked stale by ves.push_events).
constexpr std::int64_t kDueCheckGapMs = 1000;
constexpr std::int64_t kIdleCheckMs = 10000;
std::int64_t last_due_check_ms = 0;
bool outcomes_unchecked = false;
std::int64_t next_purge_ms = 0;
// Batches platforms accepted for later processing are asked about every
// kFollowUpGapMs (ves._follow_ups_due decides which are due).
constexpr std::int64_t kFollowUpGapMs = 2000;
std::int64_t next_follow_up_ms = 0;
// Destinations whose last run failed: not before this steady time, and the
// pause the next failure doubles.
std::map<std::string, std::pair<std::int64_t, std::int64_t>> backoff;
// A run ended (ok: read every listing) or a slice of it failed: a failed
// one is tried again after a growing pause, not every second.
void note_run_end(const std::string &name, bool ok) {
  auto b = backoff.find(name);
  if (ok) {
    if (b != backoff.end()) backoff.erase(b);
    return;
  }
  const std::int64_t pause =
      b == backoff.end() ? 5000 : std::min<std::int64_t>(b->second.second * 2, 300000);
  backoff[name] = {steady_ms() + pause, pause};
}

// Platform calls a worker round has in flight on the worker's own HTTP
// engine, beside its deliveries: a reconciliation slice's reads, or a
// round of questions about accepted batches. They go out in order, within
// the destination's concurrency and read bucket (none waits for a token),
// none started after kSliceBudgetMs; the loop goes on delivering meanwhile,
// and once every call sent has answered, what they said is recorded in a
// short transaction. Deliveries wait only for those transactions, never
// for a platform's answer.
struct WorkerCalls {
  virtual ~WorkerCalls() = default;
  std::uint64_t number = 0;  // in its transfers' tags (in_flight's key)
  std::vector<core::PlatformRequest> requests;
  std::vector<HttpResult> results;  // by request
  std::size_t sent = 0, answered = 0;
  std::int64_t rows_answered = 0;  // rows the answers so far were about
  core::TokenBucket *bucket = nullptr;
  std::size_t concurrency = 0;  // 0: no limit
  std::int64_t deadline_us = 0;
  long timeout_ms = 0;
  // The destination's platform and how to call it.
  int destination_id = 0;
  std::string url;
  Value options;
  const core::Adapter *adapter = nullptr;
  platform::Credentials credentials;

  // Listings shown in ves.progress (reconciliation slices).
  virtual std::int64_t listings_shown() const { return 0; }
  // Once every call sent has answered: whether it goes on with more calls
  // of its own (sent on the engine now) before it is recorded.
  virtual bool advance(HttpEngine &) { return false; }
  // Records what the calls found, in transactions of its own.
  virtual void record() = 0;

  core::Endpoint endpoint() const {
    static const std::string no_secret;
    static const std::vector<std::pair<std::string, std::string>> no_headers;
    core::Endpoint e{url, no_secret, no_headers, &options, &credentials.values, {}};
    e.access_token = credentials.token.access_token;
    return e;
  }
  // The destination's read bucket and concurrency, and the budget from now.
  void pace(double rate, double burst, std::size_t max_in_flight) {
    bucket = &read_bucket(destination_id, rate, burst);
    concurrency = max_in_flight;
    deadline_us = steady_us() + kSliceBudgetMs * 1000;
  }
  // Sends what may be sent now.
  void pump(HttpEngine &engine);
  // Whether nothing more is sent: every call sent has answered, and the
  // rest may not be sent (all sent, budget spent, or no token now).
  bool finished() const {
    if (answered < sent) return false;
    const std::int64_t now = steady_us();
    return sent == requests.size() || now >= deadline_us || (bucket && bucket->wait_us(now) > 0);
  }
  // How long the loop may wait before a token allows the next call; the
  // engine wakes it for answers.
  long wait_ms() const {
    if (sent == requests.size() || !bucket || (concurrency && sent - answered >= concurrency))
      return kIdleCheckMs;
    return std::max<long>(1, static_cast<long>((bucket->wait_us(steady_us()) + 999) / 1000));
  }
};

// Transfer tags of the worker's platform calls: the top bit (the deliverer
// numbers its transfers from 1 up), the calls' number, the request's index.
constexpr std::uint64_t kCallTag = std::uint64_t{1} << 63;
constexpr int kIndexBits = 24;

void WorkerCalls::pump(HttpEngine &engine) {
  const std::int64_t now = steady_us();
  while (sent < requests.size() && now < deadline_us &&
         (concurrency == 0 || sent - answered < concurrency) &&
         (!bucket || bucket->try_take(now))) {
    engine.submit(kCallTag | (number << kIndexBits) | sent, requests[sent].http, timeout_ms);
    ++sent;
  }
}

std::map<std::uint64_t, std::unique_ptr<WorkerCalls>> in_flight;  // by number
std::uint64_t next_number = 1;

// Reads the destination's calls are made with from the current row of
// SPI_tuptable, columns from `first` on: destination_id int8, kind, url,
// kind_options text, timeout_ms int8, rate_limit text, burst int8,
// concurrency int8.
void load_destination(WorkerCalls &w, uint64 row, int first) {
  w.destination_id = static_cast<int>(safe::spi_int64(row, first, 0));
  const std::string kind = safe::spi_text(row, first + 1);
  w.url = safe::spi_text(row, first + 2);
  w.options = core::json::parse(safe::spi_text(row, first + 3));
  w.timeout_ms = static_cast<long>(safe::spi_int64(row, first + 4, 0));
  w.adapter = core::find_adapter(kind);
  if (!w.adapter) throw std::runtime_error("unknown destination kind " + kind);
  w.pace(safe::spi_isnull(row, first + 5) ? 0 : std::stod(safe::spi_text(row, first + 5)),
         static_cast<double>(safe::spi_int64(row, first + 6, 1)),
         static_cast<std::size_t>(safe::spi_int64(row, first + 7, 0)));
}
#define PGVES_DESTINATION_COLUMNS                                                            \
  "destination_id::int8, kind, url, kind_options::text, timeout_ms::int8, rate_limit::text," \
  " burst::int8, concurrency::int8"

// --- reconciliation slices ----------------------------------------------------

// A worker's slice of a run: at most one round of reads (kChunk listings).
// The next slice of an unfinished run starts no sooner than kMinSliceGapMs
// after the last one was recorded, so that a slow platform's run costs the
// worker a few short transactions a second rather than a busy loop.
constexpr int kSliceListings = static_cast<int>(kChunk);
constexpr std::int64_t kMinSliceGapMs = 200;
bool run_unfinished = false;
std::int64_t next_slice_ms = 0;
// Destinations whose platform refused the token of a slice's reads: the
// next slice renews it first.
std::set<int> renew_first;

struct WorkerSlice final : WorkerCalls {
  std::string name;  // the destination
  bool stale_only = false;
  Slice slice;
  std::vector<Listing> listings;
  std::vector<core::ListingFacts> facts;  // views of listings
  bool renewed = false;                   // the token was renewed for this slice
  bool renewing = false;                  // the one call in flight asks for a new token
  core::TokenBucket *read_bucket = nullptr;
  std::string error;          // why nothing could be read (no token)
  std::int64_t asked_ms = 0;  // Unix ms before the first read was sent

  std::int64_t listings_shown() const override {
    return static_cast<std::int64_t>(listings.size());
  }
  bool advance(HttpEngine &engine) override;
  void record() override;
  Jsonb *reads();
  void build_reads() {
    asked_ms = unix_ms();
    requests = adapter->build_reads(endpoint(), facts, asked_ms);
    results.assign(requests.size(), HttpResult{});
    sent = answered = 0;
    bucket = read_bucket;
    deadline_us = steady_us() + kSliceBudgetMs * 1000;
  }
};

// Starts a slice of the destination's run (SPI connected, in a
// transaction): its place, listings, token and requests. False when the
// destination's read bucket is empty (nothing is started or written).
bool start_slice(const std::string &name, bool stale_only, WorkerSlice &w) {
  static SavedPlan plan{"SELECT " PGVES_DESTINATION_COLUMNS
                        ", run_stale_only::text, after_sku, after_location"
                        " FROM ves._reconcile_place($1, $2)",
                        2,
                        {TEXTOID, BOOLOID},
                        nullptr};
  Datum args[2] = {safe::text_datum(name), BoolGetDatum(stale_only)};
  safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
  if (SPI_processed != 1) throw std::runtime_error("no place for the reconciliation of " + name);
  load_destination(w, 0, 1);
  w.name = name;
  w.stale_only = safe::spi_text(0, 9) == "true";
  if (!safe::spi_isnull(0, 10)) w.slice.after.emplace(safe::spi_text(0, 10), safe::spi_text(0, 11));
  w.slice.limit = kSliceListings;
  if (!w.adapter->is_platform())
    throw std::runtime_error("destination " + name + " has no listings to reconcile");
  if (w.bucket->wait_us(steady_us()) > 0) return false;
  w.listings = load_listings(w.destination_id, w.stale_only, w.slice);
  w.facts = listing_facts(w.listings, 0, w.listings.size());
  w.credentials = platform::load(w.destination_id);
  w.read_bucket = w.bucket;
  if (w.listings.empty()) return true;
  // A token the reads need is asked for first, on the engine too (it takes
  // no read token); the reads follow its answer (advance).
  const bool renew = renew_first.erase(w.destination_id) > 0;
  if (std::optional<core::HttpRequest> renewal =
          platform::renewal_request(*w.adapter, w.endpoint(), w.credentials, renew)) {
    w.requests.push_back(core::PlatformRequest{std::move(*renewal), {}});
    w.results.assign(1, HttpResult{});
    w.bucket = nullptr;
    w.renewing = true;
    return true;
  }
  w.build_reads();
  return true;
}

bool WorkerSlice::advance(HttpEngine &engine) {
  if (!renewing) return false;
  renewing = false;
  core::RowVerdict token = platform::take_renewal(*adapter, credentials, results.at(0));
  for (auto &h : requests.at(0).http.headers) sodium_memzero(h.second.data(), h.second.size());
  sodium_memzero(requests.at(0).http.body.data(), requests.at(0).http.body.size());
  renewed = true;
  if (token.verdict != core::Verdict::success) {
    error = token.reason;
    requests.clear();
    results.clear();
    sent = answered = 0;
    return false;
  }
  build_reads();
  pump(engine);
  return true;
}

// What the slice read, in ves._reconcile_read's form with "after" (where it
// started), for ves._reconcile_step.
Jsonb *WorkerSlice::reads() {
  Got got(facts.size());
  std::string why = error;
  std::int64_t unread = 0;
  std::size_t end = listings.size();
  if (!why.empty()) {
    unread = static_cast<std::int64_t>(listings.size());
  } else {
    if (sent < requests.size()) end = asked_prefix(requests, sent, facts.size());
    if (take_answers(*adapter, endpoint(), requests, results, sent, facts, renewed, got, why)) {
      // The platform refused the token: the slice ends before the first
      // listing that was refused, and the next one renews the token first
      // and reads on from there.
      renew_first.insert(destination_id);
      std::size_t k = 0;
      while (k < end && got[k]) ++k;
      end = k;
    }
  }
  Value::Array found;
  add_reads(listings, 0, end, got, asked_ms, found, unread);
  const bool more =
      end < listings.size() || static_cast<std::int64_t>(listings.size()) == *slice.limit;
  Value::Object out = slice_result(std::move(found), unread, why, listings, end, slice, more);
  out.emplace_back("after", slice_after(slice));
  return safe::jsonb_from_text(core::jcs::canonicalize(Value(std::move(out))));
}

// Records the slice (ves._reconcile_step) and keeps the run's state: a run
// with more to read goes on in a later slice; one that ended with an error
// or listings unread is tried again after a growing pause.
void WorkerSlice::record() {
  std::string outcome;
  bool ok = in_own_transaction("pg_ves: reconciling", [&] {
    platform::store_token(destination_id, credentials);  // a token renewed for the reads, sealed
    static SavedPlan plan{
        "SELECT ves._reconcile_step($1, $2, $3)", 3, {TEXTOID, BOOLOID, JSONBOID}, nullptr};
    Datum args[3] = {safe::text_datum(name), BoolGetDatum(stale_only), PointerGetDatum(reads())};
    safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
    if (SPI_processed == 1) outcome = safe::spi_text(0, 1);
  });
  if (ok && outcome == "more") {
    run_unfinished = true;
    next_slice_ms = steady_ms() + kMinSliceGapMs;
    return;
  }
  note_run_end(name, ok && outcome == "done");
}

// --- follow-ups of accepted batches ---------------------------------------------

struct FollowUps final : WorkerCalls {
  Value ids;    // the batches' ids, a JSON array
  Value lines;  // for each, its lines' keys in the order sent
  void record() override;
};

// The due batches of every destination, each destination's questions
// ready to send (SPI connected, in a transaction).
std::vector<std::unique_ptr<FollowUps>> start_follow_ups() {
  static SavedPlan plan{"SELECT " PGVES_DESTINATION_COLUMNS
                        ", array_to_json(ids)::text, array_to_json(handles)::text, lines::text"
                        " FROM ves._follow_ups_due(20)",
                        0,
                        {},
                        nullptr};
  safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
  SPITupleTable *table = SPI_tuptable;
  const uint64 n = SPI_processed;
  std::vector<std::unique_ptr<FollowUps>> out;
  for (uint64 r = 0; r < n; ++r) {
    SPI_tuptable = table;  // platform::load below runs statements of its own
    auto f = std::make_unique<FollowUps>();
    load_destination(*f, r, 1);
    f->ids = core::json::parse(safe::spi_text(r, 9));
    const Value handles = core::json::parse(safe::spi_text(r, 10));
    f->lines = core::json::parse(safe::spi_text(r, 11));
    f->credentials = platform::load(f->destination_id);
    for (const Value &h : handles.as_array())
      f->requests.push_back(core::PlatformRequest{
          f->adapter->follow_up_request(f->endpoint(), h.as_string()), {f->requests.size()}});
    f->results.assign(f->requests.size(), HttpResult{});
    out.push_back(std::move(f));
  }
  return out;
}

// Records what the platform said of each batch (ves._follow_up_record);
// a batch not asked stays due.
void FollowUps::record() {
  Value::Array got;
  for (std::size_t i = 0; i < requests.size(); ++i)
    got.push_back(follow_up_answer(*adapter, endpoint(), i < sent ? &results[i] : nullptr,
                                   lines.as_array()[i]));
  in_own_transaction("pg_ves: recording follow-ups of accepted platform batches", [&] {
    static SavedPlan plan{
        "SELECT ves._follow_up_record(ARRAY(SELECT pg_catalog.jsonb_array_elements_text($1)::int8),"
        " $2)",
        2,
        {JSONBOID, JSONBOID},
        nullptr};
    Datum args[2] = {
        PointerGetDatum(safe::jsonb_from_text(core::jcs::canonicalize(ids))),
        PointerGetDatum(safe::jsonb_from_text(core::jcs::canonicalize(Value(std::move(got)))))};
    safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
  });
}

// --- the calls under way ----------------------------------------------------------

// The reconciliation slices under way show in ves.progress (command
// reconcile) as one command across the worker's transactions: their
// listings, and how many of them the platforms have answered about.
void show_progress() {
  static std::int64_t shown_total = -1;
  std::int64_t total = 0, done = 0;
  for (const auto &entry : in_flight) {
    if (entry.second->listings_shown() == 0) continue;
    total += entry.second->listings_shown();
    done += entry.second->rows_answered;
  }
  if (total == 0) {
    if (shown_total >= 0) pg_call_void([] { progress::finish(); });
    shown_total = -1;
    return;
  }
  pg_call_void([&] {
    if (total != shown_total) progress::start("reconcile", total, true);
    progress::update(done, 0);
  });
  shown_total = total;
}

void start_calls(HttpEngine &engine, std::unique_ptr<WorkerCalls> w) {
  w->number = next_number++;
  w->pump(engine);
  const std::uint64_t number = w->number;
  in_flight.emplace(number, std::move(w));
}

bool slices_in_flight() {
  for (const auto &entry : in_flight)
    if (dynamic_cast<const WorkerSlice *>(entry.second.get())) return true;
  return false;
}
bool follow_ups_in_flight() {
  for (const auto &entry : in_flight)
    if (dynamic_cast<const FollowUps *>(entry.second.get())) return true;
  return false;
}

}  // namespace

void absorb(std::vector<HttpResult> &completed) {
  auto mine = [](const HttpResult &r) { return (r.tag & kCallTag) != 0; };
  for (HttpResult &r : completed) {
    if (!mine(r)) continue;
    const std::uint64_t number = (r.tag & ~kCallTag) >> kIndexBits;
    const std::size_t index = r.tag & ((std::uint64_t{1} << kIndexBits) - 1);
    auto it = in_flight.find(number);
    // Answers to calls dropped after an error are of no use any more.
    if (it == in_flight.end() || index >= it->second->results.size()) continue;
    WorkerCalls &w = *it->second;
    w.results[index] = std::move(r);
    ++w.answered;
    w.rows_answered += static_cast<std::int64_t>(w.requests[index].rows.size());
  }
  const auto end = std::remove_if(completed.begin(), completed.end(), mine);
  if (end != completed.end()) {
    completed.erase(end, completed.end());
    show_progress();
  }
}

void forget_calls() {
  in_flight.clear();
  run_unfinished = false;
  show_progress();
}

long worker_round(HttpEngine &engine, bool recorded) {
  if (alerts::pending())
    in_own_transaction("pg_ves: recording security alerts", [] {
      static SavedPlan plan{"SELECT ves._drain_security_alerts()", 0, {}, nullptr};
      safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
    });
  std::int64_t now = steady_ms();
  if (now >= next_purge_ms) {
    next_purge_ms = now + 60 * 1000;
    in_own_transaction("pg_ves: purging old webhook delivery ids", [] {
      static SavedPlan plan{"SELECT ves._purge_inbound_deliveries()", 0, {}, nullptr};
      safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
    });
  }
  // The calls under way: send what they may, record those finished.
  long wait = kIdleCheckMs;
  for (auto it = in_flight.begin(); it != in_flight.end();) {
    WorkerCalls &w = *it->second;
    w.pump(engine);
    if (!w.finished()) {
      wait = std::min(wait, w.wait_ms());
      ++it;
      continue;
    }
    if (ShutdownRequestPending) return kIdleCheckMs;
    if (w.advance(engine)) {
      wait = 0;
      ++it;
      continue;
    }
    std::unique_ptr<WorkerCalls> done = std::move(it->second);
    it = in_flight.erase(it);
    done->record();
    show_progress();
  }
  now = steady_ms();
  if (now >= next_follow_up_ms && !follow_ups_in_flight()) {
    next_follow_up_ms = now + kFollowUpGapMs;
    std::vector<std::unique_ptr<FollowUps>> rounds;
    in_own_transaction("pg_ves: following up accepted platform batches",
                       [&] { rounds = start_follow_ups(); });
    for (auto &f : rounds) start_calls(engine, std::move(f));
    if (!rounds.empty()) wait = 0;  // the next round records what needs no answer
  }
  outcomes_unchecked = outcomes_unchecked || recorded;
  if (slices_in_flight()) return wait;
  const std::int64_t gap = outcomes_unchecked ? kDueCheckGapMs : kIdleCheckMs;
  if (run_unfinished && now < next_slice_ms)
    return std::min(wait, static_cast<long>(next_slice_ms - now));
  if (!run_unfinished && now - last_due_check_ms < gap)
    return std::min(wait, static_cast<long>(gap - (now - last_due_check_ms)));
  last_due_check_ms = now;
  outcomes_unchecked = false;
  run_unfinished = false;
  std::vector<std::pair<std::string, bool>> due;
  in_own_transaction("pg_ves: looking for reconciliations due", [&] {
    static SavedPlan plan{
        "SELECT name, stale_only::text FROM ves._reconcile_due()", 0, {}, nullptr};
    safe::spi_run(plan, nullptr, nullptr, true, SPI_OK_SELECT);
    for (uint64 r = 0; r < SPI_processed; ++r)
      due.emplace_back(safe::spi_text(r, 1), safe::spi_text(r, 2) == "true");
  });
  // One slice of each destination due, its start in a transaction of its
  // own. A destination whose read bucket is empty starts none now; its run
  // goes on from the same place later.
  for (const auto &[name, stale_only] : due) {
    if (ShutdownRequestPending) return kIdleCheckMs;
    auto b = backoff.find(name);
    if (b != backoff.end() && steady_ms() < b->second.first) continue;
    auto w = std::make_unique<WorkerSlice>();
    bool started = false;
    const bool ok = in_own_transaction(
        "pg_ves: starting a reconciliation slice",
        [&, name = name, stale_only = stale_only] { started = start_slice(name, stale_only, *w); });
    if (!ok) {
      note_run_end(name, false);
    } else if (!started) {
      run_unfinished = true;
      next_slice_ms = steady_ms() + kMinSliceGapMs;
    } else {
      start_calls(engine, std::move(w));
      wait = 0;  // the next round records a slice that needs no answer
    }
  }
  show_progress();
  if (wait == 0 || slices_in_flight()) return wait;
  if (!run_unfinished) return std::min(wait, kIdleCheckMs);
  return std::min(wait, static_cast<long>(std::max<std::int64_t>(1, next_slice_ms - steady_ms())));
}

}  // namespace pgves::pg::reconcile
