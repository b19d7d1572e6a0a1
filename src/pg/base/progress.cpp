#include "pg/base/progress.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/shmem.hpp"

extern "C" {
#include "access/twophase.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/timestamp.h"
}

namespace pgves::pg::progress {
namespace {

// Written only by its own backend; readers may see a torn update of the
// counters, which is harmless for a progress report.
struct Slot {
  int pid;
  char command[32];
  int64 total;
  int64 done;
  int64 failed;
  TimestampTz started;
};

struct Shared {
  int nslots;
  Slot slots[FLEXIBLE_ARRAY_MEMBER];
};

Shared *shared = nullptr;
Slot *mine = nullptr;
// The command shown outlives the transactions that run it (the sync
// worker's reconciliation slices): only finish() or the process's exit ends it.
bool across_transactions = false;

void clear() {
  if (mine) mine->pid = 0;
}

int slot_count() { return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts; }
Size size() { return add_size(offsetof(Shared, slots), mul_size(slot_count(), sizeof(Slot))); }
void init(void *segment) {
  Shared *s = static_cast<Shared *>(segment);
  s->nslots = slot_count();
  memset(s->slots, 0, sizeof(Slot) * s->nslots);
}
void attach(void *segment) { shared = static_cast<Shared *>(segment); }
void on_exit(int, Datum) { clear(); }

// A failed or cancelled command ends with its transaction.
void on_xact(XactEvent event, void *) {
  if (!across_transactions && (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)) clear();
}

}  // namespace

void request_shmem() { shmem::register_segment("pg_ves progress", size, init, attach); }

void start(const char *command, int64 total, bool across) {
  shmem::require(shared);
  if (!mine) {
    mine = &shared->slots[MyProc->pgprocno];
    before_shmem_exit(on_exit, 0);
    RegisterXactCallback(on_xact, nullptr);
  }
  mine->pid = 0;
  across_transactions = across;
  pg_write_barrier();
  strlcpy(mine->command, command, sizeof mine->command);
  mine->total = total;
  mine->done = 0;
  mine->failed = 0;
  mine->started = GetCurrentTimestamp();
  pg_write_barrier();
  mine->pid = MyProcPid;
}

void update(int64 done, int64 failed) {
  if (!mine) return;
  mine->done = done;
  mine->failed = failed;
}

void finish() {
  across_transactions = false;
  clear();
}

}  // namespace pgves::pg::progress

using namespace pgves::pg;

PGVES_FUNCTION(ves_progress) {
  ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  shmem::require(progress::shared);
  InitMaterializedSRF(fcinfo, 0);
  for (int i = 0; i < progress::shared->nslots; ++i) {
    progress::Slot slot = progress::shared->slots[i];
    if (slot.pid == 0) continue;
    slot.command[sizeof slot.command - 1] = '\0';
    Datum values[6] = {Int32GetDatum(slot.pid),    CStringGetTextDatum(slot.command),
                       Int64GetDatum(slot.done),   Int64GetDatum(slot.total),
                       Int64GetDatum(slot.failed), TimestampTzGetDatum(slot.started)};
    bool nulls[6] = {false, false, false, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return (Datum)0;
}
