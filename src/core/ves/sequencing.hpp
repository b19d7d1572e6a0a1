// pg_ves as a VES v1 sequencer: the rules of StateSet's ingest endpoint
// (test/mock/README.md, "Sequencer API as implemented by StateSet's server")
// that need no database: reading a pushed batch, the whole-request refusals,
// the per-event checks in the server's order, the replay comparison, the
// receipt and answer objects, and the bytes a batch commitment signs.
// src/pg/store/sequencer.cpp adds the key registry, storage and numbering.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/error.hpp"
#include "core/json/json.hpp"
#include "core/ves/ves.hpp"

namespace pgves::core::ves::sequencing {

// Most events one request may carry, and most bytes of one payload.
constexpr std::size_t max_events_per_batch = 1000;
constexpr std::size_t max_event_payload_size = 1048576;

// A whole request refused, as StateSet answers 4xx. code() is one of
// "invalid_body" (its 422/400: the body does not map to the ingest types),
// "invalid_batch" (400 INVALID_FIELD_VALUE) or "too_large" (413).
class RequestError : public Error {
 public:
  using Error::Error;
};

// One pushed envelope as the server's serde types read it: unknown fields
// ignored, hashes and the signature hex with or without 0x in either case,
// JSON null read as an absent optional field.
struct Pushed {
  Event event;  // payload/payload_encrypted as given; hashes as given
  std::optional<Uuid> command_id;
  std::optional<std::uint64_t> base_version;
  std::optional<std::int64_t> signature_scheme;  // agent_signature_scheme
  json::Value raw;                               // the envelope as received
};

// Reads a request: a JSON array of envelopes, or the ingest body
// {"agentId", "events": [...]} whose agentId must be agent. Applies the
// whole-request refusals in the server's order (empty, mixed stream,
// source_agent_id, count, lengths, payload presence and size). Throws
// RequestError.
std::vector<Pushed> read_request(const Uuid &agent, const json::Value &body);

// Reads one stored envelope (as read_request read it before).
Pushed read_envelope(const json::Value &envelope);

// A per-event rejection: reason (with its detail after a colon) and message.
struct Rejection {
  std::string reason;
  std::string message;
  // The security alert it raises: "event_payload_hash", "event_key",
  // "event_signature", or empty for none.
  std::string alert_kind;
};

// Version, schema, created_at and payload hash, in the server's order.
// Rejects encrypted payloads (schema_validation: payload_encrypted): pg_ves
// cannot check their cipher hash.
std::optional<Rejection> check_envelope(const Pushed &p);

// What the key registry says of (tenant, source_agent_id, agent_key_id).
struct AgentKey {
  bool found = false;
  PublicKey32 public_key{};
  std::string revoked_at;  // RFC 3339 UTC, empty when not revoked
};

// The key and the signature: the key must be registered and not revoked at
// the event's created_at; the scheme must be Ed25519 (absent, 0 or 1).
std::optional<Rejection> check_signature(const Pushed &p, const AgentKey &key);

// The server's replay test: every signed field, the payload as a JSON
// value, payload_encrypted, both hashes, the signature, command_id and
// base_version.
bool same_content(const Pushed &a, const Pushed &b);

// RFC 3339 UTC with microseconds: "...T07:35:41.291095+00:00" as chrono's
// to_rfc3339 writes receipts' sequencedAt, or with "Z" as reads serve it.
std::string format_micros(std::int64_t unix_micros, bool zulu);

// The receipt object of an ingest answer (camelCase, hex without 0x).
struct ReceiptFields {
  Uuid sequencer_id{};
  Uuid event_id{};
  std::uint64_t sequence_number = 0;
  std::string sequenced_at;
  Hash32 receipt_hash{};
  Signature64 signature{};
  std::int64_t key_version = 0;
};
json::Value receipt_json(const ReceiptFields &r);

// The 200 answer object; receipts and rejections are left out when empty,
// sequenceStart/End are null when nothing new was sequenced.
json::Value answer_json(const Uuid &batch_id, std::uint64_t accepted,
                        const std::vector<json::Value> &rejections,
                        const std::vector<json::Value> &receipts,
                        std::optional<std::uint64_t> start, std::optional<std::uint64_t> end,
                        std::uint64_t head);
json::Value rejection_json(const Uuid &event_id, const Rejection &r);

// What a batch commitment's sequencer signature signs (Ed25519 over these
// 32 bytes): SHA-256("PGVES_SEQUENCER_COMMITMENT_V1" || stream_id (32) ||
// start u64 BE || end u64 BE || merkle_root (32) || previous_root (32)).
Hash32 commitment_hash(const Hash32 &stream_id, std::uint64_t start, std::uint64_t end,
                       const Hash32 &merkle_root, const Hash32 &previous_root);

}  // namespace pgves::core::ves::sequencing
