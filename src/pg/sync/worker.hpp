// The sync worker: a launcher started from shared_preload_libraries starts
// one worker per database in ves.databases; each drains that database's
// outbox over HTTP. Committing transactions that queued outbox rows set the
// worker's latch.
#pragma once

#include "pg/base/postgres.hpp"

#include <vector>

namespace pgves::pg::worker {

void request_shmem();
void register_launcher();
void install_hooks();

// The calling transaction queued outbox rows: wake this database's worker
// when it commits.
void wake_at_commit();
// Destinations or sync settings changed: workers reload them after commit,
// and appenders re-check whether any destination exists.
void destinations_changed_at_commit();
// Changes with every destination change; appenders cache per epoch.
uint64 destinations_epoch();

// NOTIFY ves_events for the calling transaction: when a worker serves this
// database, it sends the notification shortly after the commit (one for
// many commits) and this returns true; otherwise the caller sends it itself.
// Sending NOTIFY takes a cluster-wide lock held through the commit's WAL
// flush, which serialises every committing appender; one sender does not.
bool relay_notify_at_commit();

// For the running worker: whether it relays notifications, and how many
// commits have asked it to so far.
void worker_relays_notify(bool on);
uint64 worker_notify_requests();
// Records that a NOTIFY covered `requests`; returns the count now, which is
// larger if a commit asked meanwhile (it did not wake the worker).
uint64 worker_notify_relayed(uint64 requests);
// Whether a commit asked for outbox work since the last call (and clears it):
// a wake-up for a notification alone does not warrant a claim.
bool worker_take_outbox_wake();

// Who holds an outbox lease (ves.outbox.leased_by): this process's lease
// identity, unique across workers, backends and server restarts. A worker's
// is published in its slot while it runs; any other process (a backend in
// ves.push_events) draws one on first use. A committed lease whose identity
// is not among live_lease_owners() belongs to a process that is gone, and
// its rows may be claimed at once. (A backend's leases are never committed
// while it holds them: ves.push_events records every row it claimed before
// its transaction ends.)
int64 lease_owner();
std::vector<int64> live_lease_owners();

// For the running worker: its share of ves.worker_status.
void worker_report(int in_flight, uint64 delivered, uint64 failed);

}  // namespace pgves::pg::worker
