#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto/crypto.hpp"
#include "core/json/json.hpp"

namespace pgves::core::ves {

using crypto::Hash32;
using crypto::PublicKey32;
using crypto::Signature64;
using Uuid = std::array<std::uint8_t, 16>;

// RFC 4122 text form; parsing accepts either case, formatting is lowercase.
Uuid parse_uuid(std::string_view text);
std::string format_uuid(const Uuid &id);

// Sequencer receipt, VES v1 section 6.4.
struct Receipt {
  Uuid sequencer_id{};
  std::uint64_t sequence_number = 0;
  std::string sequenced_at;
  Hash32 receipt_hash{};
  std::string signature_alg;                      // "ed25519", or "none" when unsigned
  std::vector<std::uint8_t> sequencer_signature;  // empty when signature_alg is "none"
};

// A VES v1 event envelope (section 6.1). payload is present for payload_kind 0
// and payload_encrypted for payload_kind 1; pg_ves carries the encrypted form
// through untouched because the signature already commits to its hash.
struct Event {
  std::uint32_t ves_version = 1;
  Uuid event_id{};
  Uuid tenant_id{};
  Uuid store_id{};
  Uuid source_agent_id{};
  std::uint32_t agent_key_id = 0;
  std::string entity_type;
  std::string entity_id;
  std::string event_type;
  std::string created_at;
  std::uint32_t payload_kind = 0;
  std::optional<json::Value> payload;
  std::optional<json::Value> payload_encrypted;
  Hash32 payload_plain_hash{};
  Hash32 payload_cipher_hash{};
  Signature64 agent_signature{};
  // Assigned by a sequencer, not covered by the agent signature.
  std::optional<std::uint64_t> sequence_number;
  std::optional<std::string> sequenced_at;
  std::optional<Receipt> sequencer_receipt;
};

// Section 5.2, plaintext payloads: SHA256("VES_PAYLOAD_PLAIN_V1" || JCS(payload)).
Hash32 payload_plain_hash(std::string_view canonical_payload);

// The same from any JSON text of the payload: parsed strictly, canonicalised
// (RFC 8785), hashed. Throws Error (invalid_json, non_finite_number, ...) for
// text with no canonical form. Pure and thread-safe.
Hash32 payload_plain_hash_of_json(std::string_view json_text);

// Section 6.2: the hash the agent signs.
Hash32 signing_hash(const Event &e);

// Fills payload_plain_hash (zeroing payload_cipher_hash) from payload for a
// plaintext event, then signs; secret_key is libsodium's 64-byte form.
void sign_event(Event &e, const crypto::SecretBytes &secret_key);

// Throws Error("hash_mismatch") when a plaintext event's payload does not hash
// to payload_plain_hash or its payload_cipher_hash is not zero.
void check_payload_hashes(const Event &e);

bool verify_signature(const Event &e, const PublicKey32 &public_key);

// Section 10.2.
Hash32 leaf_hash(const Uuid &tenant_id, const Uuid &store_id, std::uint64_t sequence_number,
                 const Hash32 &signing_hash, const Signature64 &agent_signature);

// Section 6.4.
Hash32 receipt_hash(const Uuid &tenant_id, const Uuid &store_id, const Uuid &event_id,
                    std::uint64_t sequence_number, const Hash32 &signing_hash);

// Section 12.2.
Hash32 stream_id(const Uuid &tenant_id, const Uuid &store_id);

// Sections 10.3-10.4.
const Hash32 &pad_leaf();
Hash32 node_hash(const Hash32 &left, const Hash32 &right);

// The events root over leaves padded to a power of two; all zeros when there
// are no leaves, the leaf itself when there is one.
Hash32 merkle_root(const std::vector<Hash32> &leaves);

// Section 11: sibling hashes bottom-up. Throws Error("invalid_proof_index")
// when index is not a leaf.
std::vector<Hash32> inclusion_proof(const std::vector<Hash32> &leaves, std::size_t index);

// Section 11.2, also refusing an index with bits above the proof's height so
// one proof cannot be claimed for several positions.
bool verify_inclusion(const Hash32 &leaf, const std::vector<Hash32> &proof, std::uint64_t index,
                      const Hash32 &root);

}  // namespace pgves::core::ves
