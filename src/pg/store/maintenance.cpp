// The maintenance path: a backend-local flag, set only through
// ves.begin_maintenance (granted to ves_admin) and cleared when the
// transaction ends, that lets the immutability triggers pass. A setting would
// not do: any role can SET a user setting.
#include "pg/base/boundary.hpp"

namespace {
bool maintenance_open = false;
bool callback_registered = false;

void end_of_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
      event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
    maintenance_open = false;
}
}  // namespace

PGVES_FUNCTION(ves_enable_maintenance) {
  if (!callback_registered) {
    RegisterXactCallback(end_of_xact, nullptr);
    callback_registered = true;
  }
  maintenance_open = true;
  PG_RETURN_VOID();
}

PGVES_FUNCTION(ves_in_maintenance) { PG_RETURN_BOOL(maintenance_open); }
