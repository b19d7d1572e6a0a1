#include "pg/store/read_fence.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/shmem.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/base/sqlstate.hpp"

extern "C" {
#include "access/twophase.h"
#include "catalog/namespace.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace pgves::pg::fence {

namespace {

constexpr int kMaxDatabases = 64;

// One per database that has pg_ves: the highest position handed out there.
struct DatabaseHighWater {
  Oid dboid;
  Oid seqoid;  // the position sequence; a new one (DROP/CREATE EXTENSION) resets the entry
  pg_atomic_uint32 initialized;
  pg_atomic_uint64 high_water;
};

// One per PGPROC: the lower bound of positions its open transaction may hold
// (0 = none), and who it is, for ves.read_fence_holders.
struct Slot {
  pg_atomic_uint64 lower_bound;
  Oid dboid;
  int pid;
  TimestampTz xact_start;
};

struct Shared {
  LWLock *lock;
  pg_atomic_uint64 key_epoch;
  int nslots;
  DatabaseHighWater dbs[kMaxDatabases];
  Slot slots[FLEXIBLE_ARRAY_MEMBER];
};

Shared *shared = nullptr;
Slot *my_slot = nullptr;
int slot_count() { return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts; }

Size shmem_size() {
  return add_size(offsetof(Shared, slots), mul_size(slot_count(), sizeof(Slot)));
}

void init_segment(void *segment) {
  Shared *s = static_cast<Shared *>(segment);
  s->lock = &(GetNamedLWLockTranche("pg_ves"))->lock;
  pg_atomic_init_u64(&s->key_epoch, 0);
  s->nslots = slot_count();
  for (auto &db : s->dbs) {
    db.dboid = InvalidOid;
    db.seqoid = InvalidOid;
    pg_atomic_init_u32(&db.initialized, 0);
    pg_atomic_init_u64(&db.high_water, 0);
  }
  for (int i = 0; i < s->nslots; ++i) {
    pg_atomic_init_u64(&s->slots[i].lower_bound, 0);
    s->slots[i].dboid = InvalidOid;
    s->slots[i].pid = 0;
    s->slots[i].xact_start = 0;
  }
}

void attach_segment(void *segment) { shared = static_cast<Shared *>(segment); }

void release_slot() {
  if (my_slot && pg_atomic_read_u64(&my_slot->lower_bound) != 0) {
    pg_atomic_write_u64(&my_slot->lower_bound, 0);
  }
}

void on_xact(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_PRE_PREPARE:
      if (my_slot && pg_atomic_read_u64(&my_slot->lower_bound) != 0)
        ereport(ERROR, (errcode(sqlstate::prepare_not_supported),
                        errmsg("cannot PREPARE a transaction that appended pg_ves events"),
                        errhint("Append events in an ordinary transaction; a prepared "
                                "transaction would hold the read fence indefinitely.")));
      break;
    // Commit callbacks run after the commit became visible to new snapshots,
    // which is exactly when the bound may go.
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      release_slot();
      break;
    default:
      break;
  }
}

void on_exit(int, Datum) { release_slot(); }

Oid position_sequence() {
  Oid nsp = get_namespace_oid("ves", false);
  Oid seq = get_relname_relid("position_seq", nsp);
  if (!OidIsValid(seq)) elog(ERROR, "pg_ves: sequence ves.position_seq is missing");
  return seq;
}

// Reads the sequence's last value so a fresh server continues above every
// position handed out before it started.
uint64 sequence_last_value(Oid seqoid) {
  bool pushed = false;
  if (!ActiveSnapshotSet()) {
    PushActiveSnapshot(GetTransactionSnapshot());
    pushed = true;
  }
  spi_connect();
  char query[128];
  pg_snprintf(query, sizeof query,
              "SELECT coalesce(pg_catalog.pg_sequence_last_value(%u::pg_catalog.regclass), 0)",
              seqoid);
  if (SPI_execute(query, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
    elog(ERROR, "pg_ves: cannot read ves.position_seq");
  bool isnull = false;
  int64 value =
      DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  SPI_finish();
  if (pushed) PopActiveSnapshot();
  return value > 0 ? static_cast<uint64>(value) : 0;
}

// An unused entry, reclaiming those of dropped databases when none is free.
// Called with the lock held exclusively.
DatabaseHighWater *free_entry() {
  for (auto &db : shared->dbs)
    if (db.dboid == InvalidOid) return &db;
  for (auto &db : shared->dbs)
    if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(db.dboid))) return &db;
  return nullptr;
}

DatabaseHighWater *my_database() {
  require_shmem();
  Oid seqoid = position_sequence();
  DatabaseHighWater *entry = nullptr;
  LWLockAcquire(shared->lock, LW_SHARED);
  for (auto &db : shared->dbs)
    if (db.dboid == MyDatabaseId && db.seqoid == seqoid) entry = &db;
  LWLockRelease(shared->lock);
  if (!entry) {
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    for (auto &db : shared->dbs)
      if (db.dboid == MyDatabaseId) entry = &db;
    if (!entry) entry = free_entry();
    if (!entry) {
      LWLockRelease(shared->lock);
      ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                      errmsg("pg_ves serves at most %d databases per server", kMaxDatabases)));
    }
    if (entry->dboid != MyDatabaseId || entry->seqoid != seqoid) {
      entry->dboid = MyDatabaseId;
      entry->seqoid = seqoid;
      pg_atomic_write_u32(&entry->initialized, 0);
      pg_atomic_write_u64(&entry->high_water, 0);
    }
    LWLockRelease(shared->lock);
  }
  if (pg_atomic_read_u32(&entry->initialized) == 0) {
    uint64 last = sequence_last_value(seqoid);
    uint64 seen = pg_atomic_read_u64(&entry->high_water);
    while (seen < last && !pg_atomic_compare_exchange_u64(&entry->high_water, &seen, last)) {
    }
    pg_atomic_write_u32(&entry->initialized, 1);
  }
  return entry;
}

DatabaseHighWater *cached_db = nullptr;
Oid cached_seq = InvalidOid;

DatabaseHighWater *database_entry() {
  // The entry only changes when the extension is re-created, which changes
  // the sequence; checking its OID is two syscache probes.
  Oid seq = position_sequence();
  if (cached_db && cached_seq == seq && cached_db->seqoid == seq &&
      cached_db->dboid == MyDatabaseId && pg_atomic_read_u32(&cached_db->initialized))
    return cached_db;
  cached_db = my_database();
  cached_seq = seq;
  return cached_db;
}

}  // namespace

void require_shmem() { shmem::require(shared); }

bool preloaded() { return shared != nullptr; }

void request_shmem() {
  shmem::register_segment("pg_ves read fence", shmem_size, init_segment, attach_segment);
}

uint64 key_epoch() {
  require_shmem();
  return pg_atomic_read_u64(&shared->key_epoch);
}

// Runs in a commit callback: never raises, whatever was loaded.
void bump_key_epoch() {
  if (shared) pg_atomic_fetch_add_u64(&shared->key_epoch, 1);
}

void register_callbacks() { RegisterXactCallback(on_xact, nullptr); }

void before_position() {
  DatabaseHighWater *db = database_entry();
  if (!my_slot) {
    my_slot = &shared->slots[MyProc->pgprocno];
    before_shmem_exit(on_exit, 0);
  }
  if (pg_atomic_read_u64(&my_slot->lower_bound) != 0) return;
  my_slot->dboid = MyDatabaseId;
  my_slot->pid = MyProcPid;
  my_slot->xact_start = GetCurrentTransactionStartTimestamp();
  pg_write_barrier();
  // Any position this transaction takes from now on is above every position
  // handed out so far, so the high-water mark + 1 is a safe lower bound.
  pg_atomic_write_u64(&my_slot->lower_bound, pg_atomic_read_u64(&db->high_water) + 1);
  pg_memory_barrier();
}

void after_position(int64 position) {
  DatabaseHighWater *db = database_entry();
  uint64 seen = pg_atomic_read_u64(&db->high_water);
  uint64 pos = static_cast<uint64>(position);
  while (seen < pos && !pg_atomic_compare_exchange_u64(&db->high_water, &seen, pos)) {
  }
}

int64 current() {
  if (IsolationUsesXactSnapshot())
    ereport(ERROR, (errcode(sqlstate::isolation_not_supported),
                    errmsg("ves.read_all and ves.poll need READ COMMITTED isolation"),
                    errdetail("Under REPEATABLE READ or SERIALIZABLE the snapshot predates the "
                              "read fence, so a late commit could be skipped."),
                    errhint("Call them outside an explicit REPEATABLE READ or SERIALIZABLE "
                            "transaction.")));
  DatabaseHighWater *db = database_entry();
  uint64 fence = pg_atomic_read_u64(&db->high_water) + 1;
  pg_memory_barrier();
  for (int i = 0; i < shared->nslots; ++i) {
    Slot &slot = shared->slots[i];
    uint64 bound = pg_atomic_read_u64(&slot.lower_bound);
    pg_read_barrier();
    if (bound != 0 && slot.dboid == MyDatabaseId && bound < fence) fence = bound;
  }
  return static_cast<int64>(fence);
}

}  // namespace pgves::pg::fence

using namespace pgves::pg;

PGVES_FUNCTION(ves_read_fence) { return Int64GetDatum(fence::current()); }

// The transactions holding the fence back, for ves.read_fence_holders.
PGVES_FUNCTION(ves_read_fence_holders) {
  ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  shmem::require(fence::shared);
  InitMaterializedSRF(fcinfo, 0);
  for (int i = 0; i < fence::shared->nslots; ++i) {
    fence::Slot &slot = fence::shared->slots[i];
    uint64 bound = pg_atomic_read_u64(&slot.lower_bound);
    pg_read_barrier();
    if (bound == 0 || slot.dboid != MyDatabaseId) continue;
    Datum values[3] = {Int32GetDatum(slot.pid), Int64GetDatum(static_cast<int64>(bound)),
                       TimestampTzGetDatum(slot.xact_start)};
    bool nulls[3] = {false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return (Datum)0;
}

// ves._require_preload(): run first by the install script, so CREATE EXTENSION
// fails cleanly on a server that did not preload pg_ves instead of leaving an
// extension whose first append would need shared memory that is not there.
PGVES_FUNCTION(ves_require_preload) {
  fence::require_shmem();
  PG_RETURN_VOID();
}
