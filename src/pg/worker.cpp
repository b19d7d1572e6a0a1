// The launcher and the per-database sync workers.
//
// The launcher (a static background worker, no database connection) reads
// ves.databases and keeps one dynamic worker running per listed database,
// restarting one that exits with a growing delay so a broken database never
// makes it spin. Workers claim outbox rows in short transactions
// (FOR UPDATE SKIP LOCKED, a lease), send them through libcurl outside any
// transaction with a sliding window of transfers in flight, and record the
// results in another short transaction. See src/pg/delivery.cpp.
#include "pg/worker.hpp"

#include "pg/boundary.hpp"
#include "pg/delivery.hpp"
#include "pg/settings.hpp"
#include "pg/shmem.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

namespace pgves::pg::worker {
namespace {

constexpr int kMaxWorkers = 32;

struct Slot {
  char dbname[NAMEDATALEN];  // '\0' = free
  Oid dboid;
  int pid;
  int procno;
  bool stopped;              // ves.stop_worker(): the launcher leaves it stopped
  bool requested;            // ves.start_worker() for a database not in ves.databases
  bool start_now;            // ves.start_worker(): skip the restart delay once
  TimestampTz hold_until;    // DROP DATABASE in progress: do not restart before
  TimestampTz started_at;
  uint64 delivered;
  uint64 failed;
  int in_flight;
  bool relays_notify;        // the worker sends NOTIFY ves_events for appenders
  uint64 notify_requests;    // commits that asked it to
  uint64 notify_relayed;     // requests covered by its last NOTIFY
  bool outbox_woken;         // a commit queued outbox rows or changed destinations
  int64 lease_owner;         // the running worker's lease identity (see lease_owner())
};

struct Shared {
  slock_t mutex;
  pg_atomic_uint64 destinations_epoch;
  int launcher_pid;
  int launcher_procno;
  // Lease identities: a random epoch drawn each time shared memory is set up
  // (server start and every crash restart) and a generation counter, so an
  // identity is never reused by a later worker.
  uint32 lease_epoch;
  pg_atomic_uint32 lease_generation;
  Slot slots[kMaxWorkers];
};

Shared *shared = nullptr;
Size size() { return sizeof(Shared); }
void init(void *segment) {
  auto *s = static_cast<Shared *>(segment);
  memset(s, 0, sizeof(Shared));
  SpinLockInit(&s->mutex);
  pg_atomic_init_u64(&s->destinations_epoch, 1);
  if (!pg_strong_random(&s->lease_epoch, sizeof s->lease_epoch))
    s->lease_epoch = static_cast<uint32>(GetCurrentTimestamp() ^ MyProcPid);
  pg_atomic_init_u32(&s->lease_generation, 0);
}

int64 next_lease_owner() {
  uint32 generation = pg_atomic_add_fetch_u32(&shared->lease_generation, 1) & 0x7fffffff;
  return static_cast<int64>((static_cast<uint64>(shared->lease_epoch) << 31) | generation) & INT64_MAX;
}

int64 my_lease_owner = 0;
void attach(void *segment) { shared = static_cast<Shared *>(segment); }

Slot *find_slot(const char *dbname) {
  for (auto &slot : shared->slots)
    if (slot.dbname[0] && strcmp(slot.dbname, dbname) == 0) return &slot;
  return nullptr;
}

Slot *claim_slot(const char *dbname) {
  Slot *slot = find_slot(dbname);
  if (slot) return slot;
  for (auto &s : shared->slots)
    if (!s.dbname[0]) {
      memset(&s, 0, sizeof s);
      strlcpy(s.dbname, dbname, NAMEDATALEN);
      return &s;
    }
  return nullptr;
}

void set_latch_of(int procno) {
  if (procno >= 0) SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

// --- commit-time wake-ups ---------------------------------------------------

bool wake_pending = false;
bool epoch_pending = false;
bool notify_pending = false;
bool xact_callback_registered = false;

void on_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_COMMIT && shared) {
    if (epoch_pending) pg_atomic_fetch_add_u64(&shared->destinations_epoch, 1);
    if (wake_pending || epoch_pending || notify_pending) {
      SpinLockAcquire(&shared->mutex);
      int procnos[kMaxWorkers];
      int n = 0;
      for (auto &slot : shared->slots)
        if (slot.pid != 0 && slot.dboid == MyDatabaseId) {
          bool wake = false;
          if (notify_pending && slot.relays_notify) {
            // Only the first request since the last NOTIFY wakes the worker;
            // the ones after it are covered by the NOTIFY it is about to send.
            wake = slot.notify_requests == slot.notify_relayed;
            slot.notify_requests++;
          }
          if (wake_pending || epoch_pending) {
            slot.outbox_woken = true;
            wake = true;
          }
          if (wake) procnos[n++] = slot.procno;
        }
      SpinLockRelease(&shared->mutex);
      for (int i = 0; i < n; ++i) set_latch_of(procnos[i]);
    }
  }
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
      event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
    wake_pending = epoch_pending = notify_pending = false;
}

void ensure_callback() {
  if (!xact_callback_registered) {
    RegisterXactCallback(on_xact, nullptr);
    xact_callback_registered = true;
  }
}

// --- DROP DATABASE ------------------------------------------------------------

ProcessUtility_hook_type prev_utility = nullptr;

// A worker connected to a database makes DROP DATABASE fail; stop it first
// and keep the launcher from restarting it while the drop runs.
void stop_worker_for_drop(const char *dbname) {
  if (!shared) return;
  int pid = 0;
  SpinLockAcquire(&shared->mutex);
  if (Slot *slot = find_slot(dbname)) {
    slot->hold_until = GetCurrentTimestamp() + 60 * USECS_PER_SEC;
    pid = slot->pid;
  }
  SpinLockRelease(&shared->mutex);
  if (pid == 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    bool gone;
    SpinLockAcquire(&shared->mutex);
    Slot *slot = find_slot(dbname);
    gone = !slot || slot->pid != pid;
    SpinLockRelease(&shared->mutex);
    if (gone) break;
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

void on_utility(PlannedStmt *pstmt, const char *query, bool read_only, ProcessUtilityContext context,
                ParamListInfo params, QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc) {
  if (IsA(pstmt->utilityStmt, DropdbStmt))
    stop_worker_for_drop(castNode(DropdbStmt, pstmt->utilityStmt)->dbname);
  if (prev_utility)
    prev_utility(pstmt, query, read_only, context, params, env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query, read_only, context, params, env, dest, qc);
}

// --- the launcher ---------------------------------------------------------------

std::vector<std::string> configured_databases() {
  std::vector<std::string> out;
  std::string list = settings::databases ? settings::databases : "";
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t b = name.find_first_not_of(" \t"), e = name.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(name.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

bool start_dynamic_worker(const char *dbname, BackgroundWorkerHandle **handle) {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  strlcpy(w.bgw_library_name, "pg_ves", BGW_MAXLEN);
  strlcpy(w.bgw_function_name, "pg_ves_worker_main", BGW_MAXLEN);
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_ves worker for %s", dbname);
  strlcpy(w.bgw_type, "pg_ves worker", BGW_MAXLEN);
  strlcpy(w.bgw_extra, dbname, BGW_EXTRALEN);
  w.bgw_notify_pid = MyProcPid;
  return RegisterDynamicBackgroundWorker(&w, handle);
}

void request_shmem() { shmem::register_segment("pg_ves workers", size, init, attach); }

void register_launcher() {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = 5;
  strlcpy(w.bgw_library_name, "pg_ves", BGW_MAXLEN);
  strlcpy(w.bgw_function_name, "pg_ves_launcher_main", BGW_MAXLEN);
  strlcpy(w.bgw_name, "pg_ves launcher", BGW_MAXLEN);
  strlcpy(w.bgw_type, "pg_ves launcher", BGW_MAXLEN);
  RegisterBackgroundWorker(&w);
}

void install_hooks() {
  prev_utility = ProcessUtility_hook;
  ProcessUtility_hook = on_utility;
}

void wake_at_commit() {
  ensure_callback();
  wake_pending = true;
}

bool relay_notify_at_commit() {
  if (!shared) return false;
  if (notify_pending) return true;
  bool relayed = false;
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid != 0 && slot.dboid == MyDatabaseId && slot.relays_notify) relayed = true;
  SpinLockRelease(&shared->mutex);
  if (relayed) {
    ensure_callback();
    notify_pending = true;
  }
  return relayed;
}

void worker_relays_notify(bool on) {
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid == MyProcPid) slot.relays_notify = on;
  SpinLockRelease(&shared->mutex);
}

uint64 worker_notify_requests() {
  uint64 n = 0;
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid == MyProcPid) n = slot.notify_requests;
  SpinLockRelease(&shared->mutex);
  return n;
}

uint64 worker_notify_relayed(uint64 requests) {
  uint64 now = requests;
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid == MyProcPid) {
      slot.notify_relayed = requests;
      now = slot.notify_requests;
    }
  SpinLockRelease(&shared->mutex);
  return now;
}

bool worker_take_outbox_wake() {
  bool woken = false;
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid == MyProcPid) {
      woken = slot.outbox_woken;
      slot.outbox_woken = false;
    }
  SpinLockRelease(&shared->mutex);
  return woken;
}

void destinations_changed_at_commit() {
  ensure_callback();
  epoch_pending = true;
}

uint64 destinations_epoch() {
  shmem::require(shared);
  return pg_atomic_read_u64(&shared->destinations_epoch);
}

// Called by a worker once connected: publishes its latch.
void worker_attach(const char *dbname) {
  my_lease_owner = next_lease_owner();
  SpinLockAcquire(&shared->mutex);
  Slot *slot = claim_slot(dbname);
  if (slot) {
    slot->pid = MyProcPid;
    slot->procno = MyProc->pgprocno;
    slot->dboid = MyDatabaseId;
    slot->started_at = GetCurrentTimestamp();
    slot->lease_owner = my_lease_owner;
  }
  SpinLockRelease(&shared->mutex);
}

void worker_detach(int, Datum arg) {
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid == MyProcPid) {
      slot.pid = 0;
      slot.lease_owner = 0;
      slot.in_flight = 0;
      slot.relays_notify = false;
    }
  SpinLockRelease(&shared->mutex);
  if (shared->launcher_pid) set_latch_of(shared->launcher_procno);
}

int64 lease_owner() {
  if (my_lease_owner == 0 && shared) my_lease_owner = next_lease_owner();
  // Without pg_ves preloaded there are no workers, only this backend.
  while (my_lease_owner == 0)
    if (!pg_strong_random(&my_lease_owner, sizeof my_lease_owner)) my_lease_owner = MyProcPid;
    else my_lease_owner &= INT64_MAX;
  return my_lease_owner;
}

std::vector<int64> live_lease_owners() {
  if (!shared) return {};
  int64 owners[kMaxWorkers];
  int n = 0;
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid != 0 && slot.lease_owner != 0) owners[n++] = slot.lease_owner;
  SpinLockRelease(&shared->mutex);
  return std::vector<int64>(owners, owners + n);
}

void worker_report(int in_flight, uint64 delivered, uint64 failed) {
  SpinLockAcquire(&shared->mutex);
  for (auto &slot : shared->slots)
    if (slot.pid == MyProcPid) {
      slot.in_flight = in_flight;
      slot.delivered += delivered;
      slot.failed += failed;
    }
  SpinLockRelease(&shared->mutex);
}

}  // namespace pgves::pg::worker

using namespace pgves::pg;
using namespace pgves::pg::worker;

extern "C" {
PGDLLEXPORT void pg_ves_launcher_main(Datum);
PGDLLEXPORT void pg_ves_worker_main(Datum);
}

// The launcher holds no C++ state across Postgres calls but a vector of
// names, refreshed each round; errors here are FATAL and the postmaster
// restarts it after bgw_restart_time.
void pg_ves_launcher_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  pgstat_report_appname("pg_ves launcher");

  SpinLockAcquire(&shared->mutex);
  shared->launcher_pid = MyProcPid;
  shared->launcher_procno = MyProc->pgprocno;
  SpinLockRelease(&shared->mutex);

  struct Tracked {
    char dbname[NAMEDATALEN];
    BackgroundWorkerHandle *handle;
    int failures;
    TimestampTz next_start;
  };
  static Tracked tracked[kMaxWorkers];
  int ntracked = 0;

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    TimestampTz now = GetCurrentTimestamp();
    long next_wait = 5000;
    std::vector<std::string> dbs;
    try {
      dbs = configured_databases();
      SpinLockAcquire(&shared->mutex);
      std::vector<std::string> requested;
      for (auto &slot : shared->slots)
        if (slot.dbname[0] && slot.requested) requested.emplace_back(slot.dbname);
      SpinLockRelease(&shared->mutex);
      for (auto &r : requested)
        if (std::find(dbs.begin(), dbs.end(), r) == dbs.end()) dbs.push_back(r);
    } catch (...) {
      dbs.clear();
    }
    // Workers of databases no longer listed (a reload removed them) stop.
    for (int i = 0; i < ntracked; ++i) {
      bool wanted = false;
      for (const std::string &db : dbs) wanted |= strcmp(tracked[i].dbname, db.c_str()) == 0;
      if (wanted) continue;
      if (tracked[i].handle) {
        TerminateBackgroundWorker(tracked[i].handle);
        pfree(tracked[i].handle);
      }
      tracked[i] = tracked[--ntracked];
      --i;
    }
    for (const std::string &db : dbs) {
      Tracked *t = nullptr;
      for (int i = 0; i < ntracked; ++i)
        if (strcmp(tracked[i].dbname, db.c_str()) == 0) t = &tracked[i];
      if (!t) {
        if (ntracked == kMaxWorkers) break;
        t = &tracked[ntracked++];
        memset(t, 0, sizeof *t);
        strlcpy(t->dbname, db.c_str(), NAMEDATALEN);
      }
      bool running = false;
      if (t->handle) {
        pid_t pid;
        BgwHandleStatus st = GetBackgroundWorkerPid(t->handle, &pid);
        running = st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED;
        if (!running) {
          pfree(t->handle);
          t->handle = nullptr;
          // A worker that ran for a while and stopped restarts soon; one that
          // keeps failing (say, its database is gone) waits longer each time.
          t->failures = std::min(t->failures + 1, 8);
          t->next_start = now + static_cast<int64>(1000LL << t->failures) * 1000;
        } else if (pid > 0) {
          t->failures = 0;
        }
      }
      if (running) continue;
      bool stopped = false, held = false, start_now = false;
      SpinLockAcquire(&shared->mutex);
      Slot *slot = claim_slot(t->dbname);
      if (slot) {
        stopped = slot->stopped;
        held = slot->hold_until > now;
        start_now = slot->start_now;
        slot->start_now = false;
      }
      SpinLockRelease(&shared->mutex);
      if (stopped || held) continue;
      if (now < t->next_start && !start_now) continue;
      if (!start_dynamic_worker(t->dbname, &t->handle)) {
        ereport(LOG, (errmsg("pg_ves launcher: no background worker slot for database \"%s\"", t->dbname),
                      errhint("Raise max_worker_processes.")));
        t->handle = nullptr;
        t->next_start = now + 30 * USECS_PER_SEC;
      }
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, next_wait, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}

void pg_ves_worker_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();

  char dbname[NAMEDATALEN];
  strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
  BackgroundWorkerInitializeConnection(dbname, nullptr, 0);
  pgstat_report_appname("pg_ves worker");
  worker_attach(dbname);
  before_shmem_exit(worker_detach, 0);
  ereport(LOG, (errmsg("pg_ves worker started for database \"%s\"", dbname)));

  // Everything below runs inside the boundary: a C++ exception ends the
  // worker with a clean FATAL and the launcher starts another.
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
  proc_exit(0);
}

// ves.start_worker(dbname): clears a stop (or asks for a worker for a
// database not in ves.databases) and waits for the launcher to start it. The
// launcher alone starts workers, so there is never more than one per database.
PGVES_FUNCTION(ves_start_worker) {
  shmem::require(shared);
  const char *db = PG_ARGISNULL(0) ? get_database_name(MyDatabaseId) : text_to_cstring(PG_GETARG_TEXT_PP(0));
  if (!db) throw VesError(sqlstate::not_found, "the current database has no name", {}, "Pass a database name.");
  SpinLockAcquire(&shared->mutex);
  Slot *slot = claim_slot(db);
  if (slot) {
    slot->stopped = false;
    slot->requested = true;
    slot->start_now = true;
  }
  int launcher = shared->launcher_pid ? shared->launcher_procno : -1;
  SpinLockRelease(&shared->mutex);
  if (!slot)
    throw VesError(sqlstate::invalid_argument, "too many databases with pg_ves workers", {},
                   "At most 32 databases can have a sync worker.");
  if (launcher < 0)
    throw VesError(sqlstate::not_found, "the pg_ves launcher is not running", {},
                   "It starts with the server when pg_ves is in shared_preload_libraries; see the server log.");
  set_latch_of(launcher);
  for (int i = 0; i < 200; ++i) {
    SpinLockAcquire(&shared->mutex);
    bool running = slot->pid != 0;
    SpinLockRelease(&shared->mutex);
    if (running) PG_RETURN_BOOL(true);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  throw VesError(sqlstate::invalid_argument, "the sync worker did not start within 10 seconds", {},
                 "See the server log; the launcher retries with a growing delay.");
}

// ves.stop_worker(dbname): stops the worker and keeps it stopped until
// ves.start_worker.
PGVES_FUNCTION(ves_stop_worker) {
  shmem::require(shared);
  const char *db = PG_ARGISNULL(0) ? get_database_name(MyDatabaseId) : text_to_cstring(PG_GETARG_TEXT_PP(0));
  int pid = 0;
  SpinLockAcquire(&shared->mutex);
  Slot *slot = claim_slot(db);
  if (slot) {
    slot->stopped = true;
    slot->requested = false;
    pid = slot->pid;
  }
  SpinLockRelease(&shared->mutex);
  if (pid) kill(pid, SIGTERM);
  for (int i = 0; pid && i < 200; ++i) {
    SpinLockAcquire(&shared->mutex);
    bool gone = !slot || slot->pid != pid;
    SpinLockRelease(&shared->mutex);
    if (gone) break;
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  PG_RETURN_BOOL(pid != 0);
}

// ves._worker_status(): the workers' slots, for the ves.worker_status view.
PGVES_FUNCTION(ves_worker_status) {
  ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  shmem::require(shared);
  InitMaterializedSRF(fcinfo, 0);
  Slot copy[kMaxWorkers];
  SpinLockAcquire(&shared->mutex);
  memcpy(copy, shared->slots, sizeof copy);
  SpinLockRelease(&shared->mutex);
  for (const Slot &s : copy) {
    if (!s.dbname[0]) continue;
    Datum values[7] = {CStringGetTextDatum(s.dbname), Int32GetDatum(s.pid), BoolGetDatum(s.stopped),
                       TimestampTzGetDatum(s.started_at), Int32GetDatum(s.in_flight),
                       Int64GetDatum(static_cast<int64>(s.delivered)), Int64GetDatum(static_cast<int64>(s.failed))};
    bool nulls[7] = {false, s.pid == 0, false, s.started_at == 0, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return (Datum)0;
}

PGVES_FUNCTION(ves_wake_worker) {
  wake_at_commit();
  PG_RETURN_VOID();
}

PGVES_FUNCTION(ves_destinations_changed) {
  destinations_changed_at_commit();
  PG_RETURN_VOID();
}
