// Draining the outbox: claim, send, record. The sync worker runs it forever;
// ves.push_events runs one pass in the calling backend.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg {

// The worker's loop; returns only when asked to stop.
void run_delivery_loop();

// Gives back every outbox row this process holds a lease on
// (worker::lease_owner()), in a transaction of its own: call it outside any
// transaction, for example when the worker stops, so that the next worker
// sends those rows at once. (A worker that dies without calling it loses
// nothing either: its successor takes over the rows of a lease holder that
// is no longer alive.)
void release_my_leases();

}  // namespace pgves::pg
