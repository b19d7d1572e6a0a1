// Who may be listening on ves_events, so that appenders send NOTIFY only when
// a session of their database can receive it.
//
// Sending NOTIFY takes a cluster-wide lock that PostgreSQL holds through the
// commit's WAL flush, so notifying appenders commit one at a time instead of
// sharing flushes. When pg_ves is preloaded, every backend runs its utility
// hook, which marks a backend that executes LISTEN ves_events (until it
// exits); an appending transaction then decides just before it commits
// whether any backend of its database is marked. A backend that starts to
// listen while an appender has decided not to notify waits for that
// appender's transaction to end, so it cannot miss a commit that comes after
// its LISTEN. Without preloading, appenders always notify.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::listeners {

// Only while shared_preload_libraries are being processed.
void request_shmem();
void install_hooks();

// Sends NOTIFY ves_events when the calling transaction commits, if a backend
// of this database may be listening (or always, when pg_ves was not
// preloaded). Idempotent within a transaction.
void notify_at_commit();

}  // namespace pgves::pg::listeners
