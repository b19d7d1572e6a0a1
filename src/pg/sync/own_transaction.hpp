// One piece of the sync worker's periodic work (pulls, reconciliation,
// follow-ups) in a transaction of its own, outside any other.
#pragma once

#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/sync/deliverer.hpp"

extern "C" {
#include "access/xact.h"
#include "pgstat.h"
#include "utils/snapmgr.h"
}

#include <exception>

namespace pgves::pg {

// Whether the pg_ves extension is installed in this database (a catalog
// look-up in a transaction of its own; outside any other).
bool extension_present();

// After an error: rolls back the transaction it happened in (a failure to
// is logged) and says whether the extension has been dropped meanwhile.
bool rolled_back_extension_gone();

// Set when a step failed and the extension turned out to be gone (DROP
// EXTENSION under the running worker): the step's error, which only says
// that one of its objects does not exist, is not logged, and the worker
// loop drops its state and waits for CREATE EXTENSION (worker_loop.cpp).
inline bool extension_dropped = false;

// Runs fn (SPI connected) in a new transaction shown as `activity`; false
// when it failed, which is logged and rolled back, never thrown.
template <typename Fn>
bool in_own_transaction(const char *activity, Fn fn) {
  try {
    pg_call_void([&] {
      SetCurrentStatementStartTimestamp();
      StartTransactionCommand();
      PushActiveSnapshot(GetTransactionSnapshot());
      pgstat_report_activity(STATE_RUNNING, activity);
    });
    safe::spi_connect();
    fn();
    safe::spi_finish();
    pg_call_void([] {
      PopActiveSnapshot();
      CommitTransactionCommand();
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
    return true;
  } catch (const PgError &e) {
    // Copied first: the rollback frees the error's memory.
    const ErrorText error = error_text(e.data());
    if (rolled_back_extension_gone())
      extension_dropped = true;
    else
      log_error_text(activity, error);
    return false;
  } catch (const std::exception &e) {
    pg_call_void([&] { ereport(LOG, (errmsg("%s failed: %s", activity, e.what()))); });
  }
  try {
    pg_call_void([] { AbortCurrentTransaction(); });
  } catch (const std::exception &) {
  }
  return false;
}

}  // namespace pgves::pg
