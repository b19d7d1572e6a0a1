// Agent keys: the Ed25519 keys that sign local events, their registry, and
// the server key that encrypts private keys at rest.
#pragma once

#include "core/crypto/crypto.hpp"
#include "core/ves/ves.hpp"
#include "pg/base/postgres.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pgves::pg::keys {

// What signing adds to an event.
struct Signature {
  pg_uuid_t agent_id;
  int32 key_id;
  char created_at[32];
  uint8 payload_plain_hash[32];
  uint8 agent_signature[64];
};

// Canonicalises a payload (RFC 8785) and returns its VES v1 plain hash.
// Raises VE020 for payloads that have no canonical form.
void payload_plain_hash(const Jsonb *payload, uint8 out[32]);

// Signs an event with the current local key of (tenant, store), creating one
// on first use. `sig->payload_plain_hash` must already be set. Requires SPI.
void sign(const pg_uuid_t &tenant, const pg_uuid_t &store, const pg_uuid_t &event_id,
          const text *entity_type, const text *entity_id, const text *event_type, Signature *sig);

// sign() in two steps, so that a batch signs on threads: prepare_signature
// runs on the backend's thread (it finds or creates the key through SPI,
// exactly as sign() does, fills `sig` but for agent_signature and computes
// the signing hash); the job's run() computes the Ed25519 signature, is pure
// C++ and may run on any thread. The job owns what it needs: it stays valid
// when the backend's key cache changes meanwhile.
struct SigningJob {
  core::crypto::Hash32 signing_hash{};
  std::shared_ptr<const core::crypto::SecretBytes> secret;
  std::int64_t created_unix_micros = 0;  // what sig->created_at was made from
  core::crypto::Signature64 signature{};
  void run();
};
SigningJob prepare_signature(const pg_uuid_t &tenant, const pg_uuid_t &store,
                             const pg_uuid_t &event_id, const text *entity_type,
                             const text *entity_id, const text *event_type, Signature *sig);

// Seals a credential (a destination secret, secret header values) under the
// server key with crypto_secretbox, exactly as agent private keys are sealed:
// nonce || box. Creates the server key file on first use.
std::vector<uint8> seal_secret(std::string_view secret);

// Opens what seal_secret made. Raises VE023 when the server key does not
// match or the box was altered.
std::string open_secret(const uint8 *box, size_t len);

// Runs ves.server_key_command in the postmaster at start, so the backends it
// forks inherit the server key; logs a warning when that fails.
void preload_server_key();

}  // namespace pgves::pg::keys
