// The write path shared by ves.append, ves.append_batch and ves.ingest_event.
#pragma once

#include "pg/store/keys.hpp"
#include "pg/base/postgres.hpp"

namespace pgves::pg {

struct AppendInput {
  pg_uuid_t tenant;
  pg_uuid_t store;
  text *entity_type;
  text *entity_id;
  text *event_type;
  Jsonb *payload;
  bool has_expected;
  int64 expected;
  text *idempotency_key;  // nullable
  Jsonb *metadata;
  text *source;
  bool has_id;
  pg_uuid_t id;
  // Set by ves.ingest_event: the event arrives signed by its own agent.
  bool presigned;
  keys::Signature sig;
};

struct AppendResult {
  pg_uuid_t event_id;
  int64 position;
  int64 entity_version;
  bool duplicate;
};

// Appends one event; SPI must be connected. Only trivially destructible
// state: callers may be plain C-style frames.
AppendResult append_one(AppendInput &in);

// Sends the wake-up for consumers (once per transaction).
void notify_appended();

}  // namespace pgves::pg
