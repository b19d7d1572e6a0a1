// Security alerts that outlive the call that detects them.
//
// A forged webhook or event is refused with an error, which rolls back the
// refusing transaction: an alert written there would vanish with it. So the
// detecting call puts the alert into a small fixed-size queue in shared
// memory and sets the latch of its database's sync worker, which writes it
// to ves.security_alerts and sends NOTIFY ves_security in a transaction of
// its own (ves._drain_security_alerts, which any ves_admin may also call).
// Every alert is also written to the server log as one LOG line (kind,
// source, tenant, reason; never a secret, never the raw message); when the
// queue is full or pg_ves is not preloaded that line is all there is.
#pragma once

#include "pg/base/postgres.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgves::pg::alerts {

struct Alert {
  std::string kind;      // webhook_signature, event_signature, event_payload_hash, event_key
  std::string source;    // the destination's name, or "ves.ingest_event"
  std::string reason;    // why it was refused (no secret)
  std::string_view raw;  // the message as received; the first kRawMax bytes are kept
  std::optional<pg_uuid_t> tenant, store, event_id;
  std::optional<int64> sequence_number;
};

// Bytes of a message kept with its alert.
constexpr std::size_t kRawMax = 8192;

void request_shmem();

// Queues the alert for this database (and logs it). Never raises: a
// failure to queue is logged instead.
void report(const Alert &alert) noexcept;

// Whether alerts of this database wait in the queue.
bool pending();

// Writes this database's queued alerts to ves.security_alerts and notifies
// ves_security, in the current transaction (SPI connected inside). The
// slots are freed when it commits and offered again if it aborts. Returns
// how many were written.
int drain();

}  // namespace pgves::pg::alerts
