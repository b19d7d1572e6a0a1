// The deliverer: claims outbox rows, sends them, records the outcomes. The
// sync worker's loop (worker_loop.cpp) drives one for as long as it runs;
// ves.push_events drives one for a single pass in the calling backend. It
// knows nothing of how workers are started: it names its leases with
// signals::lease_owner() and skips only those of live holders.
#pragma once

#include "pg/base/postgres.hpp"
#include "pg/sync/http_engine.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pgves::pg {

// ves.sync_settings as the deliverer uses them.
struct SyncSettings {
  int window = 64;
  int claim_batch = 256;
  int lease_seconds = 60;
  int safety_poll_ms = 5000;
};

struct DeliveryTotals {
  std::int64_t sent = 0, synced = 0, failed = 0, dead = 0;
};

// What one record() wrote.
struct Recorded {
  bool any = false;  // it ran a transaction (rows or destinations to write)
  std::int64_t synced = 0, failed = 0;
};

class Deliverer {
 public:
  // What each destination may claim now (core::claim_quotas), and whether a
  // claim is worth its transaction.
  struct ClaimPlan {
    std::vector<std::pair<int, int>> quotas;  // destination id, rows
    bool worthwhile = false;
  };

  // own_transactions: the worker runs each step in its own transaction;
  // ves.push_events runs everything in the caller's. only_destination: 0 for
  // all of them.
  Deliverer(bool own_transactions, int only_destination);
  ~Deliverer();
  Deliverer(const Deliverer &) = delete;
  Deliverer &operator=(const Deliverer &) = delete;

  // Reads ves.sync_settings and ves.destinations (again after a change).
  void load_config();
  ClaimPlan plan_claim(std::int64_t max_rows);
  // Claims each destination's quota and queues the rows on it.
  int claim(const ClaimPlan &plan);
  // Something may have queued rows for any destination: a commit woke the
  // worker, a poll is due.
  void expect_work();
  // Whether claiming may find something for a destination that may send.
  bool more_work();
  // The next claim reads the outbox from its first open row.
  void request_full_scan();
  // Starts transfers while destinations have room.
  void dispatch(HttpEngine &engine);
  // Turns finished transfers into outcomes and destination health.
  void absorb(std::vector<HttpResult> results);
  // Writes the outcomes and the destinations' health.
  Recorded record();
  // The same, and every last success still held back by the once-a-second
  // throttle, so that a worker that stops leaves last_success_at exact.
  Recorded record_final();
  // How much longer recording may wait for more answers to share its
  // transaction: -1 when there is nothing to record; 0 when it is due (the
  // first outcome not recorded is delay_ms old, nothing is in flight any
  // more, or half a window of outcomes waits); when only a destination's
  // last success is still to be written, the time until it is due.
  long record_wait_ms(int delay_ms);
  // Rows this process claimed before its state was dropped (after an error)
  // go back to the queue at once instead of waiting out their lease.
  void release_own_leases();
  // How long the caller may sleep before something queued needs attention.
  long idle_timeout_ms(long poll_ms);

  int queued() const;
  int in_flight() const;
  const SyncSettings &settings() const;
  const DeliveryTotals &totals() const;
  std::int64_t claimed_total() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// One LOG line for a database error the worker survives: its SQLSTATE,
// message, detail and hint, and what the worker was doing.
void log_error_data(const char *context, const ErrorData *data);

// A database error's text copied out of PostgreSQL memory, for a line
// logged after the transaction it happened in was rolled back (which frees
// the ErrorData).
struct ErrorText {
  int sqlerrcode = 0;
  std::string message, detail, hint, context;
};
ErrorText error_text(const ErrorData *data);
void log_error_text(const char *context, const ErrorText &error);

}  // namespace pgves::pg
