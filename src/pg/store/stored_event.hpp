// A row of ves.events as a VES v1 event, for verification and export.
#pragma once

#include "core/crypto/crypto.hpp"
#include "core/ves/ves.hpp"
#include "pg/base/postgres.hpp"
#include "pg/base/safe.hpp"

#include <map>
#include <string>
#include <tuple>

namespace pgves::pg {

// The select list that read_stored_event expects, in order.
extern const char *const kStoredEventColumns;

struct StoredEvent {
  core::ves::Event event;  // payload left empty; see payload_text
  std::string payload_text;
  int64 position = 0;
  int64 entity_version = 0;  // the event's version in its entity's stream
};

// Reads row `row` of an SPI result selected with kStoredEventColumns. Pass
// the table itself: later SPI calls replace SPI_tuptable.
StoredEvent read_stored_event(const SPITupleTable *table, uint64 row);

// The stored event with this id that the session may see; SPI must be
// connected. Raises VE012 when there is none, VE010 when tenants share the id
// and the session set no ves.tenant_id to choose.
StoredEvent fetch_stored_event(const pg_uuid_t &event_id);

// The stored event named by a SQL function's event_id argument (VE011 when
// NULL), read in its own SPI connection.
StoredEvent stored_event_argument(FunctionCallInfo fcinfo, int argno);

core::ves::Uuid to_core_uuid(const pg_uuid_t &u);
pg_uuid_t to_pg_uuid(const core::ves::Uuid &u);

// Public keys looked up once per (tenant, agent, key id) for one command.
class KeyRegistry {
 public:
  struct Key {
    bool found = false;
    core::crypto::PublicKey32 public_key{};
    std::string revoked_at;  // RFC 3339 UTC millis, empty when not revoked
  };
  const Key &lookup(const core::ves::Uuid &tenant, const core::ves::Uuid &agent, uint32 key_id);

 private:
  std::map<std::tuple<core::ves::Uuid, core::ves::Uuid, uint32>, Key> keys_;
};

// Why an event fails verification, or nullptr when it verifies.
const char *verification_failure(const StoredEvent &e, KeyRegistry &keys);

// The two halves of verification_failure, pure C++ (no PostgreSQL call, no
// palloc) so that range verification runs them on threads: the payload's hash
// (payload_not_canonicalizable, payload_hash_mismatch), then the key and the
// signature (unknown_key, revoked_key, bad_signature) given the key the
// registry returned for the event's (tenant, agent, key id).
const char *payload_failure(const StoredEvent &e);
const char *signature_failure(const StoredEvent &e, const KeyRegistry::Key &key);

// The text of a jsonb value and a jsonb from text (src/pg/base/safe.hpp).
using safe::jsonb_from_text;
using safe::jsonb_text;

}  // namespace pgves::pg
