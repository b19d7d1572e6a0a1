// The launcher and the per-database sync workers.
//
// The launcher (a static background worker, no database connection) reads
// ves.databases and keeps one dynamic worker running per listed database,
// restarting one that exits with a growing delay so a broken database never
// makes it spin. Workers claim outbox rows in short transactions
// (FOR UPDATE SKIP LOCKED, a lease), send them through libcurl outside any
// transaction with a sliding window of transfers in flight, and record the
// results in another short transaction (see deliverer.cpp and
// worker_loop.cpp). Commits wake workers through signals.cpp.
#include "pg/sync/launcher.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/settings.hpp"
#include "pg/base/shmem.hpp"
#include "pg/sync/shared_catalog.hpp"

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

namespace pgves::pg::launcher {
namespace {

constexpr int kMaxWorkers = 32;

struct Slot {
  char dbname[NAMEDATALEN];  // '\0' = free
  int pid;
  bool stopped;            // ves.stop_worker(): the launcher leaves it stopped
  bool requested;          // ves.start_worker() for a database not in ves.databases
  bool start_now;          // ves.start_worker(): skip the restart delay once
  TimestampTz hold_until;  // DROP DATABASE in progress: do not restart before
  TimestampTz started_at;
  // Touched at every recorded batch: atomics, never under the spinlock.
  pg_atomic_uint64 delivered;
  pg_atomic_uint64 failed;
  pg_atomic_uint32 in_flight;
};

// The spinlock guards a slot's identity and flags only (dbname, pid,
// stopped, requested, start_now, hold_until, started_at). Code holding it
// copies plain values and nothing else: no allocation, no Postgres call, no
// atomics, nothing that can fail.
void init_slot_counters(Slot &s) {
  pg_atomic_init_u64(&s.delivered, 0);
  pg_atomic_init_u64(&s.failed, 0);
  pg_atomic_init_u32(&s.in_flight, 0);
}

struct Shared {
  slock_t mutex;
  int launcher_pid;
  int launcher_procno;
  Slot slots[kMaxWorkers];
};

Shared *shared = nullptr;
// This worker's slot, once attached (slots are never reused for another
// database, so the pointer stays valid).
Slot *my_slot = nullptr;
Size size() { return sizeof(Shared); }
void init(void *segment) {
  auto *s = static_cast<Shared *>(segment);
  memset(s, 0, sizeof(Shared));
  SpinLockInit(&s->mutex);
  for (auto &slot : s->slots) init_slot_counters(slot);
}

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
      // A free slot has never been used: its counters are still zero.
      strlcpy(s.dbname, dbname, NAMEDATALEN);
      return &s;
    }
  return nullptr;
}

void set_latch_of(int procno) {
  if (procno >= 0) SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

// --- DROP DATABASE ------------------------------------------------------------

ProcessUtility_hook_type prev_utility = nullptr;

// A worker connected to a database makes DROP DATABASE fail; stop it first
// and keep the launcher from restarting it while the drop runs.
void stop_worker_for_drop(const char *dbname) {
  if (!shared) return;
  int pid = 0;
  TimestampTz hold = GetCurrentTimestamp() + 60 * USECS_PER_SEC;
  SpinLockAcquire(&shared->mutex);
  if (Slot *slot = find_slot(dbname)) {
    slot->hold_until = hold;
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
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

void on_utility(PlannedStmt *pstmt, const char *query, bool read_only,
                ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *env,
                DestReceiver *dest, QueryCompletion *qc) {
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
    std::string name =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t b = name.find_first_not_of(" \t"), e = name.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(name.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

bool start_dynamic_worker(const char *dbname, const char *role, BackgroundWorkerHandle **handle) {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  strlcpy(w.bgw_library_name, "pg_ves", BGW_MAXLEN);
  strlcpy(w.bgw_function_name, "pg_ves_worker_main", BGW_MAXLEN);
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_ves worker for %s", dbname);
  strlcpy(w.bgw_type, "pg_ves worker", BGW_MAXLEN);
  // bgw_extra: the database name, then (at NAMEDATALEN) the role to connect
  // as, '' for the bootstrap superuser.
  static_assert(BGW_EXTRALEN >= 2 * NAMEDATALEN, "bgw_extra holds two names");
  strlcpy(w.bgw_extra, dbname, NAMEDATALEN);
  strlcpy(w.bgw_extra + NAMEDATALEN, role ? role : "", NAMEDATALEN);
  w.bgw_notify_pid = MyProcPid;
  return RegisterDynamicBackgroundWorker(&w, handle);
}

void request_shmem() { shmem::register_segment("pg_ves workers", size, init, attach); }

void register_launcher() {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  // A connection to no database: the launcher reads the shared catalogs
  // (pg_database, pg_authid) before it starts a worker.
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
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

namespace {

void detach_worker(int, Datum) {
  SpinLockAcquire(&shared->mutex);
  if (my_slot && my_slot->pid == MyProcPid) my_slot->pid = 0;
  SpinLockRelease(&shared->mutex);
  if (my_slot) pg_atomic_write_u32(&my_slot->in_flight, 0);
  my_slot = nullptr;
  if (shared->launcher_pid) set_latch_of(shared->launcher_procno);
}

}  // namespace

void attach_worker(const char *dbname) {
  shmem::require(shared);
  TimestampTz now = GetCurrentTimestamp();
  SpinLockAcquire(&shared->mutex);
  Slot *slot = claim_slot(dbname);
  if (slot) {
    slot->pid = MyProcPid;
    slot->started_at = now;
  }
  SpinLockRelease(&shared->mutex);
  my_slot = slot;
  before_shmem_exit(detach_worker, 0);
}

void report(int in_flight, uint64 delivered, uint64 failed) {
  if (!my_slot) return;
  pg_atomic_write_u32(&my_slot->in_flight, static_cast<uint32>(in_flight));
  if (delivered) pg_atomic_fetch_add_u64(&my_slot->delivered, delivered);
  if (failed) pg_atomic_fetch_add_u64(&my_slot->failed, failed);
}

}  // namespace pgves::pg::launcher

using namespace pgves::pg;
using namespace pgves::pg::launcher;

extern "C" {
PGDLLEXPORT void pg_ves_launcher_main(Datum);
}

namespace {

// Why the launcher does not start a database's worker now.
enum Blocker { kNone = 0, kNoDatabase, kNoRole, kRoleNoLogin, kRoleSuperuser, kNoConnect };

// Reads the shared catalogs (the launcher is connected to no database):
// whether the role exists and may run a worker, whether the database exists
// and the role may connect to it. Heap scans only (shared_catalog.hpp): an
// index lookup would end the launcher with FATAL before any backend has
// written the shared relcache init file. Only trivially destructible locals:
// a Postgres error jumps through it.
Blocker start_blocker_unguarded(const char *dbname, const char *role, bool *role_checked) {
  Blocker b = kNone;
  shared_catalog::Role r{};
  shared_catalog::Database d{};
  *role_checked = false;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  if (role && role[0]) {
    *role_checked = true;
    if (!shared_catalog::find_role(role, &r))
      b = kNoRole;
    else if (r.superuser)
      b = kRoleSuperuser;
    else if (!r.can_login)
      b = kRoleNoLogin;
  }
  if (b == kNone) {
    if (!shared_catalog::find_database(dbname, &d))
      b = kNoDatabase;
    else if (OidIsValid(r.oid) && !shared_catalog::may_connect(r, d))
      b = kNoConnect;
  }
  CommitTransactionCommand();
  return b;
}

// The same, logging a catalog error (and reporting the database blocked)
// instead of ending the launcher.
Blocker start_blocker(const char *dbname, const char *role, bool *role_checked) {
  Blocker b = kNone;
  try {
    b = pg_call([&] { return start_blocker_unguarded(dbname, role, role_checked); });
  } catch (const PgError &e) {
    pg_call_void([&] {
      AbortCurrentTransaction();
      ereport(LOG, (errmsg("pg_ves launcher: cannot check database \"%s\": %s", dbname, e.what())));
    });
    b = kNoDatabase;
  }
  return b;
}

// The role problem last logged, so that each is logged once, not each round.
char logged_role[NAMEDATALEN] = "";
int logged_role_blocker = kNone;

void log_role_blocker(const char *role, Blocker b) {
  if (b == logged_role_blocker && strcmp(role, logged_role) == 0) return;
  logged_role_blocker = b;
  strlcpy(logged_role, role, NAMEDATALEN);
  if (b == kNone) {
    if (role[0])
      ereport(LOG,
              (errmsg("pg_ves launcher: sync workers run as role \"%s\" (ves.worker_role)", role)));
    return;
  }
  const char *why = b == kNoRole        ? "does not exist"
                    : b == kRoleNoLogin ? "does not have the LOGIN attribute"
                                        : "is a superuser";
  ereport(
      WARNING,
      (errmsg(
           "pg_ves launcher: ves.worker_role \"%s\" %s; no sync worker starts until this is fixed",
           role, why),
       errhint(
           "Create it with CREATE ROLE %s LOGIN; GRANT ves_worker TO %s; (not a superuser), or set "
           "ves.worker_role = '' to run the workers as the bootstrap superuser, then reload.",
           role, role)));
}

}  // namespace

// The launcher holds no C++ state across Postgres calls but a vector of
// names, refreshed each round; a Postgres error here ends it and the
// postmaster restarts it after bgw_restart_time. It is connected to no
// database, only to the shared catalogs: before starting a worker it checks
// that the database exists and that ves.worker_role can run it, so a worker
// is never started only to fail at its connection, over and over.
void pg_ves_launcher_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
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
    int blocker;             // last reason logged for not starting it (Blocker)
    char role[NAMEDATALEN];  // the ves.worker_role its running worker was started with
  };
  static Tracked tracked[kMaxWorkers];
  int ntracked = 0;

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ShutdownRequestPending) break;
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    TimestampTz now = GetCurrentTimestamp();
    long next_wait = 5000;
    std::vector<std::string> dbs;
    try {
      dbs = configured_databases();
      // Copied out under the spinlock into a fixed array; the strings are
      // made after its release.
      char requested[kMaxWorkers][NAMEDATALEN];
      int nrequested = 0;
      SpinLockAcquire(&shared->mutex);
      for (auto &slot : shared->slots)
        if (slot.dbname[0] && slot.requested)
          memcpy(requested[nrequested++], slot.dbname, NAMEDATALEN);
      SpinLockRelease(&shared->mutex);
      for (int i = 0; i < nrequested; ++i)
        if (std::find(dbs.begin(), dbs.end(), requested[i]) == dbs.end())
          dbs.emplace_back(requested[i]);
    } catch (...) {
      dbs.clear();
    }
    char role[NAMEDATALEN];
    strlcpy(role, settings::worker_role ? settings::worker_role : "", NAMEDATALEN);
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
        if (running && strcmp(t->role, role) != 0) {
          // ves.worker_role changed: stop this worker (gracefully); the
          // next round starts one as the new role.
          TerminateBackgroundWorker(t->handle);
          next_wait = 200;
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
      bool role_checked = false;
      Blocker blocker = start_blocker(t->dbname, role, &role_checked);
      if (role_checked)
        log_role_blocker(role, blocker == kNoDatabase || blocker == kNoConnect ? kNone : blocker);
      if (blocker == kNoConnect && t->blocker != kNoConnect)
        ereport(WARNING, (errmsg("pg_ves launcher: ves.worker_role \"%s\" may not connect to "
                                 "database \"%s\"; its sync worker "
                                 "does not start until it may",
                                 role, t->dbname),
                          errhint("GRANT CONNECT ON DATABASE %s TO %s;", t->dbname, role)));
      if (blocker == kNoDatabase && t->blocker != kNoDatabase)
        ereport(LOG,
                (errmsg("pg_ves launcher: database \"%s\" listed in ves.databases does not exist "
                        "yet; its sync "
                        "worker starts once it is created",
                        t->dbname),
                 errhint("Create the database and the extension pg_ves in it, or remove it from "
                         "ves.databases.")));
      t->blocker = blocker;
      if (blocker != kNone) continue;  // checked again at the next round (5 s)
      strlcpy(t->role, role, NAMEDATALEN);
      if (!start_dynamic_worker(t->dbname, role, &t->handle)) {
        ereport(LOG, (errmsg("pg_ves launcher: no background worker slot for database \"%s\"",
                             t->dbname),
                      errhint("Raise max_worker_processes.")));
        t->handle = nullptr;
        t->next_start = now + 30 * USECS_PER_SEC;
      }
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, next_wait,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
  // An expected stop (server shutdown): exit code 1 so that the postmaster
  // restarts the launcher if the server goes on running (a terminated
  // launcher), and a LOG line rather than FATAL.
  ereport(LOG, (errmsg("pg_ves launcher stopping")));
  proc_exit(1);
}

// ves.start_worker(dbname): clears a stop (or asks for a worker for a
// database not in ves.databases) and waits for the launcher to start it. The
// launcher alone starts workers, so there is never more than one per database.
PGVES_FUNCTION(ves_start_worker) {
  shmem::require(shared);
  const char *db =
      PG_ARGISNULL(0) ? get_database_name(MyDatabaseId) : text_to_cstring(PG_GETARG_TEXT_PP(0));
  if (!db)
    throw VesError(sqlstate::not_found, "the current database has no name", {},
                   "Pass a database name.");
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
                   "It starts with the server when pg_ves is in shared_preload_libraries; see the "
                   "server log.");
  set_latch_of(launcher);
  for (int i = 0; i < 200; ++i) {
    SpinLockAcquire(&shared->mutex);
    bool running = slot->pid != 0;
    SpinLockRelease(&shared->mutex);
    if (running) PG_RETURN_BOOL(true);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
                    PG_WAIT_EXTENSION);
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
  const char *db =
      PG_ARGISNULL(0) ? get_database_name(MyDatabaseId) : text_to_cstring(PG_GETARG_TEXT_PP(0));
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
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
                    PG_WAIT_EXTENSION);
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
  // Plain copies under the spinlock, into a fixed stack array; text datums
  // and tuples are made after its release.
  struct Copy {
    char dbname[NAMEDATALEN];
    int pid;
    bool stopped;
    TimestampTz started_at;
  } copy[kMaxWorkers];
  int index[kMaxWorkers];
  int n = 0;
  SpinLockAcquire(&shared->mutex);
  for (int i = 0; i < kMaxWorkers; ++i) {
    const Slot &s = shared->slots[i];
    if (!s.dbname[0]) continue;
    memcpy(copy[n].dbname, s.dbname, NAMEDATALEN);
    copy[n].pid = s.pid;
    copy[n].stopped = s.stopped;
    copy[n].started_at = s.started_at;
    index[n++] = i;
  }
  SpinLockRelease(&shared->mutex);
  for (int k = 0; k < n; ++k) {
    const Copy &s = copy[k];
    Slot &live = shared->slots[index[k]];
    uint32 in_flight = s.pid ? pg_atomic_read_u32(&live.in_flight) : 0;
    Datum values[7] = {CStringGetTextDatum(s.dbname),
                       Int32GetDatum(s.pid),
                       BoolGetDatum(s.stopped),
                       TimestampTzGetDatum(s.started_at),
                       Int32GetDatum(static_cast<int32>(in_flight)),
                       Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&live.delivered))),
                       Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&live.failed)))};
    bool nulls[7] = {false, s.pid == 0, false, s.started_at == 0, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return (Datum)0;
}
