// The sync workers' lifecycle: a launcher started from
// shared_preload_libraries starts one worker per database in ves.databases
// (or asked for by ves.start_worker) and restarts one that exits; each worker
// has a slot with its identity and its share of ves.worker_status. What a
// commit tells a worker goes through signals.hpp, not through here.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::launcher {

void request_shmem();
void register_launcher();
// DROP DATABASE stops that database's worker first.
void install_hooks();

// For a worker once connected: takes its database's slot (the launcher and
// ves.worker_status see it running) until the process exits.
void attach_worker(const char *dbname);

// For the running worker: its share of ves.worker_status.
void report(int in_flight, uint64 delivered, uint64 failed);

}  // namespace pgves::pg::launcher
