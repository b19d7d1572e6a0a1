#include "pg/store/listeners.hpp"

#include "pg/base/shmem.hpp"

extern "C" {
#include "access/twophase.h"
#include "access/xact.h"
#include "commands/async.h"
#include "nodes/parsenodes.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/utility.h"
}

#include <cstring>

namespace pgves::pg::listeners {

namespace {

const char *const kChannel = "ves_events";

// One per PGPROC. Database oids, 0 for none.
struct Slot {
  pg_atomic_uint32 listening;  // this backend ran LISTEN ves_events (kept until it exits)
  pg_atomic_uint32 skipping;   // its committing transaction decided not to notify
  pg_atomic_uint32 xid;        // that transaction
};

struct Shared {
  int nslots;
  Slot slots[FLEXIBLE_ARRAY_MEMBER];
};

Shared *shared = nullptr;
Slot *my_slot = nullptr;
// The outermost (sub)transaction level that asked for a notification and has
// not rolled back; 0 for none.
int pending_level = 0;
bool callbacks_registered = false;
ProcessUtility_hook_type prev_utility = nullptr;

int slot_count() { return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts; }

Size shmem_size() {
  return add_size(offsetof(Shared, slots), mul_size(slot_count(), sizeof(Slot)));
}

void init_segment(void *segment) {
  auto *s = static_cast<Shared *>(segment);
  s->nslots = slot_count();
  for (int i = 0; i < s->nslots; ++i) {
    pg_atomic_init_u32(&s->slots[i].listening, 0);
    pg_atomic_init_u32(&s->slots[i].skipping, 0);
    pg_atomic_init_u32(&s->slots[i].xid, 0);
  }
}

void attach_segment(void *segment) { shared = static_cast<Shared *>(segment); }

void on_exit(int, Datum) {
  if (!my_slot) return;
  pg_atomic_write_u32(&my_slot->skipping, 0);
  pg_atomic_write_u32(&my_slot->listening, 0);
}

Slot *mine() {
  if (!my_slot && shared && MyProc) {
    my_slot = &shared->slots[MyProc->pgprocno];
    before_shmem_exit(on_exit, 0);
  }
  return my_slot;
}

// Just before the commit (before PostgreSQL queues this transaction's
// notifications): announce that this transaction may skip its NOTIFY, then
// look for listeners. A backend that marks itself listening at the same time
// either is seen here or sees this slot and waits for this transaction.
void decide(Slot *slot) {
  pg_atomic_write_u32(&slot->xid, GetTopTransactionIdIfAny());
  pg_write_barrier();
  pg_atomic_write_u32(&slot->skipping, MyDatabaseId);
  pg_memory_barrier();
  bool listened = false;
  for (int i = 0; i < shared->nslots && !listened; ++i)
    listened = pg_atomic_read_u32(&shared->slots[i].listening) == MyDatabaseId;
  if (listened) {
    Async_Notify(kChannel, nullptr);
    pg_atomic_write_u32(&slot->skipping, 0);
  }
}

void on_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_PRE_COMMIT) {
    if (pending_level > 0) {
      if (Slot *slot = mine())
        decide(slot);
      else
        Async_Notify(kChannel, nullptr);
    }
    return;
  }
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
      event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT) {
    pending_level = 0;
    if (my_slot) pg_atomic_write_u32(&my_slot->skipping, 0);
  }
}

// A subtransaction that rolls back takes its request with it, as it would
// take a NOTIFY; one that commits hands it to its parent.
void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
  int level = GetCurrentTransactionNestLevel();
  if (pending_level != level) return;
  if (event == SUBXACT_EVENT_COMMIT_SUB)
    pending_level = level - 1;
  else if (event == SUBXACT_EVENT_ABORT_SUB)
    pending_level = 0;
}

// Marks this backend as listening, then waits for every transaction of its
// database that has already decided not to notify: they commit before this
// LISTEN can take effect.
void start_listening() {
  Slot *slot = mine();
  if (!slot) return;
  pg_atomic_write_u32(&slot->listening, MyDatabaseId);
  pg_memory_barrier();
  for (int i = 0; i < shared->nslots; ++i) {
    Slot &other = shared->slots[i];
    if (&other == slot || pg_atomic_read_u32(&other.skipping) != MyDatabaseId) continue;
    pg_read_barrier();
    TransactionId xid = pg_atomic_read_u32(&other.xid);
    if (TransactionIdIsValid(xid) && !TransactionIdIsCurrentTransactionId(xid))
      XactLockTableWait(xid, nullptr, nullptr, XLTW_None);
  }
}

void on_utility(PlannedStmt *pstmt, const char *query, bool read_only,
                ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *env,
                DestReceiver *dest, QueryCompletion *qc) {
  if (IsA(pstmt->utilityStmt, ListenStmt) &&
      strcmp(castNode(ListenStmt, pstmt->utilityStmt)->conditionname, kChannel) == 0)
    start_listening();
  if (prev_utility)
    prev_utility(pstmt, query, read_only, context, params, env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query, read_only, context, params, env, dest, qc);
}

}  // namespace

void request_shmem() {
  shmem::register_segment("pg_ves listeners", shmem_size, init_segment, attach_segment);
}

void install_hooks() {
  prev_utility = ProcessUtility_hook;
  ProcessUtility_hook = on_utility;
}

void notify_at_commit() {
  if (!shared) {
    Async_Notify(kChannel, nullptr);
    return;
  }
  if (!callbacks_registered) {
    RegisterXactCallback(on_xact, nullptr);
    RegisterSubXactCallback(on_subxact, nullptr);
    callbacks_registered = true;
  }
  int level = GetCurrentTransactionNestLevel();
  if (pending_level == 0 || level < pending_level) pending_level = level;
}

}  // namespace pgves::pg::listeners
