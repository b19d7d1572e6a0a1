// The sync worker's main loop: a Deliverer (deliverer.hpp) driven for as
// long as the worker runs. Each round reloads destinations when the
// destinations epoch moved, claims when a commit, a poll or a retry says
// there may be work, starts transfers, waits on the latch and curl's sockets,
// records what finished, relays NOTIFY ves_events for appenders (signals.hpp)
// and now and then runs housekeeping. An error in a round is logged and the
// round starts over after a pause; SIGTERM ends it gracefully.
#include "pg/base/boundary.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/sync/clock.hpp"
#include "pg/sync/deliverer.hpp"
#include "pg/sync/http_engine.hpp"
#include "pg/sync/launcher.hpp"
#include "pg/sync/metrics.hpp"
#include "pg/sync/own_transaction.hpp"
#include "pg/sync/pull.hpp"
#include "pg/sync/reconcile.hpp"
#include "pg/sync/signals.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
}

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

namespace pgves::pg {
bool extension_present() {
  bool present = false;
  pg_call_void([&] {
    StartTransactionCommand();
    present = OidIsValid(get_extension_oid("pg_ves", true));
    CommitTransactionCommand();
  });
  return present;
}

bool rolled_back_extension_gone() {
  try {
    pg_call_void([] { AbortCurrentTransaction(); });
  } catch (const PgError &e) {
    log_error_data("cannot roll back after an error", e.data());
  }
  try {
    return !extension_present();
  } catch (const PgError &e) {
    log_error_data("cannot look the extension up after an error", e.data());
  }
  return false;
}

namespace {

// --- the loop's PostgreSQL calls, each inside pg_call ---------------------------

void check_interrupts() {
  pg_call_void([] {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
  });
}

void report_activity(BackendState state, const char *activity) {
  pg_call_void([&] { pgstat_report_activity(state, activity); });
}

// One LOG line, best effort.
void log_line(const std::string &message) {
  try {
    pg_call_void([&] { ereport(LOG, (errmsg("%s", message.c_str()))); });
  } catch (const std::exception &) {
  }
}

void abort_transaction() {
  pg_call_void([] { AbortCurrentTransaction(); });
}

// Session settings for the worker's whole life.
void set_worker_options() {
  pg_call_void([] {
    // A lost commit of a claim or a result only means a row is sent again
    // with the same idempotency key, so the worker does not wait for WAL
    // flushes.
    SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
    // The worker runs the same few statements forever: plan them once.
    SetConfigOption("plan_cache_mode", "force_generic_plan", PGC_USERSET, PGC_S_SESSION);
    // Its statements are short: compiling one with LLVM (a generic plan's
    // estimate over an empty table's default statistics can pass
    // jit_above_cost) takes tens of milliseconds and is done again at
    // every execution, with every delivery waiting.
    SetConfigOption("jit", "off", PGC_USERSET, PGC_S_SESSION);
    // DDL (DROP EXTENSION, ALTER TABLE) wins over the worker: the worker gives
    // up a lock wait quickly, and in a deadlock it is the one that yields.
    SetConfigOption("lock_timeout", "2s", PGC_SUSET, PGC_S_SESSION);
    SetConfigOption("deadlock_timeout", "100ms", PGC_SUSET, PGC_S_SESSION);
  });
}

// NOTIFY ves_events in a transaction of its own.
void notify_ves_events() {
  pg_call_void([] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    Async_Notify("ves_events", nullptr);
    CommitTransactionCommand();
  });
}

// Housekeeping: each step is a transaction of its own (own_transaction.hpp),
// and a step that fails is logged and rolled back without keeping the steps
// after it from running: a partition lock that cannot be had never holds up
// the purge of closed rows.

// Partitions ahead, idempotency records and held order events expired.
// Partition DDL waits at most 100 ms for its locks: appends and keyed calls
// must not queue behind it; a busy round is retried 10 s later.
void maintain_partitions() {
  in_own_transaction("pg_ves: housekeeping", [] {
    static SavedPlan plan{
        "SELECT ves.ensure_partitions(pg_catalog.now(), '100ms'), "
        "ves.ensure_idempotency_partitions(), "
        "ves.expire_idempotency_records(), ves.expire_held_order_events()",
        0,
        {},
        nullptr};
    safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
  });
}

// Drops the month partitions past ves.retention_months, waiting at most
// 100 ms for each one's lock; returns whether the step failed or a partition
// was left because it was busy (the next round tries again).
bool drop_expired_partitions() {
  std::int64_t busy = 0;
  bool ok = in_own_transaction("pg_ves: retention", [&] {
    static SavedPlan plan{
        "SELECT pg_catalog.count(*) FROM ves.drop_expired_partitions(NULL, '100ms') r"
        " WHERE NOT r.dropped AND r.reason OPERATOR(pg_catalog.~~) 'busy%'",
        0,
        {},
        nullptr};
    safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
    busy = safe::spi_int64(0, 1, 0);
  });
  return !ok || busy > 0;
}

// Purges one batch of closed outbox rows; returns whether the batch was full
// (more may be waiting).
bool purge_closed_rows() {
  std::int64_t purged = 0, batch = 1;
  bool ok = in_own_transaction("pg_ves: purging closed outbox rows", [&] {
    static SavedPlan plan{
        "SELECT ves.purge_outbox(), (SELECT (settings OPERATOR(pg_catalog.->>) "
        "'purge_batch')::bigint FROM ves.sync_settings)",
        0,
        {},
        nullptr};
    safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
    purged = safe::spi_int64(0, 1, 0);
    batch = safe::spi_int64(0, 2, 1);
  });
  safe::check_for_interrupts();
  return ok && purged >= batch;
}

// pg_ves as the sequencer: commits the streams' new sequenced events in
// Merkle batches (ves._commit_sequencer_batches).
void commit_sequencer_batches() {
  in_own_transaction("pg_ves: sequencer commitments", [] {
    static SavedPlan plan{"SELECT ves._commit_sequencer_batches()", 0, {}, nullptr};
    safe::spi_run(plan, nullptr, nullptr, false, SPI_OK_SELECT);
  });
}

void report_stat_and_idle() {
  pg_call_void([] {
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

// --- the loop ------------------------------------------------------------------

// When retention runs next (steady clock, ms): at the first round, then once
// a day, or a minute later when a partition was busy or the round failed.
std::int64_t next_retention_ms = 0;

void housekeeping() {
  maintain_partitions();
  metrics::flush_history();
  metrics::evaluate_alerts();
  std::int64_t now = steady_ms();
  if (now >= next_retention_ms) {
    // Set first: a round that fails is not retried before a minute has passed.
    next_retention_ms = now + 60 * 1000;
    if (!drop_expired_partitions()) next_retention_ms = now + 24 * 3600 * 1000LL;
  }
  // Closed rows go in batches, each its own transaction, until a batch comes
  // back short: a backlog of any size is purged without long locks.
  for (int round = 0; round < 1000 && !ShutdownRequestPending; ++round)
    if (!purge_closed_rows()) break;
  commit_sequencer_batches();
  report_stat_and_idle();
}

// Records what finished and publishes the worker's share of
// ves.worker_status; returns whether anything was recorded. `final`: the
// worker is stopping, so held-back successes are written too.
bool record(Deliverer &deliverer, bool final = false) {
  Recorded r = final ? deliverer.record_final() : deliverer.record();
  if (r.any)
    launcher::report(deliverer.in_flight(), static_cast<uint64>(r.synced),
                     static_cast<uint64>(r.failed));
  return r.any;
}

// Sends NOTIFY ves_events for appenders that committed since the last time
// (see signals::relay_notify_at_commit): one short transaction for any number
// of commits, at most one every kRelayGapMs, so a busy stream of commits
// costs a few notifications a millisecond apart rather than one each.
// `force` sends one regardless, for commits that may have asked a worker
// that has since stopped. Returns whether requests are still waiting.
constexpr std::int64_t kRelayGapMs = 2;

// Outcomes wait up to this long for more answers to record with them while
// transfers are in flight: every record is a transaction and two statements
// or more, and a worker that records each answer as it comes spends most
// of its time starting them (about a fifth of its CPU per delivery; see
// bench/RESULTS.md). An entity's next row can be claimed once the row
// before it is recorded, so this is also what it may add to that wait.
constexpr int kRecordDelayMs = 2;

struct Relay {
  std::uint64_t relayed = 0;
  std::int64_t last_ms = 0;
  bool active = false;  // appenders may wake the worker for notifications alone
};

bool relay_notifications(Relay &r, bool force) {
  std::uint64_t requests = signals::notify_requests();
  if (requests == r.relayed && !force) return false;
  std::int64_t now = steady_ms();
  if (!force && now - r.last_ms < kRelayGapMs) return true;
  notify_ves_events();
  std::uint64_t latest = signals::notify_relayed(requests);
  r.relayed = requests;
  r.last_ms = now;
  return latest != requests;
}

// Drops the worker's state: the deliverer (the next one gives this
// process's leases back) and the calls of reconciliations and pulls.
void forget_state(std::unique_ptr<Deliverer> &deliverer, Relay &relay) {
  deliverer.reset();
  reconcile::forget_calls();
  pull::forget_fetches();
  relay.active = false;
}

// DROP EXTENSION under the running worker: its objects are gone, so every
// step would fail again until CREATE EXTENSION. Said once; the loop then
// waits for the extension as at start (no error per step and round).
void extension_gone(std::unique_ptr<Deliverer> &deliverer, Relay &relay) {
  extension_dropped = false;
  log_line(
      "pg_ves worker: extension pg_ves was dropped from this database; waiting for CREATE "
      "EXTENSION pg_ves");
  forget_state(deliverer, relay);
}

// After an error in a round: roll back whatever transaction is open, drop
// the worker's state and pause; a round that failed because the extension
// was dropped goes back to waiting for it instead.
void recover(HttpEngine &engine, std::unique_ptr<Deliverer> &deliverer, Relay &relay,
             const ErrorData *data, const char *message) {
  // Copied first: the rollback frees the error's memory.
  const ErrorText error = data ? error_text(data) : ErrorText{0, message, {}, {}, {}};
  if (rolled_back_extension_gone()) {
    extension_gone(deliverer, relay);
    return;
  }
  if (data)
    log_error_text("a delivery round failed; retrying in 5 seconds", error);
  else
    log_line(std::string("pg_ves worker: a delivery round failed; retrying in 5 seconds: ") +
             error.message);
  try {
    report_activity(STATE_IDLE, "pg_ves: retrying after an error (see the server log)");
  } catch (const PgError &) {
  }
  forget_state(deliverer, relay);
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
    report_activity(STATE_RUNNING, "pg_ves: stopping, finishing transfers in flight");
    std::int64_t deadline = steady_ms() + kShutdownDrainMs;
    while (deliverer->in_flight() > 0 && steady_ms() < deadline) {
      engine.wait(static_cast<long>(std::min<std::int64_t>(100, deadline - steady_ms())));
      deliverer->absorb(engine.take_completed());
      check_interrupts();
    }
    int abandoned = deliverer->in_flight();
    record(*deliverer, true);
    deliverer->release_own_leases();
    if (abandoned > 0)
      log_line("pg_ves worker: stopped with " + std::to_string(abandoned) +
               " transfers unanswered after " + std::to_string(kShutdownDrainMs) +
               " ms; their rows are sent again (same idempotency key)");
  } catch (const PgError &e) {
    log_error_data(
        "could not finish cleanly while stopping; leased rows are claimed again after their lease",
        e.data());
    try {
      abort_transaction();
    } catch (const std::exception &) {
    }
  } catch (const std::exception &e) {
    log_line(std::string("pg_ves worker: could not finish cleanly while stopping: ") + e.what());
  }
}

// The worker's loop; returns only when asked to stop.
void run_delivery_loop() {
  set_worker_options();
  HttpEngine engine;
  std::unique_ptr<Deliverer> deliverer;
  std::uint64_t epoch = 0;
  std::int64_t last_poll = 0, last_housekeeping = 0, last_full_scan = 0;
  Relay relay;
  bool relay_waiting = false;
  bool woken = true;
  long inbound_wait_ms = 0;  // until reconcile::worker_round wants to run again
  for (;;) {
    check_interrupts();
    if (ShutdownRequestPending) break;
    try {
      if (extension_dropped && deliverer) extension_gone(deliverer, relay);
      extension_dropped = false;
      if (!deliverer) {
        if (!extension_present()) {
          // Not installed (yet, or any more): idle without spinning.
          signals::relays_notify(false);
          report_activity(STATE_IDLE, "pg_ves: waiting for CREATE EXTENSION pg_ves");
          engine.wait(10000);
          continue;
        }
        deliverer = std::make_unique<Deliverer>(true, 0);
        deliverer->release_own_leases();
        epoch = 0;
        signals::relays_notify(true);
        relay.active = true;
        relay_notifications(relay, true);
      }
      std::uint64_t now_epoch = signals::destinations_epoch();
      if (now_epoch != epoch) {
        deliverer->load_config();
        deliverer->request_full_scan();
        epoch = now_epoch;
      }
      std::int64_t now = steady_ms();
      const SyncSettings &cfg = deliverer->settings();
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
      timeout = std::min(timeout, inbound_wait_ms);
      long record_in = deliverer->record_wait_ms(kRecordDelayMs);
      if (record_in >= 0) timeout = std::min(timeout, record_in);
      woken = engine.wait(timeout);
      woken = signals::take_outbox_wake() || (woken && !relay.active);
      relay_waiting = relay_notifications(relay, false);
      std::vector<HttpResult> completed = engine.take_completed();
      reconcile::absorb(completed);
      pull::absorb(completed);
      deliverer->absorb(std::move(completed));
      bool recorded = deliverer->record_wait_ms(kRecordDelayMs) == 0 && record(*deliverer);
      // Inbound (reconcile.hpp): security alerts to record, reconciliations
      // due (stale listings within a second) and their reads, old webhook
      // delivery ids.
      inbound_wait_ms = reconcile::worker_round(engine, recorded);
      // Pull sources due (pull.hpp).
      inbound_wait_ms = std::min(inbound_wait_ms, pull::worker_round(engine));
      if (now - last_housekeeping >= 10000) {
        housekeeping();
        last_housekeeping = now;
      }
    } catch (const PgError &e) {
      // A database error outside one row or destination (a lock timeout,
      // the extension being dropped, ...): roll back, drop all state (its
      // leases are given back at once), log it and start over after a pause
      // (or wait for the extension, if it is gone).
      recover(engine, deliverer, relay, e.data(), nullptr);
    } catch (const std::exception &e) {
      // The same for a C++ error: the worker never dies of one round.
      recover(engine, deliverer, relay, nullptr, e.what());
    }
  }
  stop_gracefully(engine, deliverer);
}

}  // namespace
}  // namespace pgves::pg

using namespace pgves::pg;

extern "C" {
PGDLLEXPORT void pg_ves_worker_main(Datum);
}

void pg_ves_worker_main(Datum) {
  // SIGTERM (ves.stop_worker, DROP DATABASE, a reload removing the database,
  // server shutdown) only sets ShutdownRequestPending: the delivery loop
  // stops claiming, finishes what it has in flight for a bounded time,
  // records it, gives its leases back and returns.
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  BackgroundWorkerUnblockSignals();

  char dbname[NAMEDATALEN];
  char role[NAMEDATALEN];
  strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
  strlcpy(role, MyBgworkerEntry->bgw_extra + NAMEDATALEN, NAMEDATALEN);
  BackgroundWorkerInitializeConnection(dbname, role[0] ? role : nullptr, 0);
  // Whatever ALTER DATABASE / ALTER ROLE ... SET search_path said: every
  // query this worker runs resolves unqualified names in pg_catalog only.
  // PGC_S_OVERRIDE: no later SET (not even a function's SET clause) can
  // change it.
  SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
  // Likewise the few settings a database owner could use to stop the worker
  // from working (read-only or serializable transactions, a statement
  // timeout, row security off, which fails a role's queries on tables with
  // policies).
  SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("row_security", "on", PGC_SUSET, PGC_S_OVERRIDE);
  pgstat_report_appname("pg_ves worker");
  launcher::attach_worker(dbname);
  signals::open_mailbox();
  ereport(LOG, (errmsg("pg_ves worker started for database \"%s\"%s%s%s", dbname,
                       role[0] ? " as role \"" : "", role, role[0] ? "\"" : "")));

  // Everything below runs inside the boundary. The loop catches every error
  // of a round itself; what still escapes ends the worker with a FATAL and
  // the launcher starts another.
  bool failed = false;
  char message[512] = {0};
  try {
    run_delivery_loop();
  } catch (const PgError &e) {
    failed = true;
    snprintf(message, sizeof message, "%s", e.what());
  } catch (const std::exception &e) {
    failed = true;
    snprintf(message, sizeof message, "%s", e.what());
  } catch (...) {
    failed = true;
    snprintf(message, sizeof message, "unknown C++ exception");
  }
  if (failed) ereport(FATAL, (errmsg("pg_ves worker stopped: %s", message)));
  ereport(LOG, (errmsg("pg_ves worker for database \"%s\" stopped", dbname)));
  proc_exit(0);
}
