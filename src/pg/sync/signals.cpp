// Commit signals: one shared-memory mailbox per running sync worker.
//
// A mailbox names its worker (pid, latch, database) and its lease identity
// under the spinlock; what commits touch (wake-ups, notify requests) are
// atomics, never taken under it. Code holding the spinlock copies plain
// values and nothing else: no allocation, no Postgres call, no atomics,
// nothing that can fail. The commit callback only sets flags and latches.
#include "pg/sync/signals.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/shmem.hpp"

extern "C" {
#include "access/xact.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace pgves::pg::signals {
namespace {

// One per sync worker that can run at once (launcher.cpp starts at most as
// many).
constexpr int kMaxMailboxes = 32;

struct Mailbox {
  int pid;  // 0 = free
  int procno;
  Oid dboid;
  bool relays_notify;  // the worker sends NOTIFY ves_events for appenders
  int64 lease_owner;   // the worker's lease identity (see lease_owner())
  // Touched at every commit: atomics, never under the spinlock. They are
  // never reset (a mailbox's next worker starts from the counts it finds),
  // so a commit that read a mailbox just before it changed hands only
  // causes a spare wake-up.
  pg_atomic_uint64 notify_requests;  // commits that asked it to
  pg_atomic_uint64 notify_relayed;   // requests covered by its last NOTIFY
  pg_atomic_uint32 outbox_woken;     // a commit queued outbox rows or changed destinations
};

struct Shared {
  slock_t mutex;  // guards the mailboxes' pid, procno, dboid, relays_notify, lease_owner
  pg_atomic_uint64 destinations_epoch;
  // Lease identities: a random epoch drawn each time shared memory is set up
  // (server start and every crash restart) and a generation counter, so an
  // identity is never reused by a later worker.
  uint32 lease_epoch;
  pg_atomic_uint32 lease_generation;
  Mailbox boxes[kMaxMailboxes];
};

Shared *shared = nullptr;
Mailbox *my_box = nullptr;  // this worker's, once opened
int64 my_lease_owner = 0;

Size size() { return sizeof(Shared); }

void init(void *segment) {
  auto *s = static_cast<Shared *>(segment);
  memset(s, 0, sizeof(Shared));
  SpinLockInit(&s->mutex);
  for (auto &box : s->boxes) {
    pg_atomic_init_u64(&box.notify_requests, 0);
    pg_atomic_init_u64(&box.notify_relayed, 0);
    pg_atomic_init_u32(&box.outbox_woken, 0);
  }
  pg_atomic_init_u64(&s->destinations_epoch, 1);
  if (!pg_strong_random(&s->lease_epoch, sizeof s->lease_epoch))
    s->lease_epoch = static_cast<uint32>(GetCurrentTimestamp() ^ MyProcPid);
  pg_atomic_init_u32(&s->lease_generation, 0);
}

void attach(void *segment) { shared = static_cast<Shared *>(segment); }

int64 next_lease_owner() {
  uint32 generation = pg_atomic_add_fetch_u32(&shared->lease_generation, 1) & 0x7fffffff;
  return static_cast<int64>((static_cast<uint64>(shared->lease_epoch) << 31) | generation) &
         INT64_MAX;
}

// --- the commit callback ------------------------------------------------------

bool wake_pending = false;
bool epoch_pending = false;
bool notify_pending = false;
bool xact_callback_registered = false;

void on_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_COMMIT && shared) {
    if (epoch_pending) pg_atomic_fetch_add_u64(&shared->destinations_epoch, 1);
    if (wake_pending || epoch_pending || notify_pending) {
      // Under the spinlock: which mailboxes serve this database (plain copies).
      int index[kMaxMailboxes], procnos[kMaxMailboxes];
      bool relays[kMaxMailboxes];
      int n = 0;
      SpinLockAcquire(&shared->mutex);
      for (int i = 0; i < kMaxMailboxes; ++i) {
        const Mailbox &box = shared->boxes[i];
        if (box.pid != 0 && box.dboid == MyDatabaseId) {
          index[n] = i;
          procnos[n] = box.procno;
          relays[n] = box.relays_notify;
          ++n;
        }
      }
      SpinLockRelease(&shared->mutex);
      for (int k = 0; k < n; ++k) {
        Mailbox &box = shared->boxes[index[k]];
        bool wake = false;
        if (notify_pending && relays[k]) {
          // Only the first request since the last NOTIFY wakes the worker;
          // the ones after it are covered by the NOTIFY it is about to send.
          // (fetch_add is a full barrier; the worker publishes relayed with
          // an exchange before it re-reads requests, so one side sees the
          // other and no request is left without a NOTIFY.)
          uint64 before = pg_atomic_fetch_add_u64(&box.notify_requests, 1);
          wake = before == pg_atomic_read_u64(&box.notify_relayed);
        }
        if (wake_pending || epoch_pending) {
          pg_atomic_write_u32(&box.outbox_woken, 1);
          wake = true;
        }
        if (wake && procnos[k] >= 0) SetLatch(&GetPGProcByNumber(procnos[k])->procLatch);
      }
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

void close_mailbox(int, Datum) {
  if (!my_box) return;
  SpinLockAcquire(&shared->mutex);
  my_box->pid = 0;
  my_box->lease_owner = 0;
  my_box->relays_notify = false;
  SpinLockRelease(&shared->mutex);
  my_box = nullptr;
}

}  // namespace

void request_shmem() { shmem::register_segment("pg_ves commit signals", size, init, attach); }

void wake_at_commit() {
  ensure_callback();
  wake_pending = true;
}

void destinations_changed_at_commit() {
  ensure_callback();
  epoch_pending = true;
}

uint64 destinations_epoch() {
  shmem::require(shared);
  return pg_atomic_read_u64(&shared->destinations_epoch);
}

bool relay_notify_at_commit() {
  if (!shared) return false;
  if (notify_pending) return true;
  bool relayed = false;
  SpinLockAcquire(&shared->mutex);
  for (auto &box : shared->boxes)
    if (box.pid != 0 && box.dboid == MyDatabaseId && box.relays_notify) relayed = true;
  SpinLockRelease(&shared->mutex);
  if (relayed) {
    ensure_callback();
    notify_pending = true;
  }
  return relayed;
}

void open_mailbox() {
  shmem::require(shared);
  my_lease_owner = next_lease_owner();
  Mailbox *mine = nullptr;
  SpinLockAcquire(&shared->mutex);
  for (auto &box : shared->boxes)
    if (box.pid == 0) {
      box.pid = MyProcPid;
      box.procno = MyProc->pgprocno;
      box.dboid = MyDatabaseId;
      box.relays_notify = false;
      box.lease_owner = my_lease_owner;
      mine = &box;
      break;
    }
  SpinLockRelease(&shared->mutex);
  my_box = mine;
  if (my_box) before_shmem_exit(close_mailbox, 0);
}

void relays_notify(bool on) {
  if (!my_box) return;
  SpinLockAcquire(&shared->mutex);
  my_box->relays_notify = on;
  SpinLockRelease(&shared->mutex);
}

uint64 notify_requests() { return my_box ? pg_atomic_read_u64(&my_box->notify_requests) : 0; }

uint64 notify_relayed(uint64 requests) {
  if (!my_box) return requests;
  pg_atomic_exchange_u64(&my_box->notify_relayed, requests);  // a full barrier
  return pg_atomic_read_u64(&my_box->notify_requests);
}

bool take_outbox_wake() { return my_box && pg_atomic_exchange_u32(&my_box->outbox_woken, 0) != 0; }

int64 lease_owner() {
  if (my_lease_owner == 0 && shared) my_lease_owner = next_lease_owner();
  // Without pg_ves preloaded there are no workers, only this backend.
  while (my_lease_owner == 0)
    if (!pg_strong_random(&my_lease_owner, sizeof my_lease_owner))
      my_lease_owner = MyProcPid;
    else
      my_lease_owner &= INT64_MAX;
  return my_lease_owner;
}

std::vector<int64> live_lease_owners() {
  if (!shared) return {};
  int64 owners[kMaxMailboxes];
  int n = 0;
  SpinLockAcquire(&shared->mutex);
  for (auto &box : shared->boxes)
    if (box.pid != 0 && box.lease_owner != 0) owners[n++] = box.lease_owner;
  SpinLockRelease(&shared->mutex);
  return std::vector<int64>(owners, owners + n);
}

void wake_workers_now() {
  if (!shared) return;
  int procnos[kMaxMailboxes];
  int n = 0;
  SpinLockAcquire(&shared->mutex);
  for (const auto &box : shared->boxes)
    if (box.pid != 0 && box.dboid == MyDatabaseId) procnos[n++] = box.procno;
  SpinLockRelease(&shared->mutex);
  for (int k = 0; k < n; ++k)
    if (procnos[k] >= 0) SetLatch(&GetPGProcByNumber(procnos[k])->procLatch);
}

}  // namespace pgves::pg::signals

using namespace pgves::pg;

// ves._wake_worker(): the worker of this database looks at its outbox after
// the calling transaction commits.
PGVES_FUNCTION(ves_wake_worker) {
  signals::wake_at_commit();
  PG_RETURN_VOID();
}

// ves._destinations_changed(): workers reload destinations after commit.
PGVES_FUNCTION(ves_destinations_changed) {
  signals::destinations_changed_at_commit();
  PG_RETURN_VOID();
}
