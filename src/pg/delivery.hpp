// Draining the outbox: claim, send, record. The sync worker runs it forever;
// ves.push_events runs one pass in the calling backend.
#pragma once

#include "pg/postgres.hpp"

namespace pgves::pg {

// The worker's loop; returns only when asked to stop.
void run_delivery_loop();

}  // namespace pgves::pg
