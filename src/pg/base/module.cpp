// Library entry point: settings, shared memory and callbacks.
#include "pg/store/keys.hpp"
#include "pg/base/postgres.hpp"
#include "pg/base/progress.hpp"
#include "pg/store/listeners.hpp"
#include "pg/store/read_fence.hpp"
#include "pg/base/settings.hpp"
#include "pg/base/shmem.hpp"
#include "pg/sync/alerts.hpp"
#include "pg/sync/launcher.hpp"
#include "pg/sync/metrics.hpp"
#include "pg/sync/signals.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

void _PG_init(void) {
  pgves::pg::settings::define();
  pgves::pg::fence::register_callbacks();
  pgves::pg::launcher::install_hooks();
  // Shared memory can only be requested while the postmaster loads us; a
  // backend that loads pg_ves later gets the settings and a clear error from
  // anything that needs the fence.
  if (process_shared_preload_libraries_in_progress) {
    pgves::pg::fence::request_shmem();
    pgves::pg::progress::request_shmem();
    pgves::pg::signals::request_shmem();
    pgves::pg::launcher::request_shmem();
    pgves::pg::metrics::request_shmem();
    pgves::pg::alerts::request_shmem();
    pgves::pg::listeners::request_shmem();
    pgves::pg::listeners::install_hooks();
    pgves::pg::launcher::register_launcher();
    pgves::pg::shmem::install_hooks();
    pgves::pg::keys::preload_server_key();
  }
}
