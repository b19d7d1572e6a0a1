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

#include <algorithm>
#include <cstdint>
#include <map>
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
//    know the item)}], "unread": n, "error": "why some could not be read",
//    "last": {"sku", "location"} (the last listing of the slice, null when
//    it had none), "more": whether max_listings cut the slice short}
// The slice: the listings after (after_sku, after_location) in (SKU,
// location) order (NULL: from the first), at most max_listings (NULL: all).
// Reads keep to the destination's rate_limit (per second; 0: none), burst
// and concurrency. With max_listings, no read starts after kSliceBudgetMs:
// the slice then ends at the last listing asked about ("more" is true).
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

  // The destination's limits hold for reads as for pushes; a slice starts
  // no read after its time budget and ends at the last listing read.
  Pace pace = reconcile::read_pace(fcinfo, 9, destination_id);
  // A worker's slice that would find the bucket empty reads nothing and
  // loads nothing: the run goes on from the same place in a later slice.
  const bool no_token = slice.limit && pace.bucket->wait_us(steady_us()) > 0;
  safe::spi_connect();
  std::vector<reconcile::Listing> listings =
      no_token ? std::vector<reconcile::Listing>{}
               : reconcile::load_listings(destination_id, stale_only, slice);
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
    if (slice.limit) {
      // A worker's slice: it holds up the worker's deliveries, so it reads
      // only what the bucket allows now and never waits for a token (the
      // worker starts the next slice later).
      pace.deadline_us = steady_us() + reconcile::kSliceBudgetMs * 1000;
      pace.wait_for_tokens = false;
    }
    for (std::size_t from = 0; error.empty() && from < end; from += reconcile::kChunk) {
      const std::size_t to = std::min(listings.size(), from + reconcile::kChunk);
      std::vector<core::ListingFacts> facts;
      for (std::size_t i = from; i < to; ++i) {
        const reconcile::Listing &l = listings[i];
        facts.push_back(core::ListingFacts{l.sku, l.location, &l.ref, l.available, l.known});
      }
      std::vector<std::optional<std::optional<std::int64_t>>> got(facts.size());
      std::size_t covered = facts.size();  // rows [0, covered) were asked about
      for (int attempt = 0; attempt < 2; ++attempt) {
        endpoint.access_token = credentials.token.access_token;
        std::vector<core::PlatformRequest> requests =
            adapter->build_reads(endpoint, facts, unix_ms());
        std::vector<core::HttpRequest> http;
        for (const auto &r : requests) http.push_back(r.http);
        std::vector<HttpResult> results;
        const std::size_t sent = perform_paced(http, timeout_ms, pace, &results);
        if (sent < requests.size()) {
          // The budget ran out: the slice ends before the first row no
          // sent request asked about.
          std::vector<bool> asked(facts.size(), false);
          for (std::size_t q = 0; q < sent; ++q)
            for (std::size_t row : requests[q].rows) asked[row] = true;
          std::size_t k = 0;
          while (k < facts.size() && asked[k]) ++k;
          covered = std::min(covered, k);
        }
        bool reauthenticate = false;
        for (std::size_t q = 0; q < sent; ++q) {
          const HttpResult &h = results[q];
          core::Answer answer{h.transport_error, h.status, h.retry_after, h.excerpt, h.rate_limit};
          std::vector<const core::ListingFacts *> of;
          for (std::size_t row : requests[q].rows) of.push_back(&facts[row]);
          core::ReadAnswer ra = adapter->parse_reads(endpoint, answer, of, unix_ms());
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
        if (!reauthenticate) break;
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
      if (covered < facts.size()) {
        end = from + covered;
        // A slice that waits for no token may end before its first read
        // (the bucket is empty): it made no progress, which is no failure.
        if (end == 0 && error.empty() && pace.wait_for_tokens)
          error = "no listing could be read within the slice's time";
      }
      for (std::size_t i = 0; i < covered; ++i) {
        if (!got[i]) {
          ++unread;
          continue;
        }
        const reconcile::Listing &l = listings[from + i];
        reads.emplace_back(Value::Object{
            {"sku", l.sku},
            {"location", l.location},
            {"quantity", *got[i] ? Value(static_cast<double>(**got[i])) : Value(nullptr)}});
      }
      const std::int64_t done = static_cast<std::int64_t>(std::min(to, end));
      pg_call_void([&] { progress::update(done, unread); });
    }
  }
  platform::store_token(destination_id, credentials);
  safe::spi_finish();
  pg_call_void([] { progress::finish(); });
  const bool more = no_token || end < listings.size() ||
                    (slice.limit && static_cast<std::int64_t>(listings.size()) == *slice.limit);
  // The last listing of the slice; a slice that read none ends where it
  // started.
  Value last =
      end > 0 ? Value(Value::Object{{"sku", listings[end - 1].sku},
                                    {"location", listings[end - 1].location}})
      : slice.after
          ? Value(Value::Object{{"sku", slice.after->first}, {"location", slice.after->second}})
          : Value(nullptr);
  Value::Object out{{"reads", Value(std::move(reads))},
                    {"unread", static_cast<double>(unread)},
                    {"error", error.empty() ? Value(nullptr) : Value(error)},
                    {"last", std::move(last)},
                    {"more", more}};
  PG_RETURN_JSONB_P(safe::jsonb_from_text(pgves::core::jcs::canonicalize(Value(std::move(out)))));
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
  for (std::size_t i = 0; i < handles.size(); ++i) {
    if (i >= sent) {
      out.push_back(Value(Value::Object{{"asked", false},
                                        {"finished", false},
                                        {"error", Value(nullptr)},
                                        {"failed", Value(Value::Array{})}}));
      continue;
    }
    std::vector<std::string> keys;
    for (const Value &k : lines.as_array()[i].as_array())
      keys.push_back(k.kind() == core::json::Kind::string ? k.as_string() : std::string());
    const HttpResult &h = results[i];
    core::Answer answer{h.transport_error, h.status, h.retry_after, h.excerpt, h.rate_limit};
    core::FollowUpAnswer a = adapter->classify_follow_up(endpoint, answer, keys, unix_ms());
    Value::Array failed;
    std::string error;
    if (a.finished) {
      for (std::size_t line = 0; line < a.lines.size(); ++line)
        if (a.lines[line].verdict != core::Verdict::success)
          failed.push_back(Value(Value::Object{{"line", static_cast<double>(line)},
                                               {"reason", a.lines[line].reason}}));
    } else if (!a.lines.empty()) {
      error = a.lines.front().reason.empty()
                  ? (h.transport_error ? h.error : "HTTP " + std::to_string(h.status))
                  : a.lines.front().reason;
    }
    out.push_back(Value(Value::Object{{"asked", true},
                                      {"finished", a.finished},
                                      {"error", error.empty() ? Value(nullptr) : Value(error)},
                                      {"failed", Value(std::move(failed))}}));
  }
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
// kFollowUpGapMs (ves.follow_up_batches decides which are due).
constexpr std::int64_t kFollowUpGapMs = 2000;
std::int64_t next_follow_up_ms = 0;
// Destinations whose last run failed: not before this steady time, and the
// pause the next failure doubles.
std::map<std::string, std::pair<std::int64_t, std::int64_t>> backoff;
// Listings a worker round reads of one run (ves._reconcile_step): at most
// one round of reads (kChunk), and no read started after kSliceBudgetMs
// (ves._reconcile_read), so that deliveries wait at most about that long
// while a run goes on. The next slice of an unfinished run starts once
// the delivery loop has had as much time as the last slices took: the
// transfers a slice held up complete meanwhile, and deliveries keep at least
// half the worker's time.
constexpr int kSliceListings = static_cast<int>(kChunk);
bool run_unfinished = false;
std::int64_t next_slice_ms = 0;
// Slices wait for no token of a rate-limited destination: one that found the
// bucket empty (or nearly) ends at once, and the next starts no sooner than
// this, so that a slow platform's run costs the worker a few short slices a
// second rather than a busy loop.
constexpr std::int64_t kMinSliceGapMs = 200;

}  // namespace

long worker_round(bool recorded) {
  if (alerts::pending())
    in_own_transaction("pg_ves: recording security alerts", [] {
      static SavedPlan plan{"SELECT ves._drain_security_alerts()", 0, {}, nullptr};
      safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
    });
  const std::int64_t now = steady_ms();
  if (now >= next_purge_ms) {
    next_purge_ms = now + 60 * 1000;
    in_own_transaction("pg_ves: purging old webhook delivery ids", [] {
      static SavedPlan plan{"SELECT ves._purge_inbound_deliveries()", 0, {}, nullptr};
      safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
    });
  }
  if (now >= next_follow_up_ms) {
    next_follow_up_ms = now + kFollowUpGapMs;
    in_own_transaction("pg_ves: following up accepted platform batches", [] {
      static SavedPlan plan{"SELECT ves.follow_up_batches()", 0, {}, nullptr};
      safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
    });
  }
  outcomes_unchecked = outcomes_unchecked || recorded;
  const std::int64_t gap = outcomes_unchecked ? kDueCheckGapMs : kIdleCheckMs;
  if (run_unfinished && now < next_slice_ms) return static_cast<long>(next_slice_ms - now);
  if (!run_unfinished && now - last_due_check_ms < gap)
    return static_cast<long>(gap - (now - last_due_check_ms));
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
  for (const auto &[name, stale_only] : due) {
    if (ShutdownRequestPending) return kIdleCheckMs;
    auto b = backoff.find(name);
    if (b != backoff.end() && steady_ms() < b->second.first) continue;
    // One slice of the destination's run, in a transaction of its own. A
    // run that could not read every listing counts as failed: it is tried
    // again after a growing pause, not every second.
    std::string outcome;
    bool ok = in_own_transaction("pg_ves: reconciling", [&, name = name, stale_only = stale_only] {
      static SavedPlan plan{
          "SELECT ves._reconcile_step($1, $2, $3)", 3, {TEXTOID, BOOLOID, INT4OID}, nullptr};
      Datum args[3] = {safe::text_datum(name), BoolGetDatum(stale_only),
                       Int32GetDatum(kSliceListings)};
      safe::spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
      if (SPI_processed == 1) outcome = safe::spi_text(0, 1);
    });
    if (ok && outcome == "more") {
      run_unfinished = true;
      continue;
    }
    ok = ok && outcome == "done";
    if (ok) {
      backoff.erase(name);
    } else {
      std::int64_t pause =
          b == backoff.end() ? 5000 : std::min<std::int64_t>(b->second.second * 2, 300000);
      backoff[name] = {steady_ms() + pause, pause};
    }
  }
  if (!run_unfinished) return kIdleCheckMs;
  const std::int64_t after = steady_ms();
  const std::int64_t slice_gap = std::max(after - now, kMinSliceGapMs);
  next_slice_ms = after + slice_gap;
  return static_cast<long>(slice_gap);
}

}  // namespace pgves::pg::reconcile
