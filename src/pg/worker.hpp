// The sync worker: a launcher started from shared_preload_libraries starts
// one worker per database in ves.databases; each drains that database's
// outbox over HTTP. Committing transactions that queued outbox rows set the
// worker's latch.
#pragma once

#include "pg/postgres.hpp"

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

// For the running worker: its share of ves.worker_status.
void worker_report(int in_flight, uint64 delivered, uint64 failed);

}  // namespace pgves::pg::worker
