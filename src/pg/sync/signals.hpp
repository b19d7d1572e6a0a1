// Commit signals: what a committing transaction tells the sync workers of its
// database, through a shared-memory mailbox per running worker. The outbox
// wake-up, the destinations epoch and NOTIFY relay requests are set from a
// commit callback that only sets flags and latches; nothing here knows how
// workers are started or stopped (see launcher.hpp).
//
// Each mailbox also publishes its worker's lease identity, so that anyone
// claiming outbox rows can tell a live lease holder from one that is gone.
#pragma once

#include "pg/base/postgres.hpp"

#include <vector>

namespace pgves::pg::signals {

void request_shmem();

// --- for transactions ---------------------------------------------------------

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

// --- for the running worker ---------------------------------------------------

// Opens this process's mailbox for its database (once connected) and closes
// it when the process exits: from then on commits in the database set its
// latch. A worker without a mailbox (all taken) is woken by its polls only.
void open_mailbox();
// Whether it relays notifications, and how many commits have asked it to so
// far.
void relays_notify(bool on);
uint64 notify_requests();
// Records that a NOTIFY covered `requests`; returns the count now, which is
// larger if a commit asked meanwhile (it did not wake the worker).
uint64 notify_relayed(uint64 requests);
// Whether a commit asked for outbox work since the last call (and clears it):
// a wake-up for a notification alone does not warrant a claim.
bool take_outbox_wake();

// --- lease identities -----------------------------------------------------------

// Who holds an outbox lease (ves.outbox.leased_by): this process's lease
// identity, unique across workers, backends and server restarts. A worker's
// is published in its mailbox while it runs; any other process (a backend in
// ves.push_events) draws one on first use. A committed lease whose identity
// is not among live_lease_owners() belongs to a process that is gone, and
// its rows may be claimed at once. (A backend's leases are never committed
// while it holds them: ves.push_events records every row it claimed before
// its transaction ends.)
int64 lease_owner();
std::vector<int64> live_lease_owners();

// --- security alerts (alerts.hpp) -----------------------------------------------

// Sets the latch of this database's workers now, whatever becomes of the
// calling transaction: a queued security alert is drained by the worker
// even when the call that detected it fails.
void wake_workers_now();

}  // namespace pgves::pg::signals
