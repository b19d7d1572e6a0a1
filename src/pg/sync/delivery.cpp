// Draining the outbox.
//
//   claim   a short transaction marks free rows 'syncing' under a lease
//           (FOR UPDATE SKIP LOCKED), each destination at most its share of
//           the window (core::claim_quotas), at most one open row per
//           (destination, entity), in position order, and reads their events;
//   send    outside any transaction, each destination's queue feeds libcurl
//           within its concurrency cap, token bucket and circuit breaker; new
//           rows are claimed whenever the window has room (no batch barrier);
//   record  a short transaction writes every finished transfer's outcome and
//           the destinations' health.
//
// A crash anywhere loses nothing: a lease names its holder's lease identity
// (worker::lease_owner), and rows whose holder is no longer alive are claimed
// again at once (a live holder's only when the lease expires); a request may
// then be sent twice, always with the same idempotency key (the event id).
#include "pg/sync/delivery.hpp"

#include "core/delivery/circuit_breaker.hpp"
#include "core/delivery/delivery_outcome.hpp"
#include "core/ves/envelope.hpp"
#include "core/delivery/http_request.hpp"
#include "core/json/json.hpp"
#include "core/delivery/rate_limiter.hpp"
#include "core/delivery/retry_policy.hpp"
#include "core/delivery/send_window.hpp"
#include "pg/base/boundary.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/destination_config.hpp"
#include "core/base/error.hpp"
#include "pg/sync/http_engine.hpp"
#include "pg/store/keys.hpp"
#include "pg/base/settings.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/store/stored_event.hpp"
#include "pg/sync/worker.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace pgves::pg {
namespace {

namespace core = pgves::core;

std::int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

std::int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// A credential as the loading query reads it: hex of the sealed box.
std::string unseal_hex(const char *hex) {
  std::vector<uint8> box(std::strlen(hex) / 2);
  size_t len = 0;
  if (sodium_hex2bin(box.data(), box.size(), hex, std::strlen(hex), nullptr, &len, nullptr) != 0)
    throw core::Error("invalid_destination", "a sealed destination credential is not hex");
  return keys::open_secret(box.data(), len);
}

struct Settings {
  int window = 64;
  int claim_batch = 256;
  int lease_seconds = 60;
  int safety_poll_ms = 5000;
};

struct Job {
  std::int64_t id = 0;
  std::int64_t position = 0;
  pg_uuid_t tenant{};
  int destination = 0;
  int attempts = 0;  // before this one
  std::string event_id;
  std::string body;
};

struct Destination {
  int id = 0;
  std::string name, kind, url, secret;
  const core::Adapter *adapter = nullptr;  // core::find_adapter(kind)
  int concurrency = 16;
  long timeout_ms = 10000;
  core::RetryPolicy retry;
  core::TokenBucket bucket;
  core::CircuitBreaker breaker;
  std::vector<std::pair<std::string, std::string>> headers;
  bool paused = false;
  // Set when the worker cannot use this destination's stored configuration
  // (a row written around ves.create_destination/alter_destination): its
  // rows fail with this reason instead of stopping the worker.
  std::string config_error;
  // Runtime state, kept across reloads.
  int in_flight = 0;
  bool has_work = true;  // rows may be waiting: its last claim came back full, or something changed
  std::deque<Job> queue;
  std::int64_t throttled_until_ms = 0;
  // What to write back at the next record.
  bool dirty = false;
  bool succeeded = false;
  bool gone = false;
  std::string last_error;

  Destination() = default;
  Destination(const Destination &) = delete;
  Destination &operator=(const Destination &) = delete;
  // The opened credentials do not outlive the destination in freed memory.
  ~Destination() {
    sodium_memzero(secret.data(), secret.size());
    for (auto &h : headers) sodium_memzero(h.second.data(), h.second.size());
  }
};

struct Outcome {
  std::int64_t id;
  pg_uuid_t tenant;
  const char *status;
  std::int64_t delay_ms;
  int attempts;
  long http_status;
  std::string error;
  std::string excerpt;
};

struct Totals {
  std::int64_t sent = 0, synced = 0, failed = 0, dead = 0;
};

// One destination's claim. Its plan must not depend on the table's
// statistics (the worker keeps its plans, and statistics taken while the
// outbox was empty would otherwise pick a plan that scans every open row for
// every candidate): each part has exactly one access path that needs no sort
// or sequential scan, which run_indexed turns off.
//  - candidates: outbox_open_idx, (destination_id, event_position), read in
//    position order from the scan floor;
//  - "no earlier open row of this entity": one probe of outbox_entity_idx
//    for the entity's open row just before the candidate. A scalar subquery
//    with LIMIT, not NOT EXISTS: that would become an anti-join, which the
//    planner may run as a hash join over a full index scan. The ORDER BY
//    (position, once the entity's columns are fixed) needs a sort on any
//    other index, and outbox_open_idx, which would serve it, does not apply
//    (its predicate needs next_attempt_at, which the probe does not test);
//  - the update finds the locked rows by their ctid (a TID scan), not by a
//    join whose order the statistics would choose.
// A committed lease blocks a row until it expires unless its holder is gone
// ($6 lists the lease identities of the workers alive now): rows of a worker
// that was killed are taken over at once.
const char *kClaimSql =
    "UPDATE ves.outbox o SET lease_until = now() + $3 * interval '1 second', leased_by = $5"
    " WHERE o.ctid = ANY (ARRAY("
    "  SELECT c.ctid FROM ves.outbox c"
    "  WHERE c.destination_id = $2 AND c.status IN ('pending', 'failed')"
    "    AND c.event_position >= $4"
    "    AND c.next_attempt_at <= now()"
    "    AND (c.lease_until IS NULL OR c.lease_until < now() OR NOT coalesce(c.leased_by = ANY "
    "($6), false))"
    "    AND (SELECT 1 FROM ves.outbox p"
    "         WHERE p.destination_id = c.destination_id AND p.tenant_id = c.tenant_id"
    "           AND p.entity_type = c.entity_type AND p.entity_id = c.entity_id"
    "           AND p.event_position < c.event_position AND p.status IN ('pending', 'failed')"
    "         ORDER BY p.event_position DESC"
    "         LIMIT 1) IS NULL"
    "  ORDER BY c.event_position"
    "  LIMIT $1"
    "  FOR UPDATE SKIP LOCKED))"
    " RETURNING o.id, o.tenant_id, o.destination_id, o.attempts, o.event_position, "
    "o.event_recorded_at";

const char *kRecordSql =
    "UPDATE ves.outbox o SET status = r.status, attempts = r.attempts,"
    "  next_attempt_at = now() + r.delay_ms * interval '1 millisecond',"
    "  last_status = nullif(r.http_status, 0), last_error = r.error, last_response = r.excerpt,"
    "  lease_until = NULL, leased_by = NULL, updated_at = now(),"
    "  synced_at = CASE WHEN r.status = 'synced' THEN now() END"
    " FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::int[], $6::int[], "
    "$7::text[], $8::text[])"
    "   AS r(id, tenant_id, status, delay_ms, attempts, http_status, error, excerpt)"
    " WHERE o.tenant_id = r.tenant_id AND o.id = r.id AND o.leased_by = $9"
    "   AND o.lease_until IS NOT NULL";

// Runs one of the delivery statements with sequential scans, bitmap scans
// and sorts off. Their right plans are index scans whatever the table's
// size: right after a burst the statistics still say the outbox is tiny, and
// a plan made then (the worker keeps its plans) would scan every row of a
// queue that has since grown. The settings hold for this statement only.
// Not read-only: a read-only SPI query would use the transaction's first
// snapshot, older than the claim's, and miss rows committed between.
void run_indexed(SavedPlan &plan, Datum *args, const char *nulls, int expect) {
  int level = NewGUCNestLevel();
  for (const char *name :
       {"enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_incremental_sort"})
    set_config_option(name, "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  spi_run(plan, args, nulls, false, expect);
  AtEOXact_GUC(true, level);
}

SavedPlan claim_plan = {
    kClaimSql, 6, {INT4OID, INT4OID, INT4OID, INT8OID, INT8OID, INT8ARRAYOID}, nullptr};
SavedPlan record_plan = {kRecordSql,
                         9,
                         {INT8ARRAYOID, UUIDARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID,
                          INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8OID},
                         nullptr};
SavedPlan destination_plan = {
    "UPDATE ves.destinations SET breaker_state = $2,"
    "  last_success_at = CASE WHEN $3 THEN now() ELSE last_success_at END,"
    "  last_error = coalesce($4, last_error), last_error_at = CASE WHEN $4 IS NULL THEN "
    "last_error_at ELSE now() END,"
    "  paused = paused OR $5, paused_reason = CASE WHEN $5 THEN $4 ELSE paused_reason END"
    " WHERE id = $1",
    5,
    {INT4OID, TEXTOID, BOOLOID, TEXTOID, BOOLOID},
    nullptr};

Datum array_of(const std::vector<Datum> &values, Oid type) {
  int16 len;
  bool byval;
  char align;
  get_typlenbyvalalign(type, &len, &byval, &align);
  return PointerGetDatum(construct_array(const_cast<Datum *>(values.data()),
                                         static_cast<int>(values.size()), type, len, byval, align));
}

// One LOG line for a database error the worker survives: its SQLSTATE,
// message, detail and hint, and what the worker was doing.
void log_error_data(const char *context, const ErrorData *data) {
  try {
    pg_call_void([&] {
      ereport(LOG,
              (errmsg("pg_ves worker: %s: %s (SQLSTATE %s)", context,
                      data->message ? data->message : "error", unpack_sql_state(data->sqlerrcode)),
               data->detail ? errdetail("%s", data->detail) : 0,
               data->hint ? errhint("%s", data->hint) : 0,
               data->context ? errcontext("%s", data->context) : 0));
    });
  } catch (const std::exception &) {
    // Logging is best effort.
  }
}

// Gives back every row leased by `owner`, inside the current transaction.
void release_leases_of(std::int64_t owner) {
  pg_call_void([&] {
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(owner)};
    SPI_execute_with_args(
        "UPDATE ves.outbox SET lease_until = NULL, leased_by = NULL"
        " WHERE leased_by = $1 AND lease_until IS NOT NULL",
        1, types, args, nullptr, false, 0);
  });
}

class Deliverer {
 public:
  // own_transactions: the worker runs each step in its own transaction;
  // ves.push_events runs everything in the caller's.
  Deliverer(bool own_transactions, int only_destination, std::int64_t limit)
      : own_transactions_(own_transactions),
        only_destination_(only_destination),
        limit_(limit),
        random_(std::random_device{}()) {
    owner_ = pg_call([] { return worker::lease_owner(); });
  }

  void load_config() {
    step("pg_ves: loading destinations", [&] {
      pg_call_void([&] {
        if (SPI_execute("SELECT settings::text FROM ves.sync_settings", true, 1) != SPI_OK_SELECT)
          elog(ERROR, "pg_ves: cannot read ves.sync_settings");
      });
      char *json_text =
          pg_call([] { return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1); });
      std::string json = json_text ? json_text : "{}";
      core::json::Value v = core::json::parse(json);
      auto number = [&](const char *key, int fallback) {
        const core::json::Value *x = v.find(key);
        return x && x->kind() == core::json::Kind::number ? static_cast<int>(x->as_number())
                                                          : fallback;
      };
      settings_.window = number("window", 64);
      settings_.claim_batch = number("claim_batch", 256);
      settings_.lease_seconds = number("lease_seconds", 60);
      settings_.safety_poll_ms = number("safety_poll_ms", 5000);

      // Text of every column, copied in Postgres memory; the C++ side is
      // built afterwards, outside pg_call.
      char ***rows = nullptr;
      uint64 nrows = 0;
      pg_call_void([&] {
        if (SPI_execute(
                "SELECT d.id, d.name, d.kind, d.url, encode(s.secret_box, 'hex'), d.concurrency,"
                " d.rate_limit, d.burst, d.timeout_ms, d.max_attempts, d.backoff_base_ms, "
                "d.backoff_cap_ms,"
                " d.jitter, d.breaker_threshold, d.breaker_cooldown_ms, d.headers::text, d.paused,"
                " encode(s.headers_box, 'hex')"
                " FROM ves.destinations d LEFT JOIN ves._worker_secrets() s ON s.destination_id = "
                "d.id",
                true, 0) != SPI_OK_SELECT)
          elog(ERROR, "pg_ves: cannot read ves.destinations");
        nrows = SPI_processed;
        rows = static_cast<char ***>(palloc0(sizeof(char **) * (nrows + 1)));
        for (uint64 i = 0; i < nrows; ++i) {
          rows[i] = static_cast<char **>(palloc0(sizeof(char *) * 18));
          for (int c = 0; c < 18; ++c)
            rows[i][c] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);
        }
      });
      auto text = [](const char *v) { return std::string(v ? v : ""); };
      auto num = [](const char *v) { return v ? strtod(v, nullptr) : 0.0; };
      std::map<int, bool> seen;
      for (uint64 i = 0; i < nrows; ++i) {
        char **r = rows[i];
        int id = static_cast<int>(num(r[0]));
        Destination &d = destinations_[id];
        seen[id] = true;
        d.id = id;
        d.name = text(r[1]);
        d.config_error.clear();
        try {
          parse_destination(d, r);
        } catch (const std::exception &e) {
          // One destination's bad row must not stop the others: its rows
          // fail with the reason (see dispatch) and the worker goes on.
          d.config_error = std::string("invalid destination configuration: ") + e.what();
          d.headers.clear();
          d.dirty = true;
          d.last_error = d.config_error;
          log_problem(d, 0, d.config_error);
        }
      }
      for (auto it = destinations_.begin(); it != destinations_.end();)
        it = seen.count(it->first) || it->second.in_flight > 0 ? std::next(it)
                                                               : destinations_.erase(it);
    });
  }

  // Builds a destination's settings from the text of its columns (see
  // load_config); throws on a value the worker cannot use.
  static void parse_destination(Destination &d, char **r) {
    auto text = [](const char *v) { return std::string(v ? v : ""); };
    auto num = [](const char *v) { return v ? strtod(v, nullptr) : 0.0; };
    d.kind = text(r[2]);
    d.adapter = core::find_adapter(d.kind);
    if (!d.adapter)
      throw core::Error("invalid_destination", "unknown destination kind \"" + d.kind + "\"");
    d.url = text(r[3]);
    sodium_memzero(d.secret.data(), d.secret.size());
    d.secret.clear();
    d.concurrency = static_cast<int>(num(r[5]));
    d.bucket.reconfigure(num(r[6]), num(r[7]));
    d.timeout_ms = static_cast<long>(num(r[8]));
    d.retry.max_attempts = static_cast<int>(num(r[9]));
    d.retry.base_ms = static_cast<std::int64_t>(num(r[10]));
    d.retry.cap_ms = static_cast<std::int64_t>(num(r[11]));
    d.retry.jitter = num(r[12]);
    d.breaker.reconfigure(static_cast<int>(num(r[13])), static_cast<std::int64_t>(num(r[14])));
    d.paused = text(r[16]) == "t";
    for (auto &h : d.headers) sodium_memzero(h.second.data(), h.second.size());
    d.headers.clear();
    // The same parser that checked the headers when they were written;
    // secret ones are shown redacted there and come from the sealed box.
    for (const core::HeaderSpec &h : core::parse_header_option(core::json::parse(text(r[15]))))
      if (!h.secret) d.headers.emplace_back(h.name, h.value);
    if (r[4]) d.secret = unseal_hex(r[4]);
    if (r[17]) {
      std::string sealed = unseal_hex(r[17]);
      for (const core::HeaderSpec &h : core::parse_secret_headers(sealed))
        d.headers.emplace_back(h.name, h.value);
      sodium_memzero(sealed.data(), sealed.size());
    }
  }

  // What each destination may claim now (core::claim_quotas), in
  // destinations_ order, and whether a claim is worth its transaction.
  struct ClaimPlan {
    std::vector<std::pair<int, int>> quotas;  // destination id, rows
    bool worthwhile = false;
  };
  ClaimPlan plan_claim(std::int64_t max_rows) {
    std::int64_t now = steady_ms();
    std::vector<core::DestinationLoad> loads;
    std::vector<int> ids;
    for (auto &entry : destinations_) {
      Destination &d = entry.second;
      if (only_destination_ && d.id != only_destination_) continue;
      core::DestinationLoad l;
      l.concurrency = d.concurrency;
      l.held = d.in_flight + static_cast<int>(d.queue.size());
      l.ready = ready(d, now);
      l.has_work = d.has_work;
      loads.push_back(l);
      ids.push_back(d.id);
    }
    int batch = static_cast<int>(
        std::min<std::int64_t>(settings_.claim_batch, std::max<std::int64_t>(0, max_rows)));
    std::vector<int> quotas = core::claim_quotas(loads, settings_.window, batch);
    ClaimPlan plan;
    plan.worthwhile = core::claim_worthwhile(loads, quotas);
    for (size_t i = 0; i < ids.size(); ++i)
      if (quotas[i] > 0) plan.quotas.emplace_back(ids[i], quotas[i]);
    return plan;
  }

  // Claims each destination's quota and queues the rows on it.
  int claim(const ClaimPlan &plan) {
    if (plan.quotas.empty()) return 0;
    int claimed = 0;
    std::int64_t floor = scan_floor();
    std::vector<std::int64_t> live = pg_call([] { return worker::live_lease_owners(); });
    step("pg_ves: claiming outbox rows", [&] {
      std::vector<std::int64_t> positions;
      std::vector<Job> jobs;
      TimestampTz first_recorded = DT_NOEND, last_recorded = DT_NOBEGIN;
      std::vector<Datum> live_datums;
      for (std::int64_t owner : live) live_datums.push_back(Int64GetDatum(owner));
      for (const auto &quota : plan.quotas) {
        uint64 got = 0;
        pg_call_void([&] {
          Datum args[6] = {Int32GetDatum(quota.second),
                           Int32GetDatum(quota.first),
                           Int32GetDatum(settings_.lease_seconds),
                           Int64GetDatum(floor),
                           Int64GetDatum(owner_),
                           array_of(live_datums, INT8OID)};
          run_indexed(claim_plan, args, nullptr, SPI_OK_UPDATE_RETURNING);
          got = SPI_processed;
        });
        // Fewer rows than asked: nothing more waits for it until something
        // changes (a commit, a finished row, a retry falling due, a poll).
        destinations_[quota.first].has_work = got >= static_cast<uint64>(quota.second);
        SPITupleTable *table = SPI_tuptable;
        for (uint64 i = 0; i < got; ++i) {
          HeapTuple tup = table->vals[i];
          bool isnull;
          Job job;
          job.id = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 1, &isnull));
          job.tenant = *DatumGetUUIDP(SPI_getbinval(tup, table->tupdesc, 2, &isnull));
          job.destination = DatumGetInt32(SPI_getbinval(tup, table->tupdesc, 3, &isnull));
          job.attempts = DatumGetInt32(SPI_getbinval(tup, table->tupdesc, 4, &isnull));
          job.position = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 5, &isnull));
          positions.push_back(job.position);
          TimestampTz recorded =
              DatumGetTimestampTz(SPI_getbinval(tup, table->tupdesc, 6, &isnull));
          first_recorded = std::min(first_recorded, recorded);
          last_recorded = std::max(last_recorded, recorded);
          jobs.push_back(std::move(job));
        }
      }
      if (jobs.empty()) return;
      std::unordered_map<std::int64_t, std::string> bodies =
          envelopes(positions, first_recorded, last_recorded);
      std::vector<Datum> unclaimed;
      for (size_t i = 0; i < jobs.size(); ++i) {
        Job &job = jobs[i];
        if (held_.count(job.id)) continue;  // our own lease, renewed
        auto body = bodies.find(positions[i]);
        auto dest = destinations_.find(job.destination);
        auto bad = envelope_errors_.find(positions[i]);
        if (bad != envelope_errors_.end() && dest != destinations_.end()) {
          // Its event cannot be exported: the row fails, the others go on.
          fail_job(job, dest->second, bad->second);
          continue;
        }
        if (body == bodies.end() || dest == destinations_.end()) {
          // Its event or destination vanished meanwhile (retention, a drop):
          // give the row back rather than hold its lease.
          unclaimed.push_back(Int64GetDatum(job.id));
          continue;
        }
        job.event_id = body->second.substr(0, 36);
        job.body = body->second.substr(36);
        held_[job.id] = true;
        held_positions_.insert(job.position);
        next_floor_ = std::max(next_floor_, job.position + 1);
        dest->second.queue.push_back(std::move(job));
        ++claimed;
      }
      if (!unclaimed.empty()) {
        release_in_step(unclaimed);
        full_scan_ = true;
      }
    });
    claimed_total_ += claimed;
    full_scan_ = false;
    finished_floor_ = INT64_MAX;
    return claimed;
  }

  // Something may have queued rows for any destination: a commit woke the
  // worker, a poll is due, a retry fell due.
  void expect_work() {
    for (auto &entry : destinations_) entry.second.has_work = true;
  }

  // Starts transfers while destinations have room.
  void dispatch(HttpEngine &engine) {
    std::int64_t now = steady_ms();
    std::int64_t now_us = now * 1000;
    for (auto &entry : destinations_) {
      Destination &d = entry.second;
      while (!d.queue.empty() && d.in_flight < d.concurrency && now >= d.throttled_until_ms &&
             d.bucket.wait_us(now_us) == 0 && d.breaker.allow(now)) {
        d.bucket.try_take(now_us);
        Job job = std::move(d.queue.front());
        d.queue.pop_front();
        if (!d.config_error.empty()) {
          forget(job);
          fail_job(job, d, d.config_error);
          continue;
        }
        core::HttpRequest request;
        try {
          const core::OutboxRow row{job.id, job.event_id, job.body, job.attempts + 1};
          request = std::move(
              d.adapter->build_requests({d.url, d.secret, d.headers}, {row}, unix_ms()).at(0).http);
        } catch (const core::Error &e) {
          // A destination whose URL, secret or headers cannot make a request:
          // nothing is sent, the row is dead-lettered with the reason.
          forget(job);
          d.dirty = true;
          d.last_error = std::string("invalid destination configuration: ") + e.what();
          outcomes_.push_back(
              Outcome{job.id, job.tenant, "dead", 0, job.attempts, 0, d.last_error, {}});
          ++totals_.dead;
          continue;
        } catch (const std::exception &e) {
          forget(job);
          fail_job(job, d, std::string("cannot build the request: ") + e.what());
          continue;
        }
        std::uint64_t tag = next_tag_++;
        try {
          // ves.max_timeout_ms bounds every transfer, even one configured
          // before the setting was lowered.
          engine.submit(tag, request, std::min<long>(d.timeout_ms, settings::max_timeout_ms));
        } catch (const std::exception &e) {
          forget(job);
          fail_job(job, d, std::string("cannot start the transfer: ") + e.what());
          continue;
        }
        ++d.in_flight;
        ++totals_.sent;
        in_flight_[tag] = std::move(job);
      }
    }
  }

  // Turns finished transfers into outcomes and destination health.
  void absorb(std::vector<HttpResult> results) {
    for (HttpResult &r : results) {
      auto it = in_flight_.find(r.tag);
      if (it == in_flight_.end()) continue;
      Job job = std::move(it->second);
      in_flight_.erase(it);
      forget(job);
      Destination &d = destinations_[job.destination];
      --d.in_flight;
      d.dirty = true;
      try {
        absorb_one(r, job, d);
      } catch (const std::exception &e) {
        fail_job(job, d, std::string("cannot process the answer: ") + e.what());
      }
    }
  }

  void absorb_one(HttpResult &r, const Job &job, Destination &d) {
    std::int64_t now = steady_ms();
    {  // the former loop body of absorb(), kept as it was
      // (A destination whose kind has no adapter sends nothing; absorb() fails the row.)
      if (!d.adapter) throw core::Error("invalid_destination", "unknown destination kind");
      const core::Answer answer{r.transport_error, r.status, r.retry_after, r.excerpt};
      core::Classified c = core::to_classified(d.adapter->classify(answer, 1, unix_ms()).at(0));
      Outcome o{job.id,           job.tenant, "synced", 0,
                job.attempts + 1, r.status,   {},       std::move(r.excerpt)};
      std::string what = r.transport_error ? r.error : "HTTP " + std::to_string(r.status);
      switch (c.outcome) {
        case core::Outcome::synced:
          d.breaker.on_success();
          d.succeeded = true;
          ++totals_.synced;
          d.has_work = true;  // the entity's next row may now go
          break;
        case core::Outcome::retry:
          if (r.status == 429 || (r.status == 503 && c.retry_after_ms >= 0)) {
            // Throttled: the endpoint is alive; hold the whole destination
            // back as long as it asked. A bare 503 is a failure like any 5xx.
            if (c.retry_after_ms > 0)
              d.throttled_until_ms = std::max(d.throttled_until_ms, now + c.retry_after_ms);
          } else {
            d.breaker.on_failure(now);
          }
          d.last_error = what;
          if (o.attempts >= d.retry.max_attempts) {
            o.status = "dead";
            o.error = what + " after " + std::to_string(o.attempts) + " attempts";
            ++totals_.dead;
            d.has_work = true;
          } else {
            o.status = "failed";
            o.error = what;
            o.delay_ms = core::next_delay_ms(d.retry, o.attempts, c, uniform_(random_));
            next_retry_ms_ = std::min(next_retry_ms_, now + o.delay_ms);
            ++totals_.failed;
          }
          break;
        case core::Outcome::permanent:
          d.breaker.on_success();
          d.last_error = what;
          o.status = "dead";
          o.error = what + " (permanent)";
          ++totals_.dead;
          d.has_work = true;
          break;
        case core::Outcome::gone:
          d.last_error = what + ": the endpoint is gone; destination paused";
          d.gone = true;
          d.paused = true;
          o.status = "dead";
          o.error = what;
          ++totals_.dead;
          d.has_work = true;
          break;
      }
      outcomes_.push_back(std::move(o));
    }
  }

  // A row that failed in the worker itself (a destination configuration it
  // cannot use, an event it cannot export, an error while sending): logged
  // with its ids, recorded 'failed' with the reason and retried with the
  // destination's backoff ('dead' after its last attempt), while every other
  // row goes on.
  // The caller has already forgotten the job if it was held.
  void fail_job(const Job &job, Destination &d, const std::string &error) {
    log_problem(d, job.id, error);
    d.dirty = true;
    d.last_error = error;
    Outcome o{job.id, job.tenant, "failed", 0, job.attempts + 1, 0, error, {}};
    if (o.attempts >= d.retry.max_attempts) {
      o.status = "dead";
      o.error = error + " after " + std::to_string(o.attempts) + " attempts";
      ++totals_.dead;
    } else {
      core::Classified c{core::Outcome::retry, -1};
      o.delay_ms = core::next_delay_ms(d.retry, o.attempts, c, uniform_(random_));
      next_retry_ms_ = std::min(next_retry_ms_, steady_ms() + o.delay_ms);
      ++totals_.failed;
    }
    outcomes_.push_back(std::move(o));
  }

  // One LOG line for a problem of one destination or row.
  static void log_problem(const Destination &d, std::int64_t row, const std::string &error) {
    std::string what = error;
    try {
      pg_call_void([&] {
        if (row)
          ereport(
              LOG,
              (errmsg("pg_ves worker: outbox row %lld for destination \"%s\" (id %d) failed: %s",
                      static_cast<long long>(row), d.name.c_str(), d.id, what.c_str()),
               errhint(
                   "The row is retried with the destination's backoff; the other rows go on.")));
        else
          ereport(
              LOG,
              (errmsg("pg_ves worker: destination \"%s\" (id %d): %s", d.name.c_str(), d.id,
                      what.c_str()),
               errhint("Fix it with ves.alter_destination(); its rows fail until then, the other "
                       "destinations go on.")));
      });
    } catch (const std::exception &) {
      // Logging is best effort.
    }
  }

  void record() {
    bool any_dirty = false;
    for (auto &entry : destinations_) any_dirty |= entry.second.dirty;
    if (outcomes_.empty() && !any_dirty) return;
    try {
      // One transaction for the rows and the destinations.
      step("pg_ves: recording deliveries", [&] {
        if (!outcomes_.empty()) record_rows(outcomes_.data(), outcomes_.size());
        if (any_dirty) record_destinations();
      });
    } catch (const PgError &e) {
      if (!own_transactions_) throw;
      // It failed as a whole: roll it back, log it, and record the rows one
      // by one, so that one row the database refuses does not keep the
      // others from being recorded.
      abort_step();
      log_pg_error("cannot record a batch of deliveries; recording its rows one by one", e);
      for (const Outcome &o : outcomes_) {
        try {
          step("pg_ves: recording deliveries", [&] { record_rows(&o, 1); });
        } catch (const PgError &row_error) {
          abort_step();
          std::string what = "cannot record outbox row " + std::to_string(o.id) + " (status " +
                             o.status + "); it is sent again once its lease ends";
          log_pg_error(what.c_str(), row_error);
        }
      }
      if (any_dirty) {
        try {
          step("pg_ves: recording destinations", [&] { record_destinations(); });
        } catch (const PgError &dest_error) {
          abort_step();
          log_pg_error("cannot record the destinations' health", dest_error);
        }
      }
    }
    std::int64_t synced = 0, failed = 0;
    for (const Outcome &o : outcomes_) (std::string(o.status) == "synced" ? synced : failed)++;
    outcomes_.clear();
    std::vector<Datum> released;
    for (auto &entry : destinations_) {
      Destination &d = entry.second;
      if (d.gone) {
        // The destination is paused now: its queued rows go back unsent, to
        // be claimed again when it is resumed.
        for (const Job &job : d.queue) {
          forget(job);
          released.push_back(Int64GetDatum(job.id));
        }
        full_scan_ = true;
        d.queue.clear();
      }
      d.dirty = d.succeeded = d.gone = false;
      d.last_error.clear();
    }
    if (!released.empty()) release(released);
    if (own_transactions_)
      worker::worker_report(static_cast<int>(in_flight_.size()), synced, failed);
  }

  void record_rows(const Outcome *outcomes, size_t n) {
    // Declared outside pg_call: a Postgres error must not skip destructors.
    std::vector<Datum> ids, tenants, statuses, delays, attempts, codes, errors, excerpts;
    {  // formerly inside record()'s step
      pg_call_void([&] {
        for (size_t i = 0; i < n; ++i) {
          const Outcome &o = outcomes[i];
          ids.push_back(Int64GetDatum(o.id));
          pg_uuid_t *t = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
          *t = o.tenant;
          tenants.push_back(UUIDPGetDatum(t));
          statuses.push_back(CStringGetTextDatum(o.status));
          delays.push_back(Int64GetDatum(o.delay_ms));
          attempts.push_back(Int32GetDatum(o.attempts));
          codes.push_back(Int32GetDatum(static_cast<int32>(o.http_status)));
          errors.push_back(CStringGetTextDatum(o.error.c_str()));
          excerpts.push_back(
              PointerGetDatum(cstring_to_text_with_len(o.excerpt.data(), clean_length(o.excerpt))));
        }
        Datum args[9] = {
            array_of(ids, INT8OID),    array_of(tenants, UUIDOID),  array_of(statuses, TEXTOID),
            array_of(delays, INT8OID), array_of(attempts, INT4OID), array_of(codes, INT4OID),
            array_of(errors, TEXTOID), array_of(excerpts, TEXTOID), Int64GetDatum(owner_)};
        run_indexed(record_plan, args, nullptr, SPI_OK_UPDATE);
      });
    }
  }

  void record_destinations() {
    {  // formerly inside record()'s step
      pg_call_void([&] {
        std::int64_t now = steady_ms();
        for (auto &entry : destinations_) {
          Destination &d = entry.second;
          if (!d.dirty) continue;
          Datum args[5] = {
              Int32GetDatum(d.id), CStringGetTextDatum(core::to_string(d.breaker.state(now))),
              BoolGetDatum(d.succeeded),
              d.last_error.empty() ? (Datum)0 : CStringGetTextDatum(d.last_error.c_str()),
              BoolGetDatum(d.gone)};
          char nulls[6] = {' ', ' ', ' ', d.last_error.empty() ? 'n' : ' ', ' ', '\0'};
          spi_run(destination_plan, args, nulls, false, SPI_OK_UPDATE);
        }
      });
    }
  }

  // Logs a database error the worker survives, with all it carries.
  static void log_pg_error(const char *context, const PgError &e) {
    log_error_data(context, e.data());
  }

  // Rolls back a step's transaction after an error inside it.
  void abort_step() {
    if (own_transactions_) pg_call_void([] { AbortCurrentTransaction(); });
  }

  // Where claims start reading the open-rows index. Rows that finish leave
  // dead index entries at the low end until vacuum, and a queue that always
  // scans from its first entry slows down as they pile up. Between full scans
  // (at start, every safety poll, when a retry falls due or rows are given
  // back) a claim starts at the lowest position it can matter from: a row
  // still held, one finished since the last claim (its entity's next row is
  // after it), or past everything claimed so far (new rows).
  std::int64_t scan_floor() const {
    if (full_scan_) return 0;
    std::int64_t floor = std::min(next_floor_, finished_floor_);
    if (!held_positions_.empty()) floor = std::min(floor, *held_positions_.begin());
    return floor;
  }

  void forget(const Job &job) {
    held_.erase(job.id);
    auto it = held_positions_.find(job.position);
    if (it != held_positions_.end()) held_positions_.erase(it);
    finished_floor_ = std::min(finished_floor_, job.position);
  }

  // Gives claimed rows back without sending them.
  void release(const std::vector<Datum> &ids) {
    step("pg_ves: releasing rows", [&] { release_in_step(ids); });
  }

  void release_in_step(const std::vector<Datum> &ids) {
    pg_call_void([&] {
      Oid types[2] = {INT8ARRAYOID, INT8OID};
      Datum args[2] = {array_of(ids, INT8OID), Int64GetDatum(owner_)};
      SPI_execute_with_args(
          "UPDATE ves.outbox SET lease_until = NULL, leased_by = NULL"
          " WHERE id = ANY ($1) AND leased_by = $2",
          2, types, args, nullptr, false, 0);
    });
  }

  // Rows this process claimed before its state was dropped (after an error)
  // go back to the queue at once instead of waiting out their lease.
  void release_own_leases() {
    step("pg_ves: releasing leases", [&] { release_leases_of(owner_); });
  }

  int queued() const {
    int n = 0;
    for (const auto &entry : destinations_) n += static_cast<int>(entry.second.queue.size());
    return n;
  }

  // How long the loop may sleep before something it owns needs attention.
  long idle_timeout_ms(long poll_ms) {
    std::int64_t now = steady_ms();
    std::int64_t until = now + poll_ms;
    if (next_retry_ms_ < until) until = next_retry_ms_;
    for (const auto &entry : destinations_) {
      const Destination &d = entry.second;
      if (d.queue.empty()) continue;
      if (d.throttled_until_ms > now)
        until = std::min(until, d.throttled_until_ms);
      else if (d.breaker.state(now) == core::CircuitBreaker::State::open)
        until = std::min(until, d.breaker.open_until_ms());
      else
        until =
            std::min(until, now + std::max<std::int64_t>(1, d.bucket.wait_us(now * 1000) / 1000));
    }
    return static_cast<long>(std::max<std::int64_t>(0, until - now));
  }

  // Whether claiming may find something for a destination that may send: a
  // row of it finished (the entity's next one may go), its last claim came
  // back full, or a scheduled retry is due (then every destination may have
  // work again; the retry is below the scan floor).
  bool more_work() {
    std::int64_t now = steady_ms();
    if (next_retry_ms_ <= now) {
      next_retry_ms_ = INT64_MAX;
      full_scan_ = true;
      expect_work();
    }
    for (const auto &entry : destinations_)
      if (entry.second.has_work && ready(entry.second, now) &&
          (!only_destination_ || entry.first == only_destination_))
        return true;
    return false;
  }

  // The next claim reads the outbox from its first open row.
  void request_full_scan() { full_scan_ = true; }

  const Settings &settings() const { return settings_; }
  const Totals &totals() const { return totals_; }
  std::int64_t claimed_total() const { return claimed_total_; }
  std::int64_t limit() const { return limit_; }
  int in_flight() const { return static_cast<int>(in_flight_.size()); }

 private:
  template <typename F>
  void step(const char *activity, F &&f) {
    if (!own_transactions_) {
      f();
      return;
    }
    pg_call_void([&] {
      SetCurrentStatementStartTimestamp();
      StartTransactionCommand();
      spi_connect();
      PushActiveSnapshot(GetTransactionSnapshot());
      pgstat_report_activity(STATE_RUNNING, activity);
    });
    f();
    pg_call_void([] {
      SPI_finish();
      PopActiveSnapshot();
      CommitTransactionCommand();
      pgstat_report_stat(false);
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
  }

  // Each event's VES envelope, keyed by position; the first 36 bytes are its
  // event id (the webhook-id and idempotency key).
  // The time bounds prune the read to the partitions holding these events.
  std::unordered_map<std::int64_t, std::string> envelopes(
      const std::vector<std::int64_t> &positions, TimestampTz first_recorded,
      TimestampTz last_recorded) {
    std::unordered_map<std::int64_t, std::string> out;
    static std::string sql =
        std::string("SELECT ") + kStoredEventColumns +
        " FROM ves.events WHERE position = ANY ($1) AND recorded_at BETWEEN $2 AND $3";
    static SavedPlan plan = {nullptr, 3, {INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, nullptr};
    plan.sql = sql.c_str();
    std::vector<Datum> values;
    for (std::int64_t p : positions) values.push_back(Int64GetDatum(p));
    pg_call_void([&] {
      Datum args[3] = {array_of(values, INT8OID), TimestampTzGetDatum(first_recorded),
                       TimestampTzGetDatum(last_recorded)};
      run_indexed(plan, args, nullptr, SPI_OK_SELECT);
    });
    SPITupleTable *table = SPI_tuptable;
    envelope_errors_.clear();
    for (uint64 i = 0; i < SPI_processed; ++i) {
      std::int64_t position = 0;
      try {
        StoredEvent e = read_stored_event(table, i);
        position = e.position;
        e.event.payload = core::json::parse(e.payload_text);
        out[e.position] =
            core::ves::format_uuid(e.event.event_id) + core::ves::export_envelope(e.event);
      } catch (const PgError &) {
        throw;  // a database error: the claim's transaction is aborted
      } catch (const std::exception &e) {
        // One event the worker cannot export fails its rows, not the claim.
        if (position)
          envelope_errors_[position] = std::string("cannot export the event: ") + e.what();
        else
          throw;
      }
    }
    return out;
  }

  // Response excerpts are diagnostics: cut at the first byte that is not
  // valid as text so the text column never refuses them.
  static int clean_length(const std::string &s) {
    size_t n = 0;
    while (n < s.size() && s[n] != '\0' && static_cast<unsigned char>(s[n]) < 0x80) ++n;
    return static_cast<int>(n);
  }

  // May send now: not paused, throttled or with its circuit open.
  static bool ready(const Destination &d, std::int64_t now) {
    return !d.paused && now >= d.throttled_until_ms &&
           d.breaker.state(now) != core::CircuitBreaker::State::open;
  }

  bool own_transactions_;
  int only_destination_;
  std::int64_t limit_;
  Settings settings_;
  std::map<int, Destination> destinations_;
  std::unordered_map<std::uint64_t, Job> in_flight_;
  std::unordered_map<std::int64_t, bool> held_;
  std::multiset<std::int64_t> held_positions_;
  std::int64_t finished_floor_ = INT64_MAX;
  std::int64_t next_floor_ = 0;
  bool full_scan_ = true;
  std::vector<Outcome> outcomes_;
  std::unordered_map<std::int64_t, std::string>
      envelope_errors_;  // by position, from the last envelopes()
  std::uint64_t next_tag_ = 1;
  std::int64_t next_retry_ms_ = INT64_MAX;
  std::int64_t owner_ = 0;  // this process's lease identity
  Totals totals_;
  std::int64_t claimed_total_ = 0;
  std::mt19937_64 random_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
};

bool extension_present() {
  bool present = false;
  pg_call_void([&] {
    StartTransactionCommand();
    present = OidIsValid(get_extension_oid("pg_ves", true));
    CommitTransactionCommand();
  });
  return present;
}

void check_interrupts() {
  pg_call_void([] {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
  });
}

void housekeeping() {
  pg_call_void([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    spi_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_ves: housekeeping");
    // Partition DDL waits at most 100 ms for its locks: appends and keyed
    // calls must not queue behind it; a busy round is retried 10 s later.
    SPI_execute(
        "SELECT ves.ensure_partitions(pg_catalog.now(), '100ms'), "
        "ves.ensure_idempotency_partitions(), "
        "ves.expire_idempotency_records(), ves.expire_held_order_events()",
        false, 0);
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
  });
  // Closed rows go in batches, each its own transaction, until a batch comes
  // back short: a backlog of any size is purged without long locks.
  for (int round = 0; round < 1000 && !ShutdownRequestPending; ++round) {
    bool more = false;
    pg_call_void([&] {
      SetCurrentStatementStartTimestamp();
      StartTransactionCommand();
      spi_connect();
      PushActiveSnapshot(GetTransactionSnapshot());
      SPI_execute(
          "SELECT ves.purge_outbox(), (SELECT (settings OPERATOR(pg_catalog.->>) "
          "'purge_batch')::int"
          " FROM ves.sync_settings)",
          false, 1);
      bool isnull;
      int64 purged =
          DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
      int32 batch =
          DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
      more = purged >= batch;
      SPI_finish();
      PopActiveSnapshot();
      CommitTransactionCommand();
      CHECK_FOR_INTERRUPTS();
    });
    if (!more) break;
  }
  pg_call_void([] {
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

}  // namespace

// Sends NOTIFY ves_events for appenders that committed since the last time
// (see worker::relay_notify_at_commit): one short transaction for any number
// of commits, at most one every kRelayGapMs, so a busy stream of commits
// costs a few notifications a millisecond apart rather than one each.
// `force` sends one regardless, for commits that may have asked a worker
// that has since stopped. Returns whether requests are still waiting.
constexpr std::int64_t kRelayGapMs = 2;

struct Relay {
  std::uint64_t relayed = 0;
  std::int64_t last_ms = 0;
  bool active = false;  // appenders may wake the worker for notifications alone
};

bool relay_notifications(Relay &r, bool force) {
  std::uint64_t requests = pg_call([] { return worker::worker_notify_requests(); });
  if (requests == r.relayed && !force) return false;
  std::int64_t now = steady_ms();
  if (!force && now - r.last_ms < kRelayGapMs) return true;
  std::uint64_t latest = pg_call([requests] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    Async_Notify("ves_events", nullptr);
    CommitTransactionCommand();
    return worker::worker_notify_relayed(requests);
  });
  r.relayed = requests;
  r.last_ms = now;
  return latest != requests;
}

// After an error in a round: roll back whatever transaction is open, drop
// the deliverer (the next one gives this process's leases back) and pause.
void recover(HttpEngine &engine, std::unique_ptr<Deliverer> &deliverer, Relay &relay) {
  try {
    pg_call_void([] {
      AbortCurrentTransaction();
      pgstat_report_activity(STATE_IDLE, "pg_ves: retrying after an error (see the server log)");
    });
  } catch (const PgError &e) {
    log_error_data("cannot roll back after an error", e.data());
  }
  deliverer.reset();
  relay.active = false;
  std::int64_t until = steady_ms() + 5000;
  // The pause ends early for a shutdown request (the latch is set).
  while (!ShutdownRequestPending && steady_ms() < until) {
    engine.wait(static_cast<long>(until - steady_ms()));
    check_interrupts();
  }
}

// SIGTERM: no new claims; transfers in flight get at most kShutdownDrainMs
// (or their own timeout, when shorter) to answer; the answers received are
// recorded in one short transaction and every lease this process still
// holds is given back, so no row waits out lease_seconds.
constexpr std::int64_t kShutdownDrainMs = 5000;

void stop_gracefully(HttpEngine &engine, std::unique_ptr<Deliverer> &deliverer) {
  if (!deliverer) return;
  try {
    pg_call_void([] {
      pgstat_report_activity(STATE_RUNNING, "pg_ves: stopping, finishing transfers in flight");
    });
    std::int64_t deadline = steady_ms() + kShutdownDrainMs;
    while (deliverer->in_flight() > 0 && steady_ms() < deadline) {
      engine.wait(static_cast<long>(std::min<std::int64_t>(100, deadline - steady_ms())));
      deliverer->absorb(engine.take_completed());
      check_interrupts();
    }
    int abandoned = deliverer->in_flight();
    deliverer->record();
    deliverer->release_own_leases();
    if (abandoned > 0)
      pg_call_void([&] {
        ereport(
            LOG,
            (errmsg(
                "pg_ves worker: stopped with %d transfers unanswered after %lld ms; their rows are "
                "sent again (same idempotency key)",
                abandoned, static_cast<long long>(kShutdownDrainMs))));
      });
  } catch (const PgError &e) {
    log_error_data(
        "could not finish cleanly while stopping; leased rows are claimed again after their lease",
        e.data());
    try {
      pg_call_void([] { AbortCurrentTransaction(); });
    } catch (const std::exception &) {
    }
  } catch (const std::exception &e) {
    try {
      pg_call_void([&] {
        ereport(LOG,
                (errmsg("pg_ves worker: could not finish cleanly while stopping: %s", e.what())));
      });
    } catch (const std::exception &) {
    }
  }
}

void release_my_leases() {
  std::int64_t owner = pg_call([] { return worker::lease_owner(); });
  pg_call_void([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    spi_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_ves: releasing leases");
  });
  release_leases_of(owner);
  pg_call_void([] {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

void run_delivery_loop() {
  // A lost commit of a claim or a result only means a row is sent again with
  // the same idempotency key, so the worker does not wait for WAL flushes.
  pg_call_void([] {
    SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
    // The worker runs the same few statements forever: plan them once.
    SetConfigOption("plan_cache_mode", "force_generic_plan", PGC_USERSET, PGC_S_SESSION);
    // DDL (DROP EXTENSION, ALTER TABLE) wins over the worker: the worker gives
    // up a lock wait quickly, and in a deadlock it is the one that yields.
    SetConfigOption("lock_timeout", "2s", PGC_SUSET, PGC_S_SESSION);
    SetConfigOption("deadlock_timeout", "100ms", PGC_SUSET, PGC_S_SESSION);
  });
  HttpEngine engine;
  std::unique_ptr<Deliverer> deliverer;
  std::uint64_t epoch = 0;
  std::int64_t last_poll = 0, last_housekeeping = 0, last_full_scan = 0;
  Relay relay;
  bool relay_waiting = false;
  bool woken = true;
  for (;;) {
    check_interrupts();
    if (ShutdownRequestPending) break;
    try {
      if (!deliverer) {
        if (!extension_present()) {
          // Not installed (yet, or any more): idle without spinning.
          pg_call_void([] {
            worker::worker_relays_notify(false);
            pgstat_report_activity(STATE_IDLE, "pg_ves: waiting for CREATE EXTENSION pg_ves");
          });
          engine.wait(10000);
          continue;
        }
        deliverer = std::make_unique<Deliverer>(true, 0, 0);
        deliverer->release_own_leases();
        epoch = 0;
        pg_call_void([] { worker::worker_relays_notify(true); });
        relay.active = true;
        relay_notifications(relay, true);
      }
      std::uint64_t now_epoch = pg_call([] { return worker::destinations_epoch(); });
      if (now_epoch != epoch) {
        deliverer->load_config();
        deliverer->request_full_scan();
        epoch = now_epoch;
      }
      std::int64_t now = steady_ms();
      const Settings &cfg = deliverer->settings();
      bool poll_due = now - last_poll >= cfg.safety_poll_ms;
      if (now - last_full_scan >= cfg.safety_poll_ms) {
        // Rows below the scan floor (excluded or locked earlier) are looked
        // at again at least this often, however busy the worker is.
        deliverer->request_full_scan();
        last_full_scan = now;
      }
      if (woken || poll_due) {
        deliverer->expect_work();
        last_poll = now;
      }
      // Each destination claims within its share of the window; a claim is
      // a transaction, so they are batched (see core::claim_worthwhile).
      deliverer->more_work();
      Deliverer::ClaimPlan plan = deliverer->plan_claim(cfg.claim_batch);
      if (plan.worthwhile) {
        last_poll = now;
        deliverer->claim(plan);
      }
      deliverer->dispatch(engine);
      deliverer->more_work();
      plan = deliverer->plan_claim(cfg.claim_batch);
      long timeout = plan.worthwhile ? 0 : deliverer->idle_timeout_ms(cfg.safety_poll_ms);
      if (relay_waiting) timeout = std::min(timeout, static_cast<long>(kRelayGapMs));
      woken = engine.wait(timeout);
      woken = pg_call([] { return worker::worker_take_outbox_wake(); }) || (woken && !relay.active);
      relay_waiting = relay_notifications(relay, false);
      deliverer->absorb(engine.take_completed());
      deliverer->record();
      if (now - last_housekeeping >= 10000) {
        housekeeping();
        last_housekeeping = now;
      }
    } catch (const PgError &e) {
      // A database error outside one row or destination (the extension
      // being dropped, a lock timeout, ...): log it, roll back, drop all
      // state (its leases are given back at once), and start over after a
      // pause.
      log_error_data("a delivery round failed; retrying in 5 seconds", e.data());
      recover(engine, deliverer, relay);
    } catch (const std::exception &e) {
      // The same for a C++ error: the worker never dies of one round.
      try {
        pg_call_void([&] {
          ereport(LOG, (errmsg("pg_ves worker: a delivery round failed; retrying in 5 seconds: %s",
                               e.what())));
        });
      } catch (const std::exception &) {
      }
      recover(engine, deliverer, relay);
    }
  }
  stop_gracefully(engine, deliverer);
}

}  // namespace pgves::pg

using namespace pgves::pg;

// ves.push_events(destination, max_count): one delivery pass from the calling
// backend, inside its transaction (rows stay locked while their requests are
// in flight). For manual syncs and tests; the worker does this continuously.
PGVES_FUNCTION(ves_push_events) {
  int destination = 0;
  if (!PG_ARGISNULL(0)) {
    std::string name = pg_call([&] { return std::string(text_to_cstring(PG_GETARG_TEXT_PP(0))); });
    pg_call_void([&] {
      spi_connect();
      Oid types[1] = {TEXTOID};
      Datum args[1] = {CStringGetTextDatum(name.c_str())};
      SPI_execute_with_args("SELECT id FROM ves.destinations WHERE name = $1", 1, types, args,
                            nullptr, true, 1);
      if (SPI_processed == 1) {
        bool isnull;
        destination =
            DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
      }
      SPI_finish();
    });
    if (destination == 0)
      throw VesError(sqlstate::not_found, "destination \"" + name + "\" does not exist", {},
                     "List destinations with SELECT name FROM ves.destinations.");
  }
  std::int64_t max_count = PG_ARGISNULL(1) ? 1000 : PG_GETARG_INT32(1);
  if (max_count < 1 || max_count > 100000)
    throw VesError(sqlstate::invalid_argument, "max_count must be between 1 and 100000", {},
                   "Push in passes of at most 100000 rows.");
  pg_call_void([] { spi_connect(); });
  Deliverer d(false, destination, max_count);
  d.load_config();
  HttpEngine engine;
  for (;;) {
    pg_call_void([] { CHECK_FOR_INTERRUPTS(); });
    std::int64_t room = max_count - d.claimed_total();
    if (room > 0 && d.more_work()) {
      Deliverer::ClaimPlan plan = d.plan_claim(room);
      if (plan.worthwhile || (d.in_flight() == 0 && d.queued() == 0)) d.claim(plan);
    }
    d.dispatch(engine);
    if (d.in_flight() == 0 && d.queued() == 0) {
      // Done unless a finished row unblocked its entity's next one (retries
      // scheduled for later are the worker's business).
      if (!d.more_work() || d.claimed_total() >= max_count) break;
      continue;
    }
    engine.wait(d.idle_timeout_ms(1000));
    d.absorb(engine.take_completed());
    d.record();
  }
  pg_call_void([] { SPI_finish(); });
  const Totals &t = d.totals();
  TupleDesc desc;
  pg_call_void([&] {
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "pg_ves: composite expected");
    desc = BlessTupleDesc(desc);
  });
  Datum values[4] = {Int64GetDatum(t.sent), Int64GetDatum(t.synced), Int64GetDatum(t.failed),
                     Int64GetDatum(t.dead)};
  bool nulls[4] = {false, false, false, false};
  return pg_call([&] { return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)); });
}
