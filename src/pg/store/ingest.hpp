// Taking in an event signed elsewhere, as ves.ingest_event does and as the
// puller (src/pg/sync/pull.cpp) does for every event it pulls: the same
// checks and the same write, so that both refuse and store alike.
#pragma once

#include "core/ves/ves.hpp"
#include "pg/base/postgres.hpp"
#include "pg/store/append.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace pgves::pg::ingest {

// Why an event may not be stored.
struct Refusal {
  std::string alert_kind;  // event_payload_hash, event_key, event_signature; "" for no alert
  int sqlstate = 0;        // the error ves.ingest_event raises
  std::string message, detail, hint;
  std::string reason;  // for the alert
};

// What needs no database: a plaintext object payload whose hashes match.
std::optional<Refusal> check_content(const core::ves::Event &e);

// The agent's key in this database's registry (known, not revoked when the
// event was made) and the signature. SPI must be connected. sequenced_at,
// when given, is when a sequencer took the event in (its receipt's
// sequencedAt): an event a sequencer took in after the key was revoked is
// refused whatever date it claims, since whoever holds a revoked key can
// sign any date.
std::optional<Refusal> check_signature(const core::ves::Event &e,
                                       std::string_view sequenced_at = {});

// Stores a checked event exactly as signed (its id, agent, key, time,
// hashes, signature; the payload in canonical form); an event id already
// stored with the same content is a duplicate. SPI must be connected and
// stays connected.
AppendResult store(const core::ves::Event &e);

}  // namespace pgves::pg::ingest
