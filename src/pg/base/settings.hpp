// pg_ves' server settings (ves.*), defined in _PG_init and read by the
// Postgres layer. The README documents each one.
#pragma once

#include "core/delivery/address_filter.hpp"
#include "pg/base/postgres.hpp"

#include <vector>

namespace pgves::pg::settings {
extern int max_payload_size;           // ves.max_payload_size, bytes
extern char *tenant_id;                // ves.tenant_id, the session's tenant ('' = none)
extern bool require_tenant;            // ves.require_tenant
extern bool remote_password_required;  // ves.remote_password_required
extern bool notify_on_append;          // ves.notify
extern int idempotency_ttl;            // ves.idempotency_ttl, seconds
extern int retention_months;           // ves.retention_months
extern char *server_key_file;          // ves.server_key_file
extern char *server_key_command;       // ves.server_key_command
extern char *databases;                // ves.databases
extern char *worker_role;              // ves.worker_role ('' = bootstrap superuser)
extern int max_timeout_ms;  // ves.max_timeout_ms, the cap on any destination's timeout_ms
extern char *destination_address_reject;  // ves.destination_address_reject, CIDR list
extern int crypto_threads;  // ves.crypto_threads: threads signing a batch / verifying a range

// Delivery metrics (src/pg/sync/metrics.cpp).
extern bool metrics;                // ves.metrics
extern int sync_history_retention;  // ves.sync_history_retention, minutes

// The parsed ves.destination_address_reject of this process (never null).
const std::vector<core::Cidr> &address_reject();

void define();
}  // namespace pgves::pg::settings
