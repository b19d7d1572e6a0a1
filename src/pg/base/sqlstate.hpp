// pg_ves' own SQLSTATEs, class VE. The README lists each with its meaning;
// keep the two in step.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::sqlstate {
constexpr int wrong_expected_version = MAKE_SQLSTATE('V', 'E', '0', '0', '1');
constexpr int idempotency_key_reused = MAKE_SQLSTATE('V', 'E', '0', '0', '2');
constexpr int event_id_reused = MAKE_SQLSTATE('V', 'E', '0', '0', '3');
constexpr int invalid_payload = MAKE_SQLSTATE('V', 'E', '0', '0', '4');
constexpr int payload_too_large = MAKE_SQLSTATE('V', 'E', '0', '0', '5');
constexpr int invalid_identifier = MAKE_SQLSTATE('V', 'E', '0', '0', '6');
constexpr int tenant_denied = MAKE_SQLSTATE('V', 'E', '0', '0', '7');
constexpr int event_immutable = MAKE_SQLSTATE('V', 'E', '0', '0', '8');
constexpr int invalid_batch = MAKE_SQLSTATE('V', 'E', '0', '0', '9');
constexpr int invalid_argument = MAKE_SQLSTATE('V', 'E', '0', '1', '0');
constexpr int null_argument = MAKE_SQLSTATE('V', 'E', '0', '1', '1');
constexpr int not_found = MAKE_SQLSTATE('V', 'E', '0', '1', '2');
constexpr int already_exists = MAKE_SQLSTATE('V', 'E', '0', '1', '3');
constexpr int prepare_not_supported = MAKE_SQLSTATE('V', 'E', '0', '1', '4');
constexpr int isolation_not_supported = MAKE_SQLSTATE('V', 'E', '0', '1', '5');
constexpr int invalid_uuid = MAKE_SQLSTATE('V', 'E', '0', '1', '6');
constexpr int conflict_closed = MAKE_SQLSTATE('V', 'E', '0', '3', '0');
constexpr int insufficient_stock = MAKE_SQLSTATE('V', 'E', '0', '3', '1');
constexpr int invalid_order_transition = MAKE_SQLSTATE('V', 'E', '0', '3', '2');
constexpr int reservation_closed = MAKE_SQLSTATE('V', 'E', '0', '3', '3');
constexpr int invalid_destination_url = MAKE_SQLSTATE('V', 'E', '0', '4', '0');
constexpr int invalid_destination_header = MAKE_SQLSTATE('V', 'E', '0', '4', '1');
constexpr int timeout_above_maximum = MAKE_SQLSTATE('V', 'E', '0', '4', '2');
// Inbound webhooks, security alerts, reconciliation (src/pg/sync/inbound,
// alerts, reconcile).
constexpr int inbound_forged = MAKE_SQLSTATE('V', 'E', '0', '5', '0');
constexpr int cannot_receive = MAKE_SQLSTATE('V', 'E', '0', '5', '1');
constexpr int inbound_unreadable = MAKE_SQLSTATE('V', 'E', '0', '5', '2');
constexpr int alert_acknowledged = MAKE_SQLSTATE('V', 'E', '0', '5', '3');
constexpr int reconcile_failed = MAKE_SQLSTATE('V', 'E', '0', '5', '4');
// pg_ves as the sequencer and ves_postgres destinations (src/pg/store/
// sequencer.cpp, src/pg/sync/remote_pg.cpp).
constexpr int sequencer_request_invalid = MAKE_SQLSTATE('V', 'E', '0', '6', '0');
constexpr int sequencer_batch_refused = MAKE_SQLSTATE('V', 'E', '0', '6', '1');
constexpr int sequencer_batch_too_large = MAKE_SQLSTATE('V', 'E', '0', '6', '2');
constexpr int sequencer_read_invalid = MAKE_SQLSTATE('V', 'E', '0', '6', '3');
constexpr int remote_pg_failed = MAKE_SQLSTATE('V', 'E', '0', '6', '4');
// Pulling from sources (src/pg/sync/pull).
constexpr int not_a_source = MAKE_SQLSTATE('V', 'E', '0', '6', '5');
constexpr int since_refused = MAKE_SQLSTATE('V', 'E', '0', '6', '6');
constexpr int pull_failed = MAKE_SQLSTATE('V', 'E', '0', '6', '7');
constexpr int source_paused = MAKE_SQLSTATE('V', 'E', '0', '6', '8');
constexpr int internal = MAKE_SQLSTATE('V', 'E', '0', '9', '9');
constexpr int invalid_json = MAKE_SQLSTATE('V', 'E', '0', '2', '0');
constexpr int invalid_envelope = MAKE_SQLSTATE('V', 'E', '0', '2', '1');
constexpr int verification_failed = MAKE_SQLSTATE('V', 'E', '0', '2', '2');
constexpr int key_unavailable = MAKE_SQLSTATE('V', 'E', '0', '2', '3');
constexpr int unknown_key = MAKE_SQLSTATE('V', 'E', '0', '2', '4');
// Applying events from other nodes (raised by ves._apply_ingested, 98_apply.sql).
constexpr int apply_not_stored = MAKE_SQLSTATE('V', 'E', '0', '7', '0');
constexpr int apply_unreadable = MAKE_SQLSTATE('V', 'E', '0', '7', '2');
}  // namespace pgves::pg::sqlstate
