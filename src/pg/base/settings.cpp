#include "pg/base/settings.hpp"

#include "core/crypto/thread_pool.hpp"

extern "C" {
#include "utils/guc.h"
}

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace pgves::pg::settings {

int max_payload_size = 1024 * 1024;
char *tenant_id = nullptr;
bool require_tenant = false;
bool remote_password_required = true;
bool notify_on_append = true;
int idempotency_ttl = 86400;
int retention_months = 12;
char *server_key_file = nullptr;
char *server_key_command = nullptr;
char *databases = nullptr;
int max_timeout_ms = 60000;
char *destination_address_reject = nullptr;
char *worker_role = nullptr;
int crypto_threads = 1;
bool metrics = true;
int sync_history_retention = 30 * 24 * 60;

namespace {
// A check hook runs inside the GUC machinery, in C; it must not throw.
bool check_tenant_id(char **newval, void **extra, GucSource source) {
  if (*newval == nullptr || (*newval)[0] == '\0') return true;
  static const char *hex = "0123456789abcdefABCDEF";
  const char *s = *newval;
  int digits = 0;
  for (const char *p = s; *p; ++p) {
    if (*p == '-') continue;
    if (!strchr(hex, *p)) {
      GUC_check_errdetail("ves.tenant_id must be a UUID.");
      return false;
    }
    ++digits;
  }
  if (digits != 32) {
    GUC_check_errdetail("ves.tenant_id must be a UUID.");
    return false;
  }
  return true;
}

// ves.destination_address_reject: the check hook parses the list (with the
// core parser the tests cover) and hands the ranges to the assign hook as
// GUC "extra" data, which the GUC machinery owns and frees with free().
struct RejectList {
  size_t count;
  core::Cidr ranges[1];
};
const std::vector<core::Cidr> *current_reject = nullptr;

bool check_address_reject(char **newval, void **extra, GucSource source) {
  std::vector<core::Cidr> ranges;
  try {
    ranges = core::parse_cidr_list(*newval ? *newval : "");
  } catch (const std::exception &e) {
    // GUC_check_errdetail formats into Postgres memory; copy the text first.
    char detail[512];
    std::snprintf(detail, sizeof detail, "%s", e.what());
    GUC_check_errdetail("%s", detail);
    GUC_check_errhint(
        "List CIDR ranges separated by commas, e.g. '169.254.0.0/16, fe80::/10'; '' refuses "
        "nothing.");
    return false;
  }
  auto *list =
      static_cast<RejectList *>(malloc(sizeof(RejectList) + sizeof(core::Cidr) * ranges.size()));
  if (!list) return false;
  list->count = ranges.size();
  for (size_t i = 0; i < ranges.size(); ++i) list->ranges[i] = ranges[i];
  *extra = list;
  return true;
}

void assign_address_reject(const char *newval, void *extra) {
  static std::vector<core::Cidr> ranges;
  try {
    auto *list = static_cast<const RejectList *>(extra);
    ranges.assign(list->ranges, list->ranges + list->count);
  } catch (...) {
    // Out of memory: keep the previous list rather than refuse nothing.
  }
  current_reject = &ranges;
}

}  // namespace

const std::vector<core::Cidr> &address_reject() {
  static const std::vector<core::Cidr> none;
  return current_reject ? *current_reject : none;
}

void define() {
  DefineCustomIntVariable(
      "ves.max_payload_size", "Largest event payload pg_ves accepts, in bytes.",
      "An append whose payload or metadata is larger fails with SQLSTATE VE005.", &max_payload_size,
      1024 * 1024, 64, 256 * 1024 * 1024, PGC_SUSET, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "ves.tenant_id", "The tenant this session acts for.",
      "When set, pg_ves functions read and write only this tenant's events, and row-level "
      "security shows only its rows.",
      &tenant_id, "", PGC_USERSET, 0, check_tenant_id, nullptr, nullptr);
  DefineCustomBoolVariable(
      "ves.require_tenant", "Refuse pg_ves calls from sessions that set no ves.tenant_id.",
      "Set it per application role with ALTER ROLE ... SET ves.require_tenant = on.",
      &require_tenant, false, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "ves.remote_password_required",
      "Connect to a remote pg_ves (ves_postgres) only when it asks for the conninfo's password.",
      "pg_ves connects as the server's operating-system account, which a remote using peer or "
      "trust authentication (such as this server's own socket) would let in as any role; only a "
      "superuser can turn this off, for remotes trusted that way.",
      &remote_password_required, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("ves.notify", "Send NOTIFY ves_events when a transaction appends.",
                           nullptr, &notify_on_append, true, PGC_SUSET, 0, nullptr, nullptr,
                           nullptr);
  DefineCustomIntVariable(
      "ves.retention_months", "How many months of events retention keeps; 0 keeps every month.",
      "The sync worker runs ves.drop_expired_partitions() once a day: it drops older month "
      "partitions, but never one that holds events a subscription has not acknowledged or the "
      "outbox has not delivered.",
      &retention_months, 12, 0, 1200, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "ves.server_key_file", "File holding the key that encrypts agent private keys at rest.",
      "Relative paths are relative to the data directory. Created with mode 0600 on first use.",
      &server_key_file, "pg_ves_server.key", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineCustomStringVariable(
      "ves.databases", "Databases whose outbox the pg_ves sync workers drain (comma-separated).",
      "The launcher keeps one worker per listed database; reload to apply.", &databases, "",
      PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "ves.idempotency_ttl", "How long the response of a keyed state, stock or order call is kept.",
      "A repeat with the same idempotency key within this time returns the first response; the "
      "sync worker drops expired records a day partition at a time.",
      &idempotency_ttl, 86400, 60, 365 * 86400, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "ves.server_key_command",
      "Command that prints the key that encrypts agent private keys at rest.",
      "Run through the shell from the data directory by the postmaster at start (backends inherit "
      "the key) and by a backend after a reload that changed it; its "
      "standard output must be the 32-byte key as 64 hexadecimal digits. Takes precedence over "
      "ves.server_key_file when set.",
      &server_key_command, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "ves.max_timeout_ms", "Upper bound on any destination's timeout_ms.",
      "ves.create_destination and ves.alter_destination refuse a larger timeout_ms; the worker "
      "waits at most this long for any request.",
      &max_timeout_ms, 60000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "ves.destination_address_reject",
      "Address ranges (CIDR, comma-separated) the sync worker never connects to.",
      "Checked on every resolved address right before libcurl connects, so a host name that "
      "resolves into a listed range is refused too. '' refuses nothing.",
      &destination_address_reject, "169.254.0.0/16, fe80::/10", PGC_SIGHUP, GUC_SUPERUSER_ONLY,
      check_address_reject, assign_address_reject, nullptr);
  DefineCustomStringVariable(
      "ves.worker_role", "Role the pg_ves sync workers connect as ('' = the bootstrap superuser).",
      "It must exist, have LOGIN and not be a superuser; grant it ves_worker. The launcher checks "
      "it before "
      "starting a worker and logs a warning (and starts none) while it cannot be used; reload to "
      "apply.",
      &worker_role, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  // ves.crypto_threads: the default is the number of cores the server may
  // run on (at most 16), known only when the library loads.
  DefineCustomIntVariable(
      "ves.crypto_threads",
      "Threads one backend uses to sign a batch (ves.append_batch) and to verify a range of "
      "events (ves.verify_events).",
      "The threads do only canonical JSON, hashing and Ed25519; every database call stays on the "
      "backend's own thread, and the threads end with the call. 1 does all the work on the "
      "backend's own thread.",
      &crypto_threads, static_cast<int>(std::min(core::available_cores(), 16u)), 1,
      static_cast<int>(core::ThreadPool::kMaxThreads), PGC_USERSET, 0, nullptr, nullptr, nullptr);
  // Delivery metrics (src/pg/sync/metrics.cpp).
  DefineCustomBoolVariable(
      "ves.metrics", "Count deliveries and their latencies in shared memory.",
      "Feeds ves.sync_metrics(), ves.sync_history and ves.prometheus_metrics(); off only for "
      "measuring what counting costs.",
      &metrics, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "ves.sync_history_retention", "How long ves.sync_history keeps its per-minute rollups.",
      "The sync worker drops older rows when it writes the next rollup.", &sync_history_retention,
      30 * 24 * 60, 60, 10 * 365 * 24 * 60, PGC_SIGHUP, GUC_UNIT_MIN, nullptr, nullptr, nullptr);
  MarkGUCPrefixReserved("ves");
}

}  // namespace pgves::pg::settings
