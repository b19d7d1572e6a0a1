// pg_ves as a VES v1 sequencer (README "pg_ves as the sequencer"):
// ves.sequence_events takes pushed envelopes and answers exactly as
// StateSet's ingest endpoint does (src/core/ves/sequencing.hpp holds the
// rules); ves.sequencer_identity names the key that signs receipts and batch
// commitments. Numbers are assigned under a lock on the stream's row of
// ves.sequencer_streams only, in the caller's transaction, so they are
// gapless per (tenant, store) and unrelated streams never wait on each other.
#include "core/crypto/crypto.hpp"
#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/ves/sequencing.hpp"
#include "core/ves/ves.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/jsonb_value.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/store/keys.hpp"
#include "pg/store/stored_event.hpp"
#include "pg/sync/alerts.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/timestamp.h"
}

#include <sodium.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace pgves::pg;
namespace ves = pgves::core::ves;
namespace seq = pgves::core::ves::sequencing;
namespace json = pgves::core::json;
namespace crypto = pgves::core::crypto;

namespace {

struct Identity {
  ves::Uuid id{};
  ves::PublicKey32 public_key{};
  int32 key_version = 0;
  std::vector<uint8> secret_box;
};

// The database's sequencer key, created on first use. SPI is connected.
Identity load_identity() {
  static SavedPlan select = {
      "SELECT sequencer_id, public_key, key_version, secret_box FROM ves.sequencer_key",
      0,
      {},
      nullptr};
  static SavedPlan insert = {
      "INSERT INTO ves.sequencer_key (sequencer_id, public_key, secret_box) "
      "VALUES (pg_catalog.gen_random_uuid(), $1, $2) ON CONFLICT DO NOTHING",
      2,
      {BYTEAOID, BYTEAOID},
      nullptr};
  for (int attempt = 0; attempt < 2; ++attempt) {
    safe::spi_run(select, nullptr, nullptr, false, SPI_OK_SELECT, 1);
    if (SPI_processed == 1) {
      Identity out;
      bool isnull;
      out.id = to_core_uuid(*DatumGetUUIDP(safe::spi_datum(0, 1, &isnull)));
      const std::vector<uint8> pk = safe::bytea_bytes(safe::spi_datum(0, 2, &isnull));
      std::memcpy(out.public_key.data(), pk.data(), std::min<size_t>(pk.size(), 32));
      out.key_version = DatumGetInt32(safe::spi_datum(0, 3, &isnull));
      out.secret_box = safe::bytea_bytes(safe::spi_datum(0, 4, &isnull));
      return out;
    }
    crypto::init();
    std::array<uint8, 32> seed;
    randombytes_buf(seed.data(), seed.size());
    const crypto::Ed25519Keypair kp = crypto::sign_seed_keypair(seed);
    const std::vector<uint8> box = keys::seal_secret(
        std::string_view(reinterpret_cast<const char *>(seed.data()), seed.size()));
    sodium_memzero(seed.data(), seed.size());
    Datum args[2] = {safe::bytea_datum(kp.public_key.data(), 32),
                     safe::bytea_datum(box.data(), box.size())};
    safe::spi_run(insert, args, nullptr, false, SPI_OK_INSERT);
  }
  throw VesError(sqlstate::internal, "the sequencer key could not be created");
}

crypto::SecretBytes open_identity(const Identity &id) {
  std::string seed = keys::open_secret(id.secret_box.data(), id.secret_box.size());
  crypto::Ed25519Keypair kp = crypto::sign_seed_keypair(seed);
  sodium_memzero(seed.data(), seed.size());
  return std::move(kp.secret_key);
}

int64 unix_micros(TimestampTz t) {
  return t + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * static_cast<int64>(USECS_PER_DAY);
}

ves::Uuid random_uuid() {
  ves::Uuid u;
  randombytes_buf(u.data(), u.size());
  u[6] = static_cast<uint8>((u[6] & 0x0f) | 0x40);
  u[8] = static_cast<uint8>((u[8] & 0x3f) | 0x80);
  return u;
}

int sqlstate_of(const std::string &code) {
  if (code == "too_large") return sqlstate::sequencer_batch_too_large;
  if (code == "invalid_batch") return sqlstate::sequencer_batch_refused;
  return sqlstate::sequencer_request_invalid;
}

const char *hint_of(const std::string &code) {
  if (code == "too_large") return "Push at most 1000 events per call, each payload at most 1 MiB.";
  if (code == "invalid_batch")
    return "Push the events of one (tenant, store), signed by agent_id, with non-empty "
           "entity_type, entity_id and event_type.";
  return "Pass a JSON array of VES v1 envelopes (as ves.export_event gives them), or "
         "{\"agentId\": ..., \"events\": [...]}.";
}

void alert(const seq::Pushed &p, const seq::Rejection &r) {
  const std::string raw = pgves::core::jcs::canonicalize(p.raw);
  alerts::Alert a;
  a.kind = r.alert_kind;
  a.source = "ves.sequence_events";
  a.reason = r.reason.substr(0, r.reason.find(':')) + ": " + r.message;
  a.raw = raw;
  a.tenant = to_pg_uuid(p.event.tenant_id);
  a.store = to_pg_uuid(p.event.store_id);
  a.event_id = to_pg_uuid(p.event.event_id);
  alerts::report(a);
}

}  // namespace

// ves.sequence_events(agent_id uuid, envelopes jsonb) -> jsonb: StateSet's
// 200 ingest answer.
PGVES_FUNCTION(ves_sequence_events) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    throw VesError(sqlstate::null_argument, "agent_id and envelopes must not be NULL", {},
                   "Pass the pushing agent's id and a JSON array of VES v1 envelopes.");
  const ves::Uuid agent = to_core_uuid(*PG_GETARG_UUID_P(0));
  const json::Value body = jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(1)));
  std::vector<seq::Pushed> pushed;
  try {
    pushed = seq::read_request(agent, body);
  } catch (const seq::RequestError &e) {
    throw VesError(sqlstate_of(e.code()), e.what(), {}, hint_of(e.code()));
  }
  const ves::Uuid tenant = pushed[0].event.tenant_id, store = pushed[0].event.store_id;
  pg_uuid_t pg_tenant = to_pg_uuid(tenant), pg_store = to_pg_uuid(store);
  safe::check_tenant_access(pg_tenant);

  static SavedPlan make_stream = {
      "INSERT INTO ves.sequencer_streams (tenant_id, store_id) VALUES ($1, $2) "
      "ON CONFLICT DO NOTHING",
      2,
      {UUIDOID, UUIDOID},
      nullptr};
  static SavedPlan lock_stream = {
      "SELECT head FROM ves.sequencer_streams WHERE tenant_id = $1 AND store_id = $2 FOR UPDATE",
      2,
      {UUIDOID, UUIDOID},
      nullptr};
  static SavedPlan find_event = {
      "SELECT store_id, envelope, receipt FROM ves.sequencer_events "
      "WHERE tenant_id = $1 AND event_id = $2",
      2,
      {UUIDOID, UUIDOID},
      nullptr};
  static SavedPlan find_command = {
      "SELECT 1 FROM ves.sequencer_events WHERE tenant_id = $1 AND store_id = $2 "
      "AND command_id = $3",
      3,
      {UUIDOID, UUIDOID, UUIDOID},
      nullptr};
  static SavedPlan entity_version = {
      "SELECT version FROM ves.sequencer_entities WHERE tenant_id = $1 AND store_id = $2 "
      "AND entity_type = $3 AND entity_id = $4",
      4,
      {UUIDOID, UUIDOID, TEXTOID, TEXTOID},
      nullptr};
  static SavedPlan bump_entity = {
      "INSERT INTO ves.sequencer_entities AS s (tenant_id, store_id, entity_type, entity_id, "
      "version) VALUES ($1, $2, $3, $4, 1) ON CONFLICT (tenant_id, store_id, entity_type, "
      "entity_id) DO UPDATE SET version = s.version + 1",
      4,
      {UUIDOID, UUIDOID, TEXTOID, TEXTOID},
      nullptr};
  static SavedPlan insert_event = {
      "INSERT INTO ves.sequencer_events (tenant_id, store_id, sequence_number, event_id, "
      "source_agent_id, agent_key_id, entity_type, entity_id, event_type, created_at, "
      "command_id, base_version, agent_signature_scheme, envelope, payload_canonical, "
      "payload_plain_hash, agent_signature, signing_hash, leaf_hash, receipt_hash, receipt, "
      "sequenced_at) "
      "SELECT $1, $2, $3, $4, (e->>'source_agent_id')::uuid, "
      "(e->>'agent_key_id')::numeric::bigint, e->>'entity_type', e->>'entity_id', "
      "e->>'event_type', e->>'created_at', (e->>'command_id')::uuid, "
      "(e->>'base_version')::numeric::bigint, (e->>'agent_signature_scheme')::numeric::int, "
      "e, $6, $7, $8, $9, $10, $11, $12, $13 FROM (SELECT $5::jsonb AS e) x",
      13,
      {UUIDOID, UUIDOID, INT8OID, UUIDOID, JSONBOID, TEXTOID, BYTEAOID, BYTEAOID, BYTEAOID,
       BYTEAOID, BYTEAOID, JSONBOID, TIMESTAMPTZOID},
      nullptr};
  static SavedPlan set_head = {
      "UPDATE ves.sequencer_streams SET head = $3, last_sequenced_at = $4 "
      "WHERE tenant_id = $1 AND store_id = $2",
      4,
      {UUIDOID, UUIDOID, INT8OID, TIMESTAMPTZOID},
      nullptr};

  safe::spi_connect();
  const Identity identity = load_identity();
  Datum stream_args[2] = {UUIDPGetDatum(&pg_tenant), UUIDPGetDatum(&pg_store)};
  safe::spi_run(make_stream, stream_args, nullptr, false, SPI_OK_INSERT);
  safe::spi_run(lock_stream, stream_args, nullptr, false, SPI_OK_SELECT, 1);
  uint64 head = static_cast<uint64>(safe::spi_int64(0, 1, 0));

  std::vector<json::Value> rejections, receipts;
  auto reject = [&](const seq::Pushed &p, const seq::Rejection &r) {
    rejections.push_back(seq::rejection_json(p.event.event_id, r));
  };

  // 1. Replays: the event id already stored.
  std::vector<const seq::Pushed *> pending;
  std::set<ves::Uuid> seen;
  for (const seq::Pushed &p : pushed) {
    const std::string id = ves::format_uuid(p.event.event_id);
    if (!seen.insert(p.event.event_id).second) {
      reject(p, {"duplicate_event_id", "Event " + id + " duplicated in batch", ""});
      continue;
    }
    pg_uuid_t pg_id = to_pg_uuid(p.event.event_id);
    Datum args[2] = {UUIDPGetDatum(&pg_tenant), UUIDPGetDatum(&pg_id)};
    safe::spi_run(find_event, args, nullptr, false, SPI_OK_SELECT, 1);
    if (SPI_processed == 0) {
      pending.push_back(&p);
      continue;
    }
    bool isnull;
    const ves::Uuid old_store = to_core_uuid(*DatumGetUUIDP(safe::spi_datum(0, 1, &isnull)));
    const std::string old_envelope =
        safe::jsonb_text(safe::jsonb_detoast(safe::spi_datum(0, 2, &isnull)));
    const std::string old_receipt =
        safe::jsonb_text(safe::jsonb_detoast(safe::spi_datum(0, 3, &isnull)));
    if (old_store != store) {
      reject(p, {"duplicate_event_id", "Event ID already exists", ""});
    } else if (!seq::same_content(seq::read_envelope(json::parse(old_envelope)), p)) {
      reject(p, {"duplicate_event_id", "Event ID already exists with different contents", ""});
    } else {
      receipts.push_back(json::parse(old_receipt));
    }
  }

  // 2. Version, schema, payload hash, key, signature; commands within the batch.
  std::vector<const seq::Pushed *> candidates;
  std::set<ves::Uuid> batch_commands;
  KeyRegistry registry;
  for (const seq::Pushed *p : pending) {
    std::optional<seq::Rejection> bad = seq::check_envelope(*p);
    if (!bad) {
      const KeyRegistry::Key &k =
          registry.lookup(tenant, p->event.source_agent_id, p->event.agent_key_id);
      seq::AgentKey key;
      key.found = k.found;
      key.public_key = k.public_key;
      key.revoked_at = k.revoked_at;
      bad = seq::check_signature(*p, key);
    }
    if (bad) {
      if (!bad->alert_kind.empty()) alert(*p, *bad);
      reject(*p, *bad);
      continue;
    }
    if (p->command_id && !batch_commands.insert(*p->command_id).second) {
      reject(*p, {"duplicate_command_id",
                  "Command " + ves::format_uuid(*p->command_id) + " duplicated in batch", ""});
      continue;
    }
    candidates.push_back(p);
  }

  // 3. Commands already processed, base versions, numbers.
  std::optional<uint64> start, end;
  uint64 accepted = 0;
  TimestampTz last_at = 0;
  std::optional<crypto::SecretBytes> secret;
  for (const seq::Pushed *p : candidates) {
    const ves::Event &e = p->event;
    if (p->command_id) {
      pg_uuid_t cmd = to_pg_uuid(*p->command_id);
      Datum args[3] = {UUIDPGetDatum(&pg_tenant), UUIDPGetDatum(&pg_store), UUIDPGetDatum(&cmd)};
      safe::spi_run(find_command, args, nullptr, false, SPI_OK_SELECT, 1);
      if (SPI_processed > 0) {
        reject(*p, {"duplicate_command_id",
                    "Command " + ves::format_uuid(*p->command_id) + " already processed", ""});
        continue;
      }
    }
    Datum entity_args[4] = {UUIDPGetDatum(&pg_tenant), UUIDPGetDatum(&pg_store),
                            safe::text_datum(e.entity_type), safe::text_datum(e.entity_id)};
    if (p->base_version) {
      safe::spi_run(entity_version, entity_args, nullptr, false, SPI_OK_SELECT, 1);
      const uint64 actual = SPI_processed == 0 ? 0 : static_cast<uint64>(safe::spi_int64(0, 1, 0));
      if (*p->base_version != actual) {
        const std::string detail =
            "expected " + std::to_string(*p->base_version) + ", actual " + std::to_string(actual);
        reject(*p, {"version_conflict: " + detail, "Version conflict: " + detail, ""});
        continue;
      }
    }
    if (!secret) secret.emplace(open_identity(identity));
    const uint64 number = head + 1;
    const TimestampTz at = GetCurrentTimestamp();
    const ves::Hash32 signing = ves::signing_hash(e);
    const ves::Hash32 leaf =
        ves::leaf_hash(e.tenant_id, e.store_id, number, signing, e.agent_signature);
    seq::ReceiptFields r;
    r.sequencer_id = identity.id;
    r.event_id = e.event_id;
    r.sequence_number = number;
    r.sequenced_at = seq::format_micros(unix_micros(at), false);
    r.receipt_hash = ves::receipt_hash(e.tenant_id, e.store_id, e.event_id, number, signing);
    r.signature = crypto::sign_detached_64(r.receipt_hash, *secret);
    r.key_version = identity.key_version;
    const json::Value receipt = seq::receipt_json(r);
    const std::string receipt_text = pgves::core::jcs::canonicalize(receipt);
    const std::string envelope_text = pgves::core::jcs::canonicalize(p->raw);
    const std::string payload = pgves::core::jcs::canonicalize(*e.payload);
    pg_uuid_t pg_id = to_pg_uuid(e.event_id);
    Datum args[13] = {UUIDPGetDatum(&pg_tenant),
                      UUIDPGetDatum(&pg_store),
                      Int64GetDatum(static_cast<int64>(number)),
                      UUIDPGetDatum(&pg_id),
                      JsonbPGetDatum(safe::jsonb_from_text(envelope_text)),
                      safe::text_datum(payload),
                      safe::bytea_datum(e.payload_plain_hash.data(), 32),
                      safe::bytea_datum(e.agent_signature.data(), 64),
                      safe::bytea_datum(signing.data(), 32),
                      safe::bytea_datum(leaf.data(), 32),
                      safe::bytea_datum(r.receipt_hash.data(), 32),
                      JsonbPGetDatum(safe::jsonb_from_text(receipt_text)),
                      TimestampTzGetDatum(at)};
    safe::spi_run(insert_event, args, nullptr, false, SPI_OK_INSERT);
    safe::spi_run(bump_entity, entity_args, nullptr, false, SPI_OK_INSERT);
    head = number;
    last_at = at;
    if (!start) start = number;
    end = number;
    ++accepted;
    receipts.push_back(receipt);
  }
  if (accepted > 0) {
    Datum args[4] = {UUIDPGetDatum(&pg_tenant), UUIDPGetDatum(&pg_store),
                     Int64GetDatum(static_cast<int64>(head)), TimestampTzGetDatum(last_at)};
    safe::spi_run(set_head, args, nullptr, false, SPI_OK_UPDATE);
  }
  safe::spi_finish();
  const json::Value answer =
      seq::answer_json(random_uuid(), accepted, rejections, receipts, start, end, head);
  PG_RETURN_JSONB_P(safe::jsonb_from_text(pgves::core::jcs::canonicalize(answer)));
}

// ves.sequencer_identity() -> (sequencer_id, public_key, key_version).
PGVES_FUNCTION(ves_sequencer_identity) {
  safe::spi_connect();
  const Identity id = load_identity();
  safe::spi_finish();
  pg_uuid_t pg_id = to_pg_uuid(id.id);
  Datum values[3] = {safe::uuid_datum(pg_id), safe::bytea_datum(id.public_key.data(), 32),
                     Int32GetDatum(id.key_version)};
  bool nulls[3] = {false, false, false};
  return safe::composite_result(fcinfo, values, nulls);
}

namespace {

ves::Hash32 hash_arg(FunctionCallInfo fcinfo, int n, const char *name) {
  const std::vector<uint8> raw = safe::bytea_bytes(PG_GETARG_DATUM(n));
  if (raw.size() != 32)
    throw VesError(sqlstate::invalid_argument, std::string(name) + " must be 32 bytes", {},
                   "Pass a SHA-256 hash.");
  ves::Hash32 h;
  std::memcpy(h.data(), raw.data(), 32);
  return h;
}

ves::Hash32 commitment_hash_args(FunctionCallInfo fcinfo) {
  for (int i = 0; i < 6; ++i)
    if (PG_ARGISNULL(i))
      throw VesError(sqlstate::null_argument, "arguments must not be NULL", {},
                     "Pass tenant, store, start and end sequence, root and previous root.");
  const int64 start = PG_GETARG_INT64(2), end = PG_GETARG_INT64(3);
  if (start < 1 || end < start)
    throw VesError(sqlstate::invalid_argument, "start and end must satisfy 1 <= start <= end", {},
                   "Pass the first and last sequence number of the batch.");
  return seq::commitment_hash(
      ves::stream_id(to_core_uuid(*PG_GETARG_UUID_P(0)), to_core_uuid(*PG_GETARG_UUID_P(1))),
      static_cast<uint64>(start), static_cast<uint64>(end), hash_arg(fcinfo, 4, "merkle_root"),
      hash_arg(fcinfo, 5, "previous_root"));
}

}  // namespace

// ves.sequencer_commitment_hash(tenant, store, start, end, root, previous_root)
// -> bytea: the 32 bytes a commitment's sequencer signature signs.
PGVES_FUNCTION(ves_sequencer_commitment_hash) {
  const ves::Hash32 h = commitment_hash_args(fcinfo);
  PG_RETURN_BYTEA_P(DatumGetByteaPP(safe::bytea_datum(h.data(), 32)));
}

// ves._sequencer_sign_commitment(same arguments) -> bytea: the sequencer's
// signature of that hash. Only the extension's own functions call it.
PGVES_FUNCTION(ves_sequencer_sign_commitment) {
  const ves::Hash32 h = commitment_hash_args(fcinfo);
  safe::spi_connect();
  const Identity id = load_identity();
  safe::spi_finish();
  const crypto::SecretBytes secret = open_identity(id);
  const crypto::Signature64 sig = crypto::sign_detached_64(h, secret);
  PG_RETURN_BYTEA_P(DatumGetByteaPP(safe::bytea_datum(sig.data(), 64)));
}

// ves.verify_ed25519(public_key, message, signature) -> boolean: checks a
// receipt's or commitment's sequencer signature from data alone.
PGVES_FUNCTION(ves_verify_ed25519) {
  const std::vector<uint8> pk = safe::bytea_bytes(PG_GETARG_DATUM(0));
  const std::vector<uint8> msg = safe::bytea_bytes(PG_GETARG_DATUM(1));
  const std::vector<uint8> sig = safe::bytea_bytes(PG_GETARG_DATUM(2));
  if (pk.size() != 32 || sig.size() != 64)
    throw VesError(sqlstate::invalid_argument, "public_key must be 32 bytes and signature 64 bytes",
                   {},
                   "Pass the raw Ed25519 public key and signature, e.g. decode('<hex>', 'hex').");
  ves::PublicKey32 k;
  crypto::Signature64 s;
  std::memcpy(k.data(), pk.data(), 32);
  std::memcpy(s.data(), sig.data(), 64);
  PG_RETURN_BOOL(crypto::verify_detached(s, msg, k));
}
