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
// What to send when, and what an answer means for a row and its destination,
// is decided by core::Scheduler (src/core/delivery/scheduler.hpp); this file
// does what is PostgreSQL's (statements in outbox_sql.hpp) and the transfers.
// build_request and classify are where a destination kind shapes a request
// and reads its answer.
//
// A crash anywhere loses nothing: a lease names its holder's lease identity
// (signals::lease_owner), and rows whose holder is no longer alive are claimed
// again at once (a live holder's only when the lease expires); a request may
// then be sent twice, always with the same idempotency key (the event id).
#include "pg/sync/deliverer.hpp"

#include "core/base/error.hpp"
#include "core/delivery/delivery_outcome.hpp"
#include "core/delivery/http_request.hpp"
#include "core/delivery/scheduler.hpp"
#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/platforms/adapter.hpp"
#include "core/platforms/destination_config.hpp"
#include "core/platforms/ves_postgres.hpp"
#include "core/ves/envelope.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/settings.hpp"
#include "pg/store/keys.hpp"
#include "pg/store/stored_event.hpp"
#include "pg/sync/clock.hpp"
#include "pg/sync/http_engine.hpp"
#include "pg/sync/metrics.hpp"
#include "pg/sync/outbox_sql.hpp"
#include "pg/sync/platform_credentials.hpp"
#include "pg/sync/remote_pg.hpp"
#include "pg/sync/signals.hpp"

extern "C" {
#include "funcapi.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
}

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pgves::pg {
namespace {

namespace core = pgves::core;

// A credential as the loading query reads it: hex of the sealed box.
std::string unseal_hex(const char *hex) {
  std::vector<uint8> box(std::strlen(hex) / 2);
  size_t len = 0;
  if (sodium_hex2bin(box.data(), box.size(), hex, std::strlen(hex), nullptr, &len, nullptr) != 0)
    throw core::Error("invalid_destination", "a sealed destination credential is not hex");
  return keys::open_secret(box.data(), len);
}

struct Job {
  std::int64_t id = 0;
  std::int64_t position = 0;
  pg_uuid_t tenant{};
  int destination = 0;
  int attempts = 0;  // before this one
  std::string event_id;
  std::string body;
  std::string entity_type, entity_id;
  std::int64_t entity_version = 0;  // the event's version in its entity's stream
  bool base_check = true;           // ves.outbox.base_check
  // Platform destinations: the listings of the row's SKU with its count
  // when the row was claimed, and those whose count this attempt sends.
  std::vector<outbox_sql::ListingFact> listings;
  std::vector<size_t> sent;
  TimestampTz recorded_at = 0;  // for the delivery metrics (metrics.hpp)
  core::metrics::EventClass event_class = core::metrics::EventClass::other;
};

struct Destination {
  int id = 0;
  std::string name, kind, url, secret;
  const core::Adapter *adapter = nullptr;  // core::find_adapter(kind)
  long timeout_ms = 10000;
  std::vector<std::pair<std::string, std::string>> headers;
  core::json::Value kind_options;  // ves.destinations.kind_options
  // Commerce platforms (core::Adapter::is_platform): sent listings' counts,
  // with credentials opened and an access token renewed when refused.
  bool platform = false;
  platform::Credentials credentials;
  bool token_refused = false;
  // A new access token is being obtained, on the engine beside the
  // deliveries: the destination sends nothing until it comes.
  bool token_in_flight = false;
  // After a failed token request, rows fail at once until then (steady ms).
  std::int64_t token_retry_at = 0;
  std::string token_error;
  // Why the destination is paused when gone is set by something other than
  // an HTTP 410 (credentials refused); last_error otherwise.
  std::string pause_reason;
  // Set when the worker cannot use this destination's stored configuration
  // (a row written around ves.create_destination/alter_destination): its
  // rows fail with this reason instead of stopping the worker.
  std::string config_error;
  // What to write back at the next record.
  bool dirty = false;
  bool succeeded = false;
  bool gone = false;
  std::string last_error;
  // What the last write back said (see record_destinations): a success
  // that changes nothing else is written at most once a second.
  std::string written_breaker;
  std::int64_t success_written_ms = 0;
  bool success_unwritten = false;

  Destination() = default;
  Destination(const Destination &) = delete;
  Destination &operator=(const Destination &) = delete;
  // The opened credentials do not outlive the destination in freed memory.
  ~Destination() {
    sodium_memzero(secret.data(), secret.size());
    for (auto &h : headers) sodium_memzero(h.second.data(), h.second.size());
  }
};

using Outcome = outbox_sql::RowOutcome;

// How much of an answer a row keeps in ves.outbox.last_response (the
// adapter reads up to http_engine's limit).
constexpr size_t kStoredExcerptBytes = 512;

// A row whose compare-and-set the platform refused (stale) is sent again
// after this long, once the reconciliation has read the platform's count.
constexpr std::int64_t kStaleRetryMs = 2000;

// After a token request that failed without saying when to try again.
constexpr std::int64_t kTokenRetryMs = 5000;

}  // namespace

class Deliverer::Impl {
 public:
  using ClaimPlan = Deliverer::ClaimPlan;

  Impl(bool own_transactions, int only_destination)
      : own_transactions_(own_transactions),
        only_destination_(only_destination),
        random_(std::random_device{}()) {
    owner_ = signals::lease_owner();
  }

  void load_config() {
    step("pg_ves: loading destinations", [&] {
      core::json::Value v = core::json::parse(outbox_sql::sync_settings_json());
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
      // built afterwards.
      uint64 nrows = 0;
      char ***rows = outbox_sql::destination_rows(&nrows);
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
          parse_destination(d, r, scheduler_);
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
      // A destination dropped meanwhile goes once nothing of it is in flight;
      // its queued rows are dropped with it (their leases run out).
      for (auto it = destinations_.begin(); it != destinations_.end();) {
        if (seen.count(it->first) || scheduler_.in_flight(it->first) > 0) {
          ++it;
          continue;
        }
        for (std::int64_t row : scheduler_.drain(it->first)) queued_.erase(row);
        scheduler_.remove(it->first);
        remote_pg::forget(it->first);  // a ves_postgres destination's connection
        it = destinations_.erase(it);
      }
    });
  }

  // Builds a destination's settings from the text of its columns (see
  // load_config); throws on a value the worker cannot use.
  static void parse_destination(Destination &d, char **r, core::Scheduler &scheduler) {
    auto text = [](const char *v) { return std::string(v ? v : ""); };
    auto num = [](const char *v) { return v ? strtod(v, nullptr) : 0.0; };
    d.kind = text(r[2]);
    d.adapter = core::find_adapter(d.kind);
    if (!d.adapter)
      throw core::Error("invalid_destination", "unknown destination kind \"" + d.kind + "\"");
    d.url = text(r[3]);
    sodium_memzero(d.secret.data(), d.secret.size());
    d.secret.clear();
    core::SendLimits limits;
    limits.concurrency = static_cast<int>(num(r[5]));
    limits.rate_per_s = num(r[6]);
    limits.burst = num(r[7]);
    d.timeout_ms = static_cast<long>(num(r[8]));
    limits.retry.max_attempts = static_cast<int>(num(r[9]));
    limits.retry.base_ms = static_cast<std::int64_t>(num(r[10]));
    limits.retry.cap_ms = static_cast<std::int64_t>(num(r[11]));
    limits.retry.jitter = num(r[12]);
    limits.breaker_threshold = static_cast<int>(num(r[13]));
    limits.breaker_cooldown_ms = static_cast<std::int64_t>(num(r[14]));
    limits.paused = text(r[16]) == "t";
    limits.rows_per_request = static_cast<int>(d.adapter->max_rows_per_request());
    scheduler.configure(d.id, limits);
    for (auto &h : d.headers) sodium_memzero(h.second.data(), h.second.size());
    d.headers.clear();
    // The same parser that checked the headers when they were written;
    // secret ones are shown redacted there and come from the sealed box.
    for (const core::HeaderSpec &h : core::parse_header_option(core::json::parse(text(r[15]))))
      if (!h.secret) d.headers.emplace_back(h.name, h.value);
    d.kind_options =
        core::json::parse(r[outbox_sql::kKindOptions] ? r[outbox_sql::kKindOptions] : "{}");
    d.platform = d.adapter->is_platform();
    d.credentials =
        platform::open_hex(text(r[outbox_sql::kCredentialsHex]), text(r[outbox_sql::kTokenHex]));
    d.token_refused = false;
    d.token_retry_at = 0;
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
  ClaimPlan plan_claim(std::int64_t max_rows) {
    core::Scheduler::ClaimPlan p = scheduler_.plan_claim(settings_.window, settings_.claim_batch,
                                                         max_rows, only_destination_, steady_ms());
    ClaimPlan plan;
    plan.quotas = std::move(p.quotas);
    plan.worthwhile = p.worthwhile;
    return plan;
  }

  // Claims each destination's quota and queues the rows on it.
  int claim(const ClaimPlan &plan) {
    if (plan.quotas.empty()) return 0;
    int claimed = 0;
    std::int64_t floor = scan_floor();
    std::vector<std::int64_t> live = signals::live_lease_owners();
    step("pg_ves: claiming outbox rows", [&] {
      std::vector<std::int64_t> positions;
      std::vector<Job> jobs;
      TimestampTz first_recorded = DT_NOEND, last_recorded = DT_NOBEGIN;
      for (const auto &quota : plan.quotas) {
        // A platform destination's claim brings each inventory row's
        // listings and counts along: one result row per listing.
        auto dest = destinations_.find(quota.first);
        const bool platform = dest != destinations_.end() && dest->second.platform;
        uint64 got = outbox_sql::claim(quota.first, quota.second, settings_.lease_seconds, floor,
                                       owner_, live, platform);
        std::unordered_map<std::int64_t, size_t> job_of;  // outbox row -> its index in jobs
        int rows = 0;
        for (uint64 i = 0; i < got; ++i) {
          outbox_sql::ListingFact fact;
          const bool listed = platform && outbox_sql::claimed_listing(i, &fact);
          if (platform) {
            auto seen = job_of.find(fact.row);
            if (seen != job_of.end()) {  // another listing of a row already taken
              if (listed) jobs[seen->second].listings.push_back(std::move(fact));
              continue;
            }
            job_of.emplace(fact.row, jobs.size());
          }
          outbox_sql::ClaimedRow row = outbox_sql::claimed_row(i);
          jobs.emplace_back();
          ++rows;
          Job &job = jobs.back();
          if (listed) job.listings.push_back(std::move(fact));
          job.id = row.id;
          job.tenant = row.tenant;
          job.destination = row.destination;
          job.attempts = row.attempts;
          job.position = row.position;
          job.entity_type = std::move(row.entity_type);
          job.entity_id = std::move(row.entity_id);
          job.base_check = row.base_check;
          job.recorded_at = row.recorded_at;
          job.event_class = core::metrics::event_class(job.entity_type);
          positions.push_back(job.position);
          first_recorded = std::min(first_recorded, row.recorded_at);
          last_recorded = std::max(last_recorded, row.recorded_at);
        }
        // Fewer rows than asked: nothing more waits for it until something
        // changes (a commit, a finished row, a retry falling due, a poll).
        scheduler_.claimed(quota.first, quota.second, rows);
      }
      if (jobs.empty()) return;
      // Platform kinds send counts, not events: their rows need the event's
      // id (the idempotency key), not its envelope.
      std::unordered_set<std::int64_t> exported;
      for (const Job &job : jobs) {
        auto d = destinations_.find(job.destination);
        if (d == destinations_.end() || !d->second.platform) exported.insert(job.position);
      }
      std::unordered_map<std::int64_t, std::string> bodies =
          envelopes(positions, exported, first_recorded, last_recorded);
      std::vector<std::int64_t> unclaimed;
      for (size_t i = 0; i < jobs.size(); ++i) {
        Job &job = jobs[i];
        if (held_.count(job.id)) {
          if (queued_.count(job.id) || flying_.count(job.id)) continue;  // our lease, renewed
          // Held, yet neither queued nor in flight: a row this process lost
          // track of. It is queued again rather than held forever.
          log_problem(destinations_[job.destination], job.id,
                      "held but neither queued nor in flight; queued again");
          forget(job);
        }
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
          unclaimed.push_back(job.id);
          continue;
        }
        job.event_id = body->second.substr(0, 36);
        job.body = body->second.substr(36);
        job.entity_version = versions_[positions[i]];
        held_[job.id] = true;
        held_positions_.insert(job.position);
        next_floor_ = std::max(next_floor_, job.position + 1);
        scheduler_.enqueue(job.destination, job.id);
        queued_[job.id] = std::move(job);
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
  void expect_work() { scheduler_.expect_work(); }

  // Starts transfers while destinations have room (core::Scheduler::next).
  // A kind that sends many rows per request gets the destination's queued
  // rows behind the first one in the same request.
  void dispatch(HttpEngine &engine) {
    std::int64_t now = steady_ms();
    while (std::optional<core::Scheduler::Next> next = scheduler_.next(now)) {
      Destination &d = destinations_[next->destination];
      std::vector<Job> batch;
      batch.push_back(take_queued(next->row));
      if (d.adapter && d.config_error.empty() && d.adapter->max_rows_per_request() > 1)
        for (std::int64_t row : scheduler_.take_more(d.id, d.adapter->max_rows_per_request() - 1))
          batch.push_back(take_queued(row));
      if (!d.config_error.empty()) {
        for (Job &job : batch) {
          forget(job);
          fail_job(job, d, d.config_error);
        }
        continue;
      }
      if (d.platform) {
        std::vector<Job> to_send, waiting;
        for (Job &job : batch) switch (prepare_platform(d, job, engine)) {
            case Prepared::send:
              to_send.push_back(std::move(job));
              break;
            case Prepared::wait:
              waiting.push_back(std::move(job));
              break;
            case Prepared::done:
              break;
          }
        // Rows waiting for the destination's new token go back to the head
        // of its queue, in order.
        for (auto it = waiting.rbegin(); it != waiting.rend(); ++it) {
          const std::int64_t id = it->id;
          queued_[id] = std::move(*it);
          scheduler_.requeue_front(d.id, id);
        }
        batch = std::move(to_send);
        if (batch.empty()) continue;
      }
      std::vector<core::PlatformRequest> requests;
      try {
        requests = build_requests(d, batch);
      } catch (const core::Error &e) {
        // A destination whose URL, secret or headers cannot make a request:
        // nothing is sent, the rows are dead-lettered with the reason.
        d.dirty = true;
        d.last_error = std::string("invalid destination configuration: ") + e.what();
        for (Job &job : batch) {
          forget(job);
          outcomes_.push_back(
              Outcome{job.id, job.tenant, "dead", 0, job.attempts, 0, d.last_error, {}});
          ++totals_.dead;
        }
        continue;
      } catch (const std::exception &e) {
        for (Job &job : batch) {
          forget(job);
          fail_job(job, d, std::string("cannot build the request: ") + e.what());
        }
        continue;
      }
      for (core::PlatformRequest &request : requests) {
        std::vector<Job> jobs;
        for (size_t i : request.rows) jobs.push_back(std::move(batch.at(i)));
        std::uint64_t tag = next_tag_++;
        try {
          // ves.max_timeout_ms bounds every transfer, even one configured
          // before the setting was lowered.
          if (d.adapter->over_libpq())
            call_remote(engine, d, tag, request.http.body);
          else
            engine.submit(tag, request.http,
                          std::min<long>(d.timeout_ms, settings::max_timeout_ms));
        } catch (const std::exception &e) {
          for (Job &job : jobs) {
            forget(job);
            fail_job(job, d, std::string("cannot start the transfer: ") + e.what());
          }
          continue;
        }
        scheduler_.started(d.id);
        totals_.sent += static_cast<std::int64_t>(jobs.size());
        rows_in_flight_ += static_cast<int>(jobs.size());
        for (const Job &job : jobs) flying_.insert(job.id);
        in_flight_[tag] = std::move(jobs);
      }
    }
  }

  // What prepare_platform found a row to be.
  enum class Prepared {
    send,  // to send now
    done,  // needs no request (its outcome is recorded) or failed
    wait,  // waits for the destination's new access token
  };

  // A platform destination's row before it is sent: what it would change,
  // and an access token to send it with. A row that needs no request (not an
  // inventory event, no listing, every listing already has the count) or
  // cannot be sent (the token endpoint failed) has its outcome recorded here.
  // When the held token will not do, a new one is requested on the engine
  // and the destination's rows wait for it.
  Prepared prepare_platform(Destination &d, Job &job, HttpEngine &engine) {
    job.sent.clear();
    for (size_t i = 0; i < job.listings.size(); ++i) {
      const outbox_sql::ListingFact &f = job.listings[i];
      if (!f.known || *f.known != f.available) job.sent.push_back(i);
    }
    if (job.sent.empty()) {
      // Pending changes of one SKU collapse: an earlier row sent the count.
      forget(job);
      const char *why = job.entity_type != "inventory" ? "not an inventory event: nothing to send"
                        : job.listings.empty()         ? "no listing of this SKU: nothing to send"
                                               : "the platform has this count: nothing to send";
      outcomes_.push_back(Outcome{job.id, job.tenant, "synced", 0, job.attempts, 0, {}, why});
      ++totals_.synced;
      scheduler_.expect_work();  // the SKU's next row may go now
      return Prepared::done;
    }
    if (d.token_in_flight) return Prepared::wait;
    if (steady_ms() < d.token_retry_at) {
      // The token endpoint failed a moment ago: not again for every row.
      forget(job);
      fail_job(job, d, d.token_error);
      return Prepared::done;
    }
    std::optional<core::HttpRequest> renewal =
        platform::renewal_request(*d.adapter, endpoint(d), d.credentials, d.token_refused);
    if (!renewal) {
      d.token_refused = false;
      return Prepared::send;
    }
    const std::uint64_t tag = next_tag_++;
    try {
      engine.submit(tag, *renewal, std::min<long>(d.timeout_ms, settings::max_timeout_ms));
    } catch (const std::exception &e) {
      forget(job);
      fail_job(job, d, std::string("cannot start the token request: ") + e.what());
      return Prepared::done;
    }
    for (auto &h : renewal->headers) sodium_memzero(h.second.data(), h.second.size());
    sodium_memzero(renewal->body.data(), renewal->body.size());
    token_requests_[tag] = d.id;
    d.token_in_flight = true;
    scheduler_.hold(d.id, true);
    return Prepared::wait;
  }

  // The token endpoint's answer for destination d: the token is held (and
  // sealed at the next record), or the destination's rows fail with the
  // reason for a while; refused credentials pause it.
  void take_token(Destination &d, const HttpResult &answer) {
    d.token_in_flight = false;
    scheduler_.hold(d.id, false);
    scheduler_.expect_work();
    core::RowVerdict token = platform::take_renewal(*d.adapter, d.credentials, answer);
    if (token.verdict == core::Verdict::success) {
      d.token_refused = false;
      return;
    }
    d.token_error = token.reason;
    d.token_retry_at =
        steady_ms() + (token.retry_after_ms > 0 ? token.retry_after_ms : kTokenRetryMs);
    if (token.verdict == core::Verdict::permanent) {
      // The platform refused the credentials themselves: nothing this
      // destination sends can succeed until an operator replaces them.
      d.gone = true;
      d.pause_reason = token.reason +
                       "; destination paused: update its credentials with "
                       "ves.alter_destination, then ves.resume_destination";
    }
  }

  static core::Endpoint endpoint(const Destination &d) {
    return core::Endpoint{d.url,
                          d.secret,
                          d.headers,
                          &d.kind_options,
                          &d.credentials.values,
                          d.credentials.token.access_token};
  }

  // A job as the adapter sees it: the row and, for a platform destination,
  // the facts of the listings this attempt sends. Filled in place (the row
  // points into it).
  struct RowView {
    std::vector<core::json::Value> refs;
    std::vector<core::ListingFacts> facts;
    core::OutboxRow row;

    RowView(const Destination &d, const Job &job)
        : row{job.id, job.event_id, job.body, job.attempts + 1} {
      row.entity_version = job.entity_version;
      row.base_check = job.base_check;
      if (!d.platform) return;
      refs.reserve(job.sent.size());
      for (size_t i : job.sent) refs.push_back(core::json::parse(job.listings[i].platform_ref));
      for (size_t k = 0; k < job.sent.size(); ++k) {
        const outbox_sql::ListingFact &f = job.listings[job.sent[k]];
        facts.push_back(
            core::ListingFacts{job.entity_id, f.location, &refs[k], f.available, f.known});
      }
      row.listings = &facts;
    }
    RowView(const RowView &) = delete;
    RowView &operator=(const RowView &) = delete;
  };

  // The requests that deliver jobs' events to a destination, built by the
  // adapter of its kind; every job is in exactly one. Throws core::Error
  // when the destination's configuration cannot make them.
  static std::vector<core::PlatformRequest> build_requests(const Destination &d,
                                                           const std::vector<Job> &jobs) {
    if (!d.adapter) throw core::Error("invalid_destination", "unknown destination kind");
    std::deque<RowView> views;
    std::vector<core::OutboxRow> rows;
    for (const Job &job : jobs) {
      views.emplace_back(d, job);
      rows.push_back(views.back().row);
    }
    std::vector<core::PlatformRequest> requests =
        d.adapter->build_requests(endpoint(d), rows, unix_ms());
    std::vector<int> covered(jobs.size(), 0);
    for (const core::PlatformRequest &r : requests)
      for (size_t i : r.rows) covered.at(i) += 1;
    for (int c : covered)
      if (c != 1) throw core::Error("invalid_request", "the adapter did not cover every row once");
    return requests;
  }

  // What a finished transfer's answer means for each of its rows, as the
  // adapter of the destination's kind reads it. (A destination whose kind
  // has no adapter sends nothing; absorb() fails the rows.)
  static std::vector<core::RowVerdict> classify(const Destination &d, const std::vector<Job> &jobs,
                                                const HttpResult &r) {
    if (!d.adapter) throw core::Error("invalid_destination", "unknown destination kind");
    const core::Answer answer{r.transport_error, r.status, r.retry_after, r.excerpt, r.rate_limit};
    std::deque<RowView> views;
    std::vector<core::OutboxRow> rows;
    for (const Job &job : jobs) {
      views.emplace_back(d, job);
      rows.push_back(views.back().row);
    }
    std::vector<core::RowVerdict> verdicts =
        d.adapter->classify_rows(endpoint(d), answer, rows, unix_ms());
    if (verdicts.size() != jobs.size())
      throw core::Error("invalid_answer", "the adapter did not judge every row");
    return verdicts;
  }

  // What a platform's verdict means for the listings a row sent: the count
  // is theirs now (success), they moved on behind our back (stale: the
  // reconciliation reads them again and the row retries shortly with the
  // decided count), their credentials need renewal, or they refused it.
  void platform_verdict(Destination &d, const Job &job, core::RowVerdict &verdict) {
    const char *state = nullptr;
    switch (verdict.verdict) {
      case core::Verdict::success:
        state = "synced";
        break;
      case core::Verdict::stale:
        state = "stale";
        verdict.verdict = core::Verdict::retry;
        verdict.retry_after_ms = kStaleRetryMs;
        break;
      case core::Verdict::permanent:
        state = "failed";
        break;
      case core::Verdict::reauthenticate:
        if (d.adapter->token_request(endpoint(d))) {
          d.token_refused = true;  // renewed before the next request
        } else {
          d.gone = true;  // a long-lived token was revoked: only an operator can help
          d.pause_reason = "the platform refused the access token (" +
                           (verdict.reason.empty() ? std::string("HTTP 401") : verdict.reason) +
                           "); destination paused: update it with ves.alter_destination, then "
                           "ves.resume_destination";
        }
        return;
      default:
        return;
    }
    for (size_t i : job.sent) {
      const outbox_sql::ListingFact &f = job.listings[i];
      listing_outcomes_.push_back(outbox_sql::ListingOutcome{
          d.id, job.entity_id, f.location, f.available, state,
          std::string(state) == "synced" ? std::string() : verdict.reason, f.known});
    }
    if (verdict.verdict == core::Verdict::success && !verdict.follow_up.empty())
      accepted_into_batch(d, job, verdict.follow_up);
  }

  // The row's sent listings joined a batch the platform processes later:
  // its lines are added, in the order they were sent, to the batch kept for
  // ves.follow_up_batches. Rows of one request are absorbed in order.
  void accepted_into_batch(const Destination &d, const Job &job, const std::string &handle) {
    auto it =
        std::find_if(batches_.begin(), batches_.end(), [&](const outbox_sql::AcceptedBatch &b) {
          return b.destination == d.id && b.handle == handle;
        });
    if (it == batches_.end()) {
      batches_.push_back(outbox_sql::AcceptedBatch{d.id, job.tenant, handle, {}});
      it = std::prev(batches_.end());
    }
    core::json::Value::Array lines =
        it->items.empty() ? core::json::Value::Array{} : core::json::parse(it->items).as_array();
    for (size_t i : job.sent) {
      const outbox_sql::ListingFact &f = job.listings[i];
      const core::json::Value ref = core::json::parse(f.platform_ref);
      lines.push_back(core::json::Value(core::json::Value::Object{
          {"sku", core::json::Value(job.entity_id)},
          {"location", core::json::Value(f.location)},
          {"key", core::json::Value(d.adapter->listing_key(ref, d.kind_options))}}));
    }
    it->items = core::jcs::canonicalize(core::json::Value(std::move(lines)));
  }

  Job take_queued(std::int64_t row) {
    auto it = queued_.find(row);
    Job job = std::move(it->second);
    queued_.erase(it);
    return job;
  }

  // A ves_postgres destination's request: ves.sequence_events on the
  // remote over libpq, on the engine beside the HTTP transfers (bounded by
  // the destination's timeout); its answer comes with theirs.
  void call_remote(HttpEngine &engine, const Destination &d, std::uint64_t tag,
                   const std::string &body) {
    const core::json::Value *c = d.credentials.values.find("conninfo");
    if (!c || c->kind() != core::json::Kind::string || c->as_string().empty()) {
      HttpResult r;
      r.tag = tag;
      r.status = core::ves_postgres_refused;
      r.excerpt = "the destination has no conninfo option";
      engine.complete(std::move(r));
      return;
    }
    remote_pg::start(
        engine, tag,
        remote_pg::Target{d.id, c->as_string(),
                          std::min<long>(d.timeout_ms, settings::max_timeout_ms)},
        "SELECT ves.sequence_events(($1::jsonb OPERATOR(pg_catalog.->>) 'agentId')::uuid, "
        "$1::jsonb)",
        {body});
  }

  // Turns finished transfers into outcomes and destination health.
  void absorb(std::vector<HttpResult> results) {
    for (HttpResult &r : results) {
      if (auto t = token_requests_.find(r.tag); t != token_requests_.end()) {
        const int id = t->second;
        token_requests_.erase(t);
        if (auto d = destinations_.find(id); d != destinations_.end()) take_token(d->second, r);
        continue;
      }
      auto it = in_flight_.find(r.tag);
      if (it == in_flight_.end()) continue;
      std::vector<Job> jobs = std::move(it->second);
      in_flight_.erase(it);
      rows_in_flight_ -= static_cast<int>(jobs.size());
      for (const Job &job : jobs) {
        flying_.erase(job.id);
        forget(job);
      }
      Destination &d = destinations_[jobs.at(0).destination];
      scheduler_.finished(d.id);
      d.dirty = true;
      std::vector<core::RowVerdict> verdicts;
      try {
        verdicts = classify(d, jobs, r);
      } catch (const std::exception &e) {
        for (const Job &job : jobs)
          fail_job(job, d, std::string("cannot process the answer: ") + e.what());
        continue;
      }
      for (size_t i = 0; i < jobs.size(); ++i)
        absorb_one(r, jobs[i], d, std::move(verdicts[i]), i == 0, static_cast<int>(jobs.size()));
    }
  }

  // One row's outcome; `first`: the first row of its request (of
  // request_items rows), whose answer counts for the destination's health
  // and the request metrics.
  void absorb_one(const HttpResult &r, const Job &job, Destination &d, core::RowVerdict verdict,
                  bool first, int request_items) {
    if (d.platform) platform_verdict(d, job, verdict);
    core::Classified c = core::to_classified(verdict);
    core::RowDecision decision =
        first
            ? scheduler_.on_answer(d.id, c, r.status, job.attempts, steady_ms(), uniform_(random_))
            : scheduler_.on_shared_answer(d.id, c, job.attempts, steady_ms(), uniform_(random_));
    metrics::row_finished(d.id, job.event_class, job.recorded_at, job.attempts, &r, decision,
                          first ? request_items : 0);
    // The whole answer was read for the adapter; the row keeps its start.
    Outcome o{job.id,
              job.tenant,
              core::to_string(decision.status),
              decision.delay_ms,
              decision.attempts,
              r.status,
              {},
              r.excerpt.substr(0, kStoredExcerptBytes)};
    std::string what = r.transport_error ? r.error : "HTTP " + std::to_string(r.status);
    // An adapter's own reason (a sequencer's rejection, a receipt that does
    // not verify) says more than the status.
    if (verdict.verdict == core::Verdict::permanent && !verdict.reason.empty())
      what = verdict.reason;
    if (decision.status == core::RowDecision::Status::synced && !verdict.receipt.empty()) {
      o.receipt = std::move(verdict.receipt);
      o.receipt_signature_verified = verdict.receipt_signature_verified;
      o.event_id = job.event_id;
      o.destination = job.destination;
    }
    if (verdict.verdict == core::Verdict::conflict) {
      // Held for a person: ves._outbox_conflicts opens the conflict as the
      // row is recorded, and the entity's later rows wait behind it.
      o.status = "conflict";
      o.error = verdict.reason;
      d.succeeded = true;
      ++totals_.failed;
      outcomes_.push_back(std::move(o));
      return;
    }
    switch (decision.why) {
      case core::RowDecision::Why::none:
        if (decision.status == core::RowDecision::Status::synced) {
          d.succeeded = true;
          ++totals_.synced;
        } else {
          d.last_error = what;
          o.error = what;
          ++totals_.failed;
        }
        break;
      case core::RowDecision::Why::exhausted:
        d.last_error = what;
        o.error = what + " after " + std::to_string(o.attempts) + " attempts";
        ++totals_.dead;
        break;
      case core::RowDecision::Why::permanent:
        d.last_error = what;
        o.error = what + " (permanent)";
        ++totals_.dead;
        break;
      case core::RowDecision::Why::gone:
        d.last_error = what + ": the endpoint is gone; destination paused";
        d.gone = true;
        o.error = what;
        ++totals_.dead;
        break;
    }
    outcomes_.push_back(std::move(o));
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
    core::RowDecision decision =
        scheduler_.on_local_failure(d.id, job.attempts, steady_ms(), uniform_(random_));
    metrics::row_finished(d.id, job.event_class, job.recorded_at, job.attempts, nullptr, decision);
    Outcome o{job.id,
              job.tenant,
              core::to_string(decision.status),
              decision.delay_ms,
              decision.attempts,
              0,
              error,
              {}};
    if (decision.status == core::RowDecision::Status::dead) {
      o.error = error + " after " + std::to_string(o.attempts) + " attempts";
      ++totals_.dead;
    } else {
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

  Recorded record() {
    bool any_dirty = false;
    const std::int64_t now = steady_ms();
    for (auto &entry : destinations_)
      any_dirty |= entry.second.dirty || success_due(entry.second, now);
    bool tokens = false;
    for (auto &entry : destinations_) tokens |= entry.second.credentials.token_changed;
    if (outcomes_.empty() && !any_dirty && !tokens) return {};
    try {
      // One transaction for the rows and the destinations.
      step("pg_ves: recording deliveries", [&] {
        if (!outcomes_.empty() || !listing_outcomes_.empty())
          outbox_sql::record_rows(outcomes_.data(), outcomes_.size(), owner_, &listing_outcomes_);
        outbox_sql::record_batches(batches_);
        if (any_dirty) record_destinations();
        if (tokens) record_tokens();
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
    unrecorded_since_ = 0;
    listing_outcomes_.clear();
    batches_.clear();
    std::vector<std::int64_t> released;
    for (auto &entry : destinations_) {
      Destination &d = entry.second;
      if (d.gone) {
        // The destination is paused now: its queued rows go back unsent, to
        // be claimed again when it is resumed.
        for (std::int64_t row : scheduler_.drain(d.id)) {
          forget(take_queued(row));
          released.push_back(row);
        }
        full_scan_ = true;
      }
      d.dirty = d.succeeded = d.gone = false;
      d.last_error.clear();
      d.pause_reason.clear();
    }
    if (!released.empty()) release(released);
    return Recorded{true, synced, failed};
  }

  void record_rows(const Outcome *outcomes, size_t n) {
    outbox_sql::record_rows(outcomes, n, owner_);
  }

  // Access tokens renewed since the last record, sealed.
  void record_tokens() {
    for (auto &entry : destinations_) platform::store_token(entry.first, entry.second.credentials);
  }

  // Every record writes the health of the destinations it touched
  // (ves.destinations: breaker state, last success, last error). An update
  // of that row checks all its constraints, so a success that changes
  // nothing else is written at most once every kSuccessWriteMs: its
  // last_success_at may lag by that much (record_wait_ms() brings the
  // worker back to write it).
  static constexpr std::int64_t kSuccessWriteMs = 1000;

  static bool success_due(const Destination &d, std::int64_t now) {
    return d.success_unwritten && now - d.success_written_ms >= kSuccessWriteMs;
  }

  // Makes every held-back success due now (record_final).
  void release_success_throttle() {
    for (auto &entry : destinations_)
      if (entry.second.success_unwritten)
        entry.second.success_written_ms = steady_ms() - kSuccessWriteMs;
  }

  void record_destinations() {
    std::int64_t now = steady_ms();
    for (auto &entry : destinations_) {
      Destination &d = entry.second;
      if (!d.dirty && !success_due(d, now)) continue;
      const std::string breaker = core::to_string(scheduler_.breaker_state(d.id, now));
      const bool succeeded = d.succeeded || d.success_unwritten;
      if (d.last_error.empty() && !d.gone && breaker == d.written_breaker &&
          now - d.success_written_ms < kSuccessWriteMs) {
        d.success_unwritten = succeeded;
        continue;
      }
      outbox_sql::record_destination(
          d.id, breaker.c_str(), succeeded,
          d.gone && !d.pause_reason.empty() ? d.pause_reason : d.last_error, d.gone);
      d.written_breaker = breaker;
      d.success_unwritten = false;
      if (succeeded) d.success_written_ms = now;
    }
  }

  // Logs a database error the worker survives, with all it carries.
  static void log_pg_error(const char *context, const PgError &e) {
    log_error_data(context, e.data());
  }

  // Rolls back a step's transaction after an error inside it.
  void abort_step() {
    if (own_transactions_) outbox_sql::abort_step();
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
  void release(const std::vector<std::int64_t> &ids) {
    step("pg_ves: releasing rows", [&] { release_in_step(ids); });
  }

  void release_in_step(const std::vector<std::int64_t> &ids) {
    outbox_sql::release_rows(ids, owner_);
  }

  // Rows this process claimed before its state was dropped (after an error)
  // go back to the queue at once instead of waiting out their lease.
  void release_own_leases() {
    step("pg_ves: releasing leases", [&] { outbox_sql::release_leases_of(owner_); });
  }

  int queued() const { return scheduler_.queued(); }

  long idle_timeout_ms(long poll_ms) { return scheduler_.idle_timeout_ms(poll_ms, steady_ms()); }

  // Whether claiming may find something for a destination that may send: a
  // row of it finished (the entity's next one may go), its last claim came
  // back full, or a scheduled retry is due (then every destination may have
  // work again; the retry is below the scan floor).
  bool more_work() {
    std::int64_t now = steady_ms();
    if (scheduler_.take_retry_due(now)) {
      full_scan_ = true;
      scheduler_.expect_work();
    }
    return scheduler_.more_work(only_destination_, now);
  }

  // The next claim reads the outbox from its first open row.
  void request_full_scan() { full_scan_ = true; }

  const SyncSettings &settings() const { return settings_; }
  const DeliveryTotals &totals() const { return totals_; }
  std::int64_t claimed_total() const { return claimed_total_; }
  int in_flight() const { return rows_in_flight_; }

  long record_wait_ms(int delay_ms) {
    bool pending = !outcomes_.empty();
    std::int64_t success_in = -1;  // until a success not yet written is due
    const std::int64_t now = steady_ms();
    for (auto &entry : destinations_) {
      const Destination &d = entry.second;
      pending |= d.dirty || d.credentials.token_changed;
      if (d.success_unwritten) {
        std::int64_t in = std::max<std::int64_t>(0, d.success_written_ms + kSuccessWriteMs - now);
        success_in = success_in < 0 ? in : std::min(success_in, in);
      }
    }
    if (!pending) {
      unrecorded_since_ = 0;
      return static_cast<long>(success_in);
    }
    if (!unrecorded_since_) unrecorded_since_ = now;
    if (rows_in_flight_ == 0 ||
        outcomes_.size() >= static_cast<size_t>(std::max(1, settings_.window / 2)))
      return 0;
    return static_cast<long>(std::max<std::int64_t>(0, unrecorded_since_ + delay_ms - now));
  }

 private:
  template <typename F>
  void step(const char *activity, F &&f) {
    if (!own_transactions_) {
      f();
      return;
    }
    outbox_sql::begin_step(activity);
    f();
    outbox_sql::commit_step();
  }

  // The events at `positions`, by position: the event's id (36 bytes: the
  // webhook-id and idempotency key) followed by its VES envelope for those
  // in `exported`, the id alone for the others. The time bounds prune the
  // read to the partitions holding these events.
  std::unordered_map<std::int64_t, std::string> envelopes(
      const std::vector<std::int64_t> &positions, const std::unordered_set<std::int64_t> &exported,
      TimestampTz first_recorded, TimestampTz last_recorded) {
    std::unordered_map<std::int64_t, std::string> out;
    envelope_errors_.clear();
    versions_.clear();
    if (exported.empty()) {
      // Platform rows only: no payload to read.
      for (outbox_sql::EventRef &r :
           outbox_sql::event_refs(positions, first_recorded, last_recorded)) {
        versions_[r.position] = r.entity_version;
        out[r.position] = std::move(r.event_id);
      }
      return out;
    }
    uint64 count = 0;
    const SPITupleTable *table =
        outbox_sql::events(positions, first_recorded, last_recorded, &count);
    for (uint64 i = 0; i < count; ++i) {
      std::int64_t position = 0;
      try {
        StoredEvent e = read_stored_event(table, i);
        position = e.position;
        versions_[e.position] = e.entity_version;
        if (!exported.count(e.position)) {
          out[e.position] = core::ves::format_uuid(e.event.event_id);
          continue;
        }
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

  bool own_transactions_;
  int only_destination_;
  SyncSettings settings_;
  std::map<int, Destination> destinations_;
  core::Scheduler scheduler_;                     // what to send when, per destination
  std::unordered_map<std::int64_t, Job> queued_;  // claimed rows not yet sent, by id
  std::unordered_map<std::uint64_t, std::vector<Job>> in_flight_;  // by transfer tag
  std::unordered_map<std::uint64_t, int> token_requests_;          // destination, by transfer tag
  int rows_in_flight_ = 0;
  std::unordered_set<std::int64_t> flying_;  // ids of the rows in flight
  std::unordered_map<std::int64_t, bool> held_;
  std::multiset<std::int64_t> held_positions_;
  std::int64_t finished_floor_ = INT64_MAX;
  std::int64_t next_floor_ = 0;
  bool full_scan_ = true;
  std::vector<Outcome> outcomes_;
  // When record_wait_ms() first saw something to record (0: nothing).
  std::int64_t unrecorded_since_ = 0;
  // The entity versions of the events envelopes() read last, by position.
  std::unordered_map<std::int64_t, std::int64_t> versions_;
  std::vector<outbox_sql::ListingOutcome> listing_outcomes_;
  std::vector<outbox_sql::AcceptedBatch> batches_;
  std::unordered_map<std::int64_t, std::string>
      envelope_errors_;  // by position, from the last envelopes()
  std::uint64_t next_tag_ = 1;
  std::int64_t owner_ = 0;  // this process's lease identity
  DeliveryTotals totals_;
  std::int64_t claimed_total_ = 0;
  std::mt19937_64 random_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
};

Deliverer::Deliverer(bool own_transactions, int only_destination)
    : impl_(std::make_unique<Impl>(own_transactions, only_destination)) {}
Deliverer::~Deliverer() = default;
void Deliverer::load_config() { impl_->load_config(); }
Deliverer::ClaimPlan Deliverer::plan_claim(std::int64_t max_rows) {
  return impl_->plan_claim(max_rows);
}
int Deliverer::claim(const ClaimPlan &plan) { return impl_->claim(plan); }
void Deliverer::expect_work() { impl_->expect_work(); }
bool Deliverer::more_work() { return impl_->more_work(); }
void Deliverer::request_full_scan() { impl_->request_full_scan(); }
void Deliverer::dispatch(HttpEngine &engine) { impl_->dispatch(engine); }
void Deliverer::absorb(std::vector<HttpResult> results) { impl_->absorb(std::move(results)); }
Recorded Deliverer::record() { return impl_->record(); }
Recorded Deliverer::record_final() {
  impl_->release_success_throttle();
  return impl_->record();
}
void Deliverer::release_own_leases() { impl_->release_own_leases(); }
long Deliverer::idle_timeout_ms(long poll_ms) { return impl_->idle_timeout_ms(poll_ms); }
int Deliverer::queued() const { return impl_->queued(); }
int Deliverer::in_flight() const { return impl_->in_flight(); }
long Deliverer::record_wait_ms(int delay_ms) { return impl_->record_wait_ms(delay_ms); }
const SyncSettings &Deliverer::settings() const { return impl_->settings(); }
const DeliveryTotals &Deliverer::totals() const { return impl_->totals(); }
std::int64_t Deliverer::claimed_total() const { return impl_->claimed_total(); }

ErrorText error_text(const ErrorData *data) {
  ErrorText t;
  t.sqlerrcode = data->sqlerrcode;
  t.message = data->message ? data->message : "error";
  if (data->detail) t.detail = data->detail;
  if (data->hint) t.hint = data->hint;
  if (data->context) t.context = data->context;
  return t;
}

void log_error_text(const char *context, const ErrorText &e) {
  try {
    pg_call_void([&] {
      ereport(LOG, (errmsg("pg_ves worker: %s: %s (SQLSTATE %s)", context, e.message.c_str(),
                           unpack_sql_state(e.sqlerrcode)),
                    !e.detail.empty() ? errdetail("%s", e.detail.c_str()) : 0,
                    !e.hint.empty() ? errhint("%s", e.hint.c_str()) : 0,
                    !e.context.empty() ? errcontext("%s", e.context.c_str()) : 0));
    });
  } catch (const std::exception &) {
    // Logging is best effort.
  }
}

void log_error_data(const char *context, const ErrorData *data) {
  log_error_text(context, error_text(data));
}

}  // namespace pgves::pg

using namespace pgves::pg;

namespace {

// ves.push_events' result row.
Datum totals_datum(FunctionCallInfo fcinfo, const DeliveryTotals &t) {
  return pg_call([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "pg_ves: composite expected");
    desc = BlessTupleDesc(desc);
    Datum values[4] = {Int64GetDatum(t.sent), Int64GetDatum(t.synced), Int64GetDatum(t.failed),
                       Int64GetDatum(t.dead)};
    bool nulls[4] = {false, false, false, false};
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}

}  // namespace

// ves.push_events(destination, max_count): one delivery pass from the calling
// backend, inside its transaction (rows stay locked while their requests are
// in flight). For manual syncs and tests; the worker does this continuously.
PGVES_FUNCTION(ves_push_events) {
  int destination = 0;
  if (!PG_ARGISNULL(0)) {
    std::string name = safe::text_string(PG_GETARG_DATUM(0));
    destination = outbox_sql::destination_id(name);
    if (destination == 0)
      throw VesError(sqlstate::not_found, "destination \"" + name + "\" does not exist", {},
                     "List destinations with SELECT name FROM ves.destinations.");
  }
  std::int64_t max_count = PG_ARGISNULL(1) ? 1000 : PG_GETARG_INT32(1);
  if (max_count < 1 || max_count > 100000)
    throw VesError(sqlstate::invalid_argument, "max_count must be between 1 and 100000", {},
                   "Push in passes of at most 100000 rows.");
  safe::spi_connect();
  Deliverer d(false, destination);
  d.load_config();
  HttpEngine engine;
  for (;;) {
    safe::check_for_interrupts();
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
  safe::spi_finish();
  const DeliveryTotals &t = d.totals();
  return totals_datum(fcinfo, t);
}
