#include "pg/store/stored_event.hpp"

#include "core/json/canonical_json.hpp"
#include "core/json/json.hpp"
#include "core/ves/timestamp.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/base/tenant.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace pgves::pg {

const char *const kStoredEventColumns =
    "tenant_id, store_id, event_id, source_agent_id, agent_key_id, entity_type, entity_id, "
    "event_type, created_at, payload::text, payload_plain_hash, agent_signature, position, "
    "entity_version";

core::ves::Uuid to_core_uuid(const pg_uuid_t &u) {
  core::ves::Uuid out;
  std::memcpy(out.data(), u.data, UUID_LEN);
  return out;
}

pg_uuid_t to_pg_uuid(const core::ves::Uuid &u) {
  pg_uuid_t out;
  std::memcpy(out.data, u.data(), UUID_LEN);
  return out;
}

namespace {

template <size_t N>
void copy_bytes(std::array<uint8, N> &out, Datum d) {
  bytea *b = DatumGetByteaPP(d);
  if (VARSIZE_ANY_EXHDR(b) != N)
    ereport(ERROR, (errcode(sqlstate::internal),
                    errmsg("a stored hash or signature has the wrong length")));
  std::memcpy(out.data(), VARDATA_ANY(b), N);
}

std::string text_of(Datum d) {
  text *t = DatumGetTextPP(d);
  return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

}  // namespace

StoredEvent read_stored_event(const SPITupleTable *table, uint64 row) {
  StoredEvent out;
  core::ves::Event &e = out.event;
  pg_call_void([&] {
    HeapTuple tup = table->vals[row];
    TupleDesc desc = table->tupdesc;
    Datum v[14];
    for (int i = 0; i < 14; ++i) {
      bool isnull = false;
      v[i] = SPI_getbinval(tup, desc, i + 1, &isnull);
      if (isnull) elog(ERROR, "pg_ves: ves.events has a NULL in column %d", i + 1);
    }
    e.tenant_id = to_core_uuid(*DatumGetUUIDP(v[0]));
    e.store_id = to_core_uuid(*DatumGetUUIDP(v[1]));
    e.event_id = to_core_uuid(*DatumGetUUIDP(v[2]));
    e.source_agent_id = to_core_uuid(*DatumGetUUIDP(v[3]));
    e.agent_key_id = static_cast<uint32>(DatumGetInt32(v[4]));
    e.entity_type = text_of(v[5]);
    e.entity_id = text_of(v[6]);
    e.event_type = text_of(v[7]);
    e.created_at = text_of(v[8]);
    out.payload_text = text_of(v[9]);
    copy_bytes(e.payload_plain_hash, v[10]);
    copy_bytes(e.agent_signature, v[11]);
    out.position = DatumGetInt64(v[12]);
    out.entity_version = DatumGetInt64(v[13]);
  });
  return out;
}

StoredEvent fetch_stored_event(const pg_uuid_t &event_id) {
  static SavedPlan by_id = {nullptr, 2, {UUIDOID, UUIDOID}, nullptr};
  static std::string sql =
      std::string("SELECT ") + kStoredEventColumns +
      " FROM ves.events WHERE event_id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)";
  by_id.sql = sql.c_str();
  pg_uuid_t id = event_id, tenant{};
  uint64 rows = pg_call([&] {
    bool scoped = tenant::session_tenant(&tenant);
    Datum args[2] = {UUIDPGetDatum(&id), UUIDPGetDatum(&tenant)};
    char nulls[3] = {' ', scoped ? ' ' : 'n', '\0'};
    spi_run(by_id, args, nulls, true, SPI_OK_SELECT, 2);
    return SPI_processed;
  });
  std::string name = core::ves::format_uuid(to_core_uuid(id));
  if (rows == 0)
    throw VesError(sqlstate::not_found, "event " + name + " does not exist", {},
                   "Pass the event_id of a stored event of this session's tenant.");
  if (rows > 1)
    throw VesError(sqlstate::invalid_argument,
                   "event id " + name + " is used by more than one tenant", {},
                   "SET ves.tenant_id to the tenant whose event you mean.");
  return read_stored_event(SPI_tuptable, 0);
}

StoredEvent stored_event_argument(FunctionCallInfo fcinfo, int argno) {
  if (PG_ARGISNULL(argno))
    throw VesError(sqlstate::null_argument, "event_id must not be NULL", {},
                   "Pass the id of a stored event.");
  pg_uuid_t id = *PG_GETARG_UUID_P(argno);
  safe::spi_connect();
  StoredEvent event = fetch_stored_event(id);
  safe::spi_finish();
  return event;
}

const KeyRegistry::Key &KeyRegistry::lookup(const core::ves::Uuid &tenant,
                                            const core::ves::Uuid &agent, uint32 key_id) {
  auto id = std::make_tuple(tenant, agent, key_id);
  auto it = keys_.find(id);
  if (it != keys_.end()) return it->second;
  static SavedPlan find_key = {
      "SELECT public_key, revoked_at FROM ves.agent_key_store "
      "WHERE tenant_id = $1 AND agent_id = $2 AND key_id = $3",
      3,
      {UUIDOID, UUIDOID, INT4OID},
      nullptr};
  Key key;
  pg_uuid_t t = to_pg_uuid(tenant), a = to_pg_uuid(agent);
  int64 revoked_unix_micros = 0;
  bool revoked = false;
  pg_call_void([&] {
    Datum args[3] = {UUIDPGetDatum(&t), UUIDPGetDatum(&a),
                     Int32GetDatum(static_cast<int32>(key_id))};
    spi_run(find_key, args, nullptr, true, SPI_OK_SELECT, 1);
    if (SPI_processed == 0) return;
    bool isnull;
    key.found = true;
    copy_bytes(key.public_key,
               SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    Datum at = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
    if (!isnull) {
      revoked = true;
      revoked_unix_micros =
          DatumGetTimestampTz(at) + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
    }
  });
  if (revoked) key.revoked_at = core::rfc3339_utc_millis(revoked_unix_micros);
  return keys_.emplace(id, key).first->second;
}

const char *payload_failure(const StoredEvent &stored) {
  core::crypto::Hash32 hash;
  try {
    hash = core::ves::payload_plain_hash_of_json(stored.payload_text);
  } catch (const core::Error &) {
    return "payload_not_canonicalizable";
  }
  if (hash != stored.event.payload_plain_hash) return "payload_hash_mismatch";
  return nullptr;
}

const char *signature_failure(const StoredEvent &stored, const KeyRegistry::Key &key) {
  const core::ves::Event &e = stored.event;
  if (!key.found) return "unknown_key";
  // Same fixed-width UTC format on both sides, so text order is time order.
  if (!key.revoked_at.empty() && e.created_at >= key.revoked_at) return "revoked_key";
  if (!core::ves::verify_signature(e, key.public_key)) return "bad_signature";
  return nullptr;
}

const char *verification_failure(const StoredEvent &stored, KeyRegistry &keys) {
  if (const char *reason = payload_failure(stored)) return reason;
  const core::ves::Event &e = stored.event;
  return signature_failure(stored, keys.lookup(e.tenant_id, e.source_agent_id, e.agent_key_id));
}

}  // namespace pgves::pg
