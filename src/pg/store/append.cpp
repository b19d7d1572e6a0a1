// ves.append and ves.append_batch: the write path of the event store.
//
// Order of work for one event, each step a prepared statement:
//   1. claim the idempotency key (if any): a second caller with the same key
//      waits on the first and then sees its row, so racing callers share one
//      result;
//   2. claim the event id the same way;
//   3. check and bump the entity version on its stream row — the row lock
//      orders writers of one entity and nothing else, and the expected
//      version is checked before any position is taken;
//   4. publish the read fence bound, then insert the event with its position.
// With no expected version nothing in 3 can refuse the event: it is signed
// first and 3 and 4 are one statement (bump_and_insert).
//
// This file calls Postgres directly and therefore keeps only trivially
// destructible locals (see boundary.hpp).
#include "core/base/error.hpp"
#include "pg/store/append.hpp"
#include "core/crypto/thread_pool.hpp"
#include "core/ves/timestamp.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/store/keys.hpp"
#include "pg/store/listeners.hpp"
#include "pg/store/read_fence.hpp"
#include "pg/base/settings.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/base/tenant.hpp"
#include "pg/sync/signals.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "common/pg_prng.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port.h"
#include "utils/array.h"
#include "utils/jsonfuncs.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pgves::pg {
namespace {

const Oid kUuid = UUIDOID, kText = TEXTOID, kBytea = BYTEAOID, kInt8 = INT8OID, kJsonb = JSONBOID,
          kInt4 = INT4OID;

SavedPlan claim_key = {
    "INSERT INTO ves.idempotency_keys (tenant_id, idempotency_key, event_id, request_hash) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
    4,
    {kUuid, kText, kUuid, kBytea},
    nullptr};
SavedPlan find_key = {
    "SELECT event_id, request_hash FROM ves.idempotency_keys "
    "WHERE tenant_id = $1 AND idempotency_key = $2",
    2,
    {kUuid, kText},
    nullptr};
// Event ids are unique across tenants: an id is looked up by itself, and the
// tenant that holds it is compared afterwards.
SavedPlan claim_id = {
    "INSERT INTO ves.event_ids (tenant_id, event_id, content_hash) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING RETURNING 1",
    3,
    {kUuid, kUuid, kBytea},
    nullptr};
SavedPlan find_id = {
    "SELECT content_hash, tenant_id OPERATOR(pg_catalog.=) $1 FROM ves.event_ids WHERE event_id = "
    "$2",
    2,
    {kUuid, kUuid},
    nullptr};
SavedPlan find_stored = {
    "SELECT store_id, entity_type, entity_id, event_type, payload_plain_hash, "
    "tenant_id OPERATOR(pg_catalog.=) $1 FROM ves.events WHERE event_id = $2 LIMIT 1",
    2,
    {kUuid, kUuid},
    nullptr};
SavedPlan find_result = {
    "SELECT position, entity_version FROM ves.events WHERE tenant_id = $1 AND event_id = $2",
    2,
    {kUuid, kUuid},
    nullptr};
SavedPlan bump_any = {
    "INSERT INTO ves.streams AS s (tenant_id, entity_type, entity_id, store_id, version) "
    "VALUES ($1, $2, $3, $4, 1) ON CONFLICT (tenant_id, entity_type, entity_id) "
    "DO UPDATE SET version = s.version + 1, updated_at = now() RETURNING version",
    4,
    {kUuid, kText, kText, kUuid},
    nullptr};
SavedPlan bump_new = {
    "INSERT INTO ves.streams (tenant_id, entity_type, entity_id, store_id, version) "
    "VALUES ($1, $2, $3, $4, 1) ON CONFLICT DO NOTHING RETURNING version",
    4,
    {kUuid, kText, kText, kUuid},
    nullptr};
SavedPlan bump_existing = {
    "UPDATE ves.streams SET version = version + 1, updated_at = now() "
    "WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3 AND ($4 < 0 OR version = $4) "
    "RETURNING version",
    4,
    {kUuid, kText, kText, kInt8},
    nullptr};
SavedPlan current_version = {
    "SELECT version FROM ves.streams WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3",
    3,
    {kUuid, kText, kText},
    nullptr};
SavedPlan insert_event = {
    "INSERT INTO ves.events (position, tenant_id, store_id, entity_type, entity_id, "
    "entity_version, event_id, event_type, payload, metadata, source, recorded_at, "
    "source_agent_id, agent_key_id, created_at, payload_plain_hash, agent_signature) "
    "VALUES (nextval('ves.position_seq'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), "
    "$11, $12, $13, $14, $15) RETURNING position",
    15,
    {kUuid, kUuid, kText, kText, kInt8, kUuid, kText, kJsonb, kJsonb, kText, kUuid, kInt4, kText,
     kBytea, kBytea},
    nullptr};
// An event with no expected version in one statement: the stream row is
// bumped (inserted, or updated under its row lock) and the event inserted
// with the version it got. The position is taken after the row lock, so one
// entity's positions follow its versions, as with the two statements of the
// other cases.
SavedPlan bump_and_insert = {
    "WITH bumped AS (INSERT INTO ves.streams AS s (tenant_id, entity_type, entity_id, store_id, "
    "version) VALUES ($1, $3, $4, $2, 1) ON CONFLICT (tenant_id, entity_type, entity_id) "
    "DO UPDATE SET version = s.version + 1, updated_at = now() RETURNING s.version) "
    "INSERT INTO ves.events (position, tenant_id, store_id, entity_type, entity_id, "
    "entity_version, event_id, event_type, payload, metadata, source, recorded_at, "
    "source_agent_id, agent_key_id, created_at, payload_plain_hash, agent_signature) "
    "SELECT nextval('ves.position_seq'), $1, $2, $3, $4, bumped.version, $5, $6, $7, $8, $9, "
    "now(), $10, $11, $12, $13, $14 FROM bumped RETURNING position, entity_version",
    14,
    {kUuid, kUuid, kText, kText, kUuid, kText, kJsonb, kJsonb, kText, kUuid, kInt4, kText, kBytea,
     kBytea},
    nullptr};
SavedPlan ensure_partition = {"SELECT ves.ensure_partitions(now())", 0, {}, nullptr};
SavedPlan fan_out = {
    "INSERT INTO ves.outbox (tenant_id, destination_id, event_position, event_id, entity_type, "
    "entity_id) "
    "SELECT $1, d.id, $2, $3, $4, $5 FROM ves.destinations d "
    "WHERE (d.tenant_id IS NULL OR d.tenant_id = $1) "
    "AND (d.entity_types IS NULL OR $4 = ANY (d.entity_types)) "
    "AND (d.event_types IS NULL OR $6 = ANY (d.event_types)) "
    // The sync and alert streams are queued by ves._sync_event and
    // ves._deliver_alert to the destinations that asked for them.
    "AND $4 NOT IN ('sync', 'sync.alert')",
    6,
    {kUuid, kInt8, kUuid, kText, kText, kText},
    nullptr};
SavedPlan any_destination = {"SELECT EXISTS (SELECT FROM ves.destinations)", 0, {}, nullptr};

// Whether any destination exists, cached per destinations epoch so appends
// to a store without destinations pay for one atomic read, not a query.
uint64 destinations_known_epoch = 0;
bool destinations_exist = true;

bool have_destinations() {
  uint64 epoch = signals::destinations_epoch();
  if (epoch != destinations_known_epoch) {
    spi_run(any_destination, nullptr, nullptr, true, SPI_OK_SELECT, 1);
    bool isnull;
    destinations_exist =
        DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    destinations_known_epoch = epoch;
  }
  return destinations_exist;
}

// The end of the month partitions this backend knows exist.
TimestampTz partitions_known_until = 0;

void require_arg(FunctionCallInfo fcinfo, int n, const char *name) {
  if (PG_ARGISNULL(n))
    ereport(ERROR, (errcode(sqlstate::null_argument), errmsg("%s must not be NULL", name),
                    errhint("Pass a value for %s.", name)));
}

void check_identifier(const text *value, const char *name, int max_bytes) {
  int len = VARSIZE_ANY_EXHDR(value);
  const unsigned char *p = reinterpret_cast<const unsigned char *>(VARDATA_ANY(value));
  if (len == 0)
    ereport(ERROR, (errcode(sqlstate::invalid_identifier), errmsg("%s must not be empty", name),
                    errhint("Pass a non-empty %s.", name)));
  if (len > max_bytes)
    ereport(ERROR, (errcode(sqlstate::invalid_identifier),
                    errmsg("%s is %d bytes long, more than the %d allowed", name, len, max_bytes),
                    errhint("Use a shorter %s.", name)));
  for (int i = 0; i < len; ++i)
    if (p[i] < 0x20 || p[i] == 0x7f)
      ereport(ERROR, (errcode(sqlstate::invalid_identifier),
                      errmsg("%s contains a control character at byte %d", name, i + 1),
                      errhint("Identifiers are printable text.")));
}

void check_object(const Jsonb *value, const char *name) {
  if (!JB_ROOT_IS_OBJECT(value) || JB_ROOT_IS_SCALAR(value))
    ereport(ERROR, (errcode(sqlstate::invalid_payload), errmsg("%s must be a JSON object", name),
                    errhint("Wrap the value in an object, e.g. {\"value\": ...}.")));
  if (static_cast<int>(VARSIZE(value)) > settings::max_payload_size)
    ereport(ERROR, (errcode(sqlstate::payload_too_large),
                    errmsg("%s is %d bytes, more than ves.max_payload_size (%d bytes)", name,
                           static_cast<int>(VARSIZE(value)), settings::max_payload_size),
                    errhint("Store large documents elsewhere and reference them from the "
                            "event, or raise ves.max_payload_size.")));
}

void validate(const AppendInput &in) {
  check_identifier(in.entity_type, "entity_type", 128);
  check_identifier(in.entity_id, "entity_id", 256);
  check_identifier(in.event_type, "event_type", 128);
  check_identifier(in.source, "source", 64);
  if (in.idempotency_key) check_identifier(in.idempotency_key, "idempotency_key", 256);
  check_object(in.payload, "payload");
  check_object(in.metadata, "metadata");
  if (in.has_expected && in.expected < -1)
    ereport(ERROR, (errcode(sqlstate::invalid_argument),
                    errmsg("expected_version %lld is not valid", (long long)in.expected),
                    errhint("Use NULL (any), 0 (must not exist), -1 (must exist) or the exact "
                            "current version.")));
  tenant::check_access(&in.tenant);
}

bytea *bytes(const uint8 *data, size_t len) {
  bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + len));
  SET_VARSIZE(b, VARHDRSZ + len);
  memcpy(VARDATA(b), data, len);
  return b;
}

// Random bytes for event ids, drawn from pg_strong_random a block at a time:
// one call per id cost more than the rest of the id.
uint8 random_pool[16 * 64];
size_t random_left = 0;

void random_bytes(uint8 *out, size_t len) {
  if (random_left < len) {
    if (!pg_strong_random(random_pool, sizeof random_pool)) elog(ERROR, "pg_ves: no random bytes");
    random_left = sizeof random_pool;
  }
  uint8 *from = random_pool + sizeof random_pool - random_left;
  memcpy(out, from, len);
  memset(from, 0, len);
  random_left -= len;
}

// UUIDv7: time-ordered ids keep the id index append-only.
void new_event_id(pg_uuid_t *out) {
  uint64 ms = static_cast<uint64>((GetCurrentTimestamp() / 1000) + 946684800000LL);
  random_bytes(out->data, UUID_LEN);
  for (int i = 0; i < 6; ++i) out->data[i] = static_cast<uint8>(ms >> (40 - 8 * i));
  out->data[6] = (out->data[6] & 0x0f) | 0x70;
  out->data[8] = (out->data[8] & 0x3f) | 0x80;
}

void hash_text(crypto_hash_sha256_state *st, const text *t) {
  uint32 len = VARSIZE_ANY_EXHDR(t);
  unsigned char prefix[4] = {static_cast<unsigned char>(len >> 24),
                             static_cast<unsigned char>(len >> 16),
                             static_cast<unsigned char>(len >> 8), static_cast<unsigned char>(len)};
  crypto_hash_sha256_update(st, prefix, 4);
  crypto_hash_sha256_update(st, reinterpret_cast<const unsigned char *>(VARDATA_ANY(t)), len);
}

// What "the same content" means for idempotency: store, entity, type and
// payload (by its canonical hash); metadata and source describe the call,
// not the event.
bytea *content_hash_of(const pg_uuid_t *store, const text *entity_type, const text *entity_id,
                       const text *event_type, const uint8 *payload_plain_hash) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, store->data, UUID_LEN);
  hash_text(&st, entity_type);
  hash_text(&st, entity_id);
  hash_text(&st, event_type);
  crypto_hash_sha256_update(&st, payload_plain_hash, 32);
  bytea *out = static_cast<bytea *>(palloc(VARHDRSZ + crypto_hash_sha256_BYTES));
  SET_VARSIZE(out, VARHDRSZ + crypto_hash_sha256_BYTES);
  crypto_hash_sha256_final(&st, reinterpret_cast<unsigned char *>(VARDATA(out)));
  return out;
}

bytea *content_hash(const AppendInput &in) {
  return content_hash_of(&in.store, in.entity_type, in.entity_id, in.event_type,
                         in.sig.payload_plain_hash);
}

bool same_hash(const bytea *a, const bytea *b) {
  return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
         std::memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

char *uuid_text(const pg_uuid_t *u) {
  return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(u))));
}

// Frees the last statement's result once it has been read. SPI keeps every
// result until SPI_finish, each in a memory context of its own (8 kB at
// least): a batch runs statements per event and would hold one per event.
void done_with_result() {
  SPI_freetuptable(SPI_tuptable);
  SPI_tuptable = nullptr;
}

// The original result of an event that already exists.
AppendResult original(const pg_uuid_t *tenant, const pg_uuid_t *event_id) {
  Datum args[2] = {UUIDPGetDatum(const_cast<pg_uuid_t *>(tenant)),
                   UUIDPGetDatum(const_cast<pg_uuid_t *>(event_id))};
  spi_run(find_result, args, nullptr, false, SPI_OK_SELECT, 1);
  if (SPI_processed != 1)
    ereport(ERROR, (errcode(sqlstate::internal),
                    errmsg("event %s is recorded as appended but is not in ves.events",
                           uuid_text(event_id)),
                    errhint("Its month partition may have been dropped by retention.")));
  AppendResult r;
  r.event_id = *event_id;
  r.position = spi_int64(1, 0);
  bool isnull;
  r.entity_version =
      DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
  r.duplicate = true;
  done_with_result();
  return r;
}

bytea *fetched_bytea(int column) {
  bool isnull = false;
  Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);
  return isnull ? nullptr : DatumGetByteaPCopy(d);
}

void ensure_partitions() {
  TimestampTz now = GetCurrentTransactionStartTimestamp();
  if (now < partitions_known_until) return;
  spi_run(ensure_partition, nullptr, nullptr, false, SPI_OK_SELECT, 1);
  bool isnull;
  Datum until = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
  partitions_known_until = isnull ? 0 : DatumGetTimestampTz(until);
}

[[noreturn]] void version_mismatch(const AppendInput &in, int64 current) {
  char *entity_type = text_to_cstring(in.entity_type);
  char *entity_id = text_to_cstring(in.entity_id);
  const char *want = !in.has_expected    ? "any"
                     : in.expected == 0  ? "no stream (0)"
                     : in.expected == -1 ? "an existing stream (-1)"
                                         : psprintf("%lld", (long long)in.expected);
  ereport(ERROR, (errcode(sqlstate::wrong_expected_version),
                  errmsg("wrong expected version for %s/%s: expected %s, current version is %lld",
                         entity_type, entity_id, want, (long long)current),
                  errdetail("current_version=%lld", (long long)current),
                  errhint("Read the entity again and retry with its current version.")));
  pg_unreachable();
}

}  // namespace

namespace {

// For a validated event: computes its payload hash (or takes `payload_hash`,
// computed ahead when a batch hashes on threads) and content hash, and gives
// it an id when it has none. Returns the content hash.
bytea *hash_validated(AppendInput &in, const uint8 *payload_hash) {
  if (payload_hash)
    memcpy(in.sig.payload_plain_hash, payload_hash, 32);
  else if (!in.presigned)
    keys::payload_plain_hash(in.payload, in.sig.payload_plain_hash);
  if (!in.has_id) new_event_id(&in.id);
  return content_hash(in);
}

// Validates the event, then hash_validated.
bytea *hash_event(AppendInput &in) {
  validate(in);
  return hash_validated(in, nullptr);
}

// Claims the event's idempotency key and, when the caller gave one, its event
// id. Returns true when it is a duplicate; *result then holds the original.
// Generated ids (UUIDv7) cannot collide and are not recorded in
// ves.event_ids; a caller-given id is also checked against stored events.
bool claim(AppendInput &in, bytea *hash, bool generated, AppendResult *result) {
  Datum tenant = UUIDPGetDatum(&in.tenant);
  Datum id = UUIDPGetDatum(&in.id);

  if (in.idempotency_key) {
    Datum args[4] = {tenant, PointerGetDatum(in.idempotency_key), id, PointerGetDatum(hash)};
    spi_run(claim_key, args, nullptr, false, SPI_OK_INSERT_RETURNING);
    bool taken = SPI_processed == 0;
    done_with_result();
    if (taken) {
      spi_run(find_key, args, nullptr, false, SPI_OK_SELECT, 1);
      bool isnull;
      pg_uuid_t existing =
          *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
      bytea *existing_hash = fetched_bytea(2);
      done_with_result();
      if (!same_hash(existing_hash, hash))
        ereport(ERROR, (errcode(sqlstate::idempotency_key_reused),
                        errmsg("idempotency key \"%s\" was already used for different content",
                               text_to_cstring(in.idempotency_key)),
                        errdetail("The key belongs to event %s.", uuid_text(&existing)),
                        errhint("Use a new idempotency key for a different event.")));
      *result = original(&in.tenant, &existing);
      return true;
    }
  }

  if (!generated) {
    Datum args[3] = {tenant, id, PointerGetDatum(hash)};
    spi_run(claim_id, args, nullptr, false, SPI_OK_INSERT_RETURNING);
    bytea *existing = nullptr;
    bool same_tenant = true;
    bool taken = SPI_processed == 0;
    done_with_result();
    if (taken) {
      spi_run(find_id, args, nullptr, false, SPI_OK_SELECT, 1);
      existing = fetched_bytea(1);
      bool isnull;
      same_tenant =
          DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
      done_with_result();
    } else {
      spi_run(find_stored, args, nullptr, false, SPI_OK_SELECT, 1);
      if (SPI_processed == 1) {
        bool isnull;
        HeapTuple tup = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        same_tenant = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
        pg_uuid_t store = *DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));
        bytea *plain = DatumGetByteaPP(SPI_getbinval(tup, desc, 5, &isnull));
        existing = content_hash_of(&store, DatumGetTextPP(SPI_getbinval(tup, desc, 2, &isnull)),
                                   DatumGetTextPP(SPI_getbinval(tup, desc, 3, &isnull)),
                                   DatumGetTextPP(SPI_getbinval(tup, desc, 4, &isnull)),
                                   reinterpret_cast<const uint8 *>(VARDATA_ANY(plain)));
      }
      done_with_result();
    }
    // Said without naming the tenant that holds the id.
    if (!same_tenant)
      ereport(ERROR,
              (errcode(sqlstate::event_id_reused),
               errmsg("event id %s is already used", uuid_text(&in.id)),
               errhint("Event ids are unique across tenants; pass NULL to have one generated.")));
    if (existing) {
      if (!same_hash(existing, hash))
        ereport(ERROR,
                (errcode(sqlstate::event_id_reused),
                 errmsg("event id %s already exists with different content", uuid_text(&in.id)),
                 errhint("Every event needs its own id; pass NULL to have one generated.")));
      *result = original(&in.tenant, &in.id);
      return true;
    }
  }
  return false;
}

// Checks the expected version on the entity's stream row and bumps it; the
// row lock orders writers of one entity. Returns the event's version.
int64 bump_version(const AppendInput &in) {
  Datum args[4] = {UUIDPGetDatum(const_cast<pg_uuid_t *>(&in.tenant)),
                   PointerGetDatum(in.entity_type), PointerGetDatum(in.entity_id),
                   UUIDPGetDatum(const_cast<pg_uuid_t *>(&in.store))};
  if (!in.has_expected) {
    spi_run(bump_any, args, nullptr, false, SPI_OK_INSERT_RETURNING);
  } else if (in.expected == 0) {
    spi_run(bump_new, args, nullptr, false, SPI_OK_INSERT_RETURNING);
  } else {
    args[3] = Int64GetDatum(in.expected);
    spi_run(bump_existing, args, nullptr, false, SPI_OK_UPDATE_RETURNING);
  }
  if (SPI_processed == 0) {
    spi_run(current_version, args, nullptr, false, SPI_OK_SELECT, 1);
    version_mismatch(in, spi_int64(1, 0));
  }
  int64 version = spi_int64(1, 0);
  done_with_result();
  return version;
}

}  // namespace

AppendResult append_one(AppendInput &in) {
  AppendResult result;
  bool generated = !in.has_id;
  bytea *hash = hash_event(in);
  if (claim(in, hash, generated, &result)) return result;
  result.event_id = in.id;
  result.duplicate = false;
  Datum tenant = UUIDPGetDatum(&in.tenant);
  Datum id = UUIDPGetDatum(&in.id);

  // With no expected version no check can refuse the event: it is signed
  // first, and the stream bump and the insert are one statement. Otherwise
  // the version is checked and bumped first, so refusals cost no signature.
  if (in.has_expected) result.entity_version = bump_version(in);
  if (!in.presigned)
    keys::sign(in.tenant, in.store, in.id, in.entity_type, in.entity_id, in.event_type, &in.sig);
  ensure_partitions();
  fence::before_position();
  // The row's parameters in insert_event's order; bump_and_insert takes the
  // version from the stream bump, so it has no parameter for it.
  Datum args[15];
  int n = 0;
  args[n++] = tenant;
  args[n++] = UUIDPGetDatum(&in.store);
  args[n++] = PointerGetDatum(in.entity_type);
  args[n++] = PointerGetDatum(in.entity_id);
  if (in.has_expected) args[n++] = Int64GetDatum(result.entity_version);
  args[n++] = id;
  args[n++] = PointerGetDatum(in.event_type);
  args[n++] = JsonbPGetDatum(in.payload);
  args[n++] = JsonbPGetDatum(in.metadata);
  args[n++] = PointerGetDatum(in.source);
  args[n++] = UUIDPGetDatum(&in.sig.agent_id);
  args[n++] = Int32GetDatum(in.sig.key_id);
  args[n++] = CStringGetTextDatum(in.sig.created_at);
  args[n++] = PointerGetDatum(bytes(in.sig.payload_plain_hash, 32));
  args[n++] = PointerGetDatum(bytes(in.sig.agent_signature, 64));
  if (in.has_expected) {
    spi_run(insert_event, args, nullptr, false, SPI_OK_INSERT_RETURNING);
  } else {
    spi_run(bump_and_insert, args, nullptr, false, SPI_OK_INSERT_RETURNING);
    if (SPI_processed != 1)
      elog(ERROR, "pg_ves: the event insert wrote %llu rows", (unsigned long long)SPI_processed);
    result.entity_version = spi_int64(2, 0);
  }
  result.position = spi_int64(1, 0);
  fence::after_position(result.position);
  if (have_destinations()) {
    Datum args[6] = {tenant,
                     Int64GetDatum(result.position),
                     id,
                     PointerGetDatum(in.entity_type),
                     PointerGetDatum(in.entity_id),
                     PointerGetDatum(in.event_type)};
    spi_run(fan_out, args, nullptr, false, SPI_OK_INSERT);
    if (SPI_processed > 0) signals::wake_at_commit();
  }
  return result;
}

// --- append_batch: the same steps, with the writes made once per batch -----

namespace {

const Oid kUuidArray = UUIDARRAYOID, kTextArray = TEXTARRAYOID, kInt8Array = INT8ARRAYOID,
          kInt4Array = INT4ARRAYOID, kByteaArray = BYTEAARRAYOID, kJsonbArray = JSONBARRAYOID;

SavedPlan bump_grouped = {
    "INSERT INTO ves.streams AS s (tenant_id, entity_type, entity_id, store_id, version) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::int8[]) "
    "ON CONFLICT (tenant_id, entity_type, entity_id) "
    "DO UPDATE SET version = s.version + excluded.version, updated_at = now() "
    "RETURNING tenant_id, entity_type, entity_id, version",
    5,
    {kUuidArray, kTextArray, kTextArray, kUuidArray, kInt8Array},
    nullptr};
SavedPlan take_positions = {
    "SELECT nextval('ves.position_seq') FROM generate_series(1, $1)", 1, {kInt4}, nullptr};
SavedPlan insert_events_bulk = {
    "INSERT INTO ves.events (position, tenant_id, store_id, entity_type, entity_id, "
    "entity_version, "
    "event_id, event_type, payload, metadata, source, recorded_at, source_agent_id, agent_key_id, "
    "created_at, payload_plain_hash, agent_signature) "
    "SELECT p, t, s, et, ei, v, id, ty, pl, md, src, now(), ag, k, ca, ph, sg FROM unnest("
    "$1::int8[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int8[], $7::uuid[], "
    "$8::text[], "
    "$9::jsonb[], $10::jsonb[], $11::text[], $12::uuid[], $13::int4[], $14::text[], $15::bytea[], "
    "$16::bytea[]) AS u(p, t, s, et, ei, v, id, ty, pl, md, src, ag, k, ca, ph, sg)",
    16,
    {kInt8Array, kUuidArray, kUuidArray, kTextArray, kTextArray, kInt8Array, kUuidArray, kTextArray,
     kJsonbArray, kJsonbArray, kTextArray, kUuidArray, kInt4Array, kTextArray, kByteaArray,
     kByteaArray},
    nullptr};
SavedPlan fan_out_bulk = {
    "INSERT INTO ves.outbox (tenant_id, destination_id, event_position, event_id, entity_type, "
    "entity_id) "
    "SELECT u.t, d.id, u.p, u.id, u.et, u.ei "
    "FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[]) AS u(t, "
    "p, id, et, ei, ty) "
    "JOIN ves.destinations d ON (d.tenant_id IS NULL OR d.tenant_id = u.t) "
    "AND (d.entity_types IS NULL OR u.et = ANY (d.entity_types)) "
    "AND (d.event_types IS NULL OR u.ty = ANY (d.event_types)) "
    "AND u.et NOT IN ('sync', 'sync.alert') "
    "ORDER BY u.p, d.id",
    6,
    {kUuidArray, kInt8Array, kUuidArray, kTextArray, kTextArray, kTextArray},
    nullptr};

// A growable array of Datums for one column of a bulk statement.
class Column {
 public:
  explicit Column(Oid element) : element_(element) {}
  void push(Datum d) { values_.push_back(d); }
  void reserve(size_t n) { values_.reserve(n); }
  Datum array() const {
    int16 len;
    bool byval;
    char align;
    get_typlenbyvalalign(element_, &len, &byval, &align);
    return PointerGetDatum(construct_array(const_cast<Datum *>(values_.data()),
                                           static_cast<int>(values_.size()), element_, len, byval,
                                           align));
  }

 private:
  Oid element_;
  std::vector<Datum> values_;
};

std::string text_string(const text *t) { return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)); }

std::string entity_key(const AppendInput &in) {
  std::string k(reinterpret_cast<const char *>(in.tenant.data), UUID_LEN);
  k += text_string(in.entity_type);
  k.push_back('\0');
  k += text_string(in.entity_id);
  return k;
}

// --- the batch's PostgreSQL steps, for append_many's C++ frames --------------

void step_validate(AppendInput &in) {
  pg_call_void([&] { validate(in); });
}

// Pool threads for a batch of n events: the backend's own thread is one of
// ves.crypto_threads, busy with the batch's database work while the others
// hash and sign; none for small batches, where starting them costs more than
// they save.
unsigned batch_threads(int n) {
  return n >= 64 ? static_cast<unsigned>(settings::crypto_threads) - 1 : 0;
}

void batch_input(JsonbContainer *obj, AppendInput *in, Jsonb *empty, text *manual);

// Where a batch's events come from: the call's jsonb array, or (for a text
// argument) one jsonb value per event, parsed from the text one event at a
// time (TextScan). Each pass over the batch parses its events' fields
// again, a chunk at a time into memory that is freed before the next chunk,
// so no pass holds every event's parsed fields.
struct BatchSource {
  Jsonb *events;  // the jsonb array, or nullptr
  Jsonb **items;  // else one object per event
  Jsonb *empty;   // metadata when an event has none
  text *manual;   // source when an event has none

  // Event i as a JSON object container, or nullptr when it is something
  // else (PostgreSQL calls only; may allocate in the current context).
  JsonbContainer *object(int i) const {
    if (items)
      return JB_ROOT_IS_OBJECT(items[i]) && !JB_ROOT_IS_SCALAR(items[i]) ? &items[i]->root
                                                                         : nullptr;
    JsonbValue *elem = getIthJsonbValueFromContainer(&events->root, i);
    JsonbContainer *obj = elem->type == jbvBinary && JsonContainerIsObject(elem->val.binary.data)
                              ? elem->val.binary.data
                              : nullptr;
    pfree(elem);
    return obj;
  }

  // Parses event i into *in, raising the batch's errors for a malformed one
  // (PostgreSQL calls only; allocates in the current memory context).
  void parse(int i, AppendInput *in) const {
    JsonbContainer *obj = object(i);
    if (!obj)
      ereport(ERROR, (errcode(sqlstate::invalid_batch), errmsg("each event must be a JSON object"),
                      errhint("Pass an array of objects.")));
    batch_input(obj, in, empty, manual);
  }

  // The text of event i's payload when validate() may accept it, else
  // nullptr (PostgreSQL calls only; the text is palloc'd).
  char *payload_text(int i) const {
    JsonbContainer *obj = object(i);
    JsonbValue v;
    if (obj && getKeyJsonValueFromContainer(obj, "payload", 7, &v) && v.type == jbvBinary &&
        JsonContainerIsObject(v.val.binary.data) &&
        static_cast<int>(v.val.binary.len + VARHDRSZ) <= settings::max_payload_size)
      return JsonbToCString(nullptr, v.val.binary.data, v.val.binary.len);
    return nullptr;
  }
};

// Runs fn in `memory` (a chunk's), under the C++/PostgreSQL boundary. SPI
// calls inside switch to SPI's own memory and back to the procedure's; fn
// leaves nothing behind in `memory` that must outlive the chunk.
template <typename Fn>
auto in_memory(MemoryContext memory, Fn &&fn) {
  return pg_call([&] {
    MemoryContext old = MemoryContextSwitchTo(memory);
    auto result = fn();
    MemoryContextSwitchTo(old);
    return result;
  });
}

// The payload hashes of a batch, computed ahead on the pool: this thread
// takes each payload's text (a PostgreSQL call), a pool thread canonicalises
// and hashes it. A payload with no canonical form keeps its error, which is
// raised when the batch reaches that event, as if it were hashed in turn.
class PayloadHashes {
 public:
  static constexpr int kPerTask = 16;

  PayloadHashes(const BatchSource &src, int n) : src_(src), n_(n), slots_(new Slot[Max(n, 1)]) {}

  // Queues every event before `upto` not queued yet, kPerTask events a
  // task (fewer hand-offs between threads). Printing a payload leaves more
  // than its text behind (the printer's buffer, each number's text): it is
  // done in `memory`, which the caller resets.
  void queue_until(core::ThreadPool &pool, int upto, MemoryContext memory) {
    int group[kPerTask];
    int grouped = 0;
    for (; queued_ < upto && queued_ < n_; ++queued_) {
      char *text = in_memory(memory, [&] { return src_.payload_text(queued_); });
      if (!text) continue;
      Slot &slot = slots_[queued_];
      slot.text = text;
      slot.queued = true;
      group[grouped++] = queued_;
      if (grouped == kPerTask) {
        submit(pool, group, grouped);
        grouped = 0;
      }
    }
    if (grouped > 0) submit(pool, group, grouped);
  }

  // Event i's payload hash, or nullptr when it was not queued (validate()
  // refuses it). Rethrows the error its hashing raised.
  const uint8 *take(core::ThreadPool &pool, int i) {
    Slot &slot = slots_[i];
    if (!slot.queued) return nullptr;
    pool.wait_until([&slot] { return slot.done.load(std::memory_order_acquire); },
                    safe::check_for_interrupts);
    if (slot.error) std::rethrow_exception(slot.error);
    return slot.hash.data();
  }

 private:
  void submit(core::ThreadPool &pool, const int *group, int count) {
    Slot *slots = slots_.get();
    std::array<int, kPerTask> members{};
    std::copy(group, group + count, members.begin());
    pool.submit([slots, members, count] {
      for (int k = 0; k < count; ++k) {
        Slot &slot = slots[members[k]];
        try {
          slot.hash = core::ves::payload_plain_hash_of_json(slot.text);
        } catch (...) {
          slot.error = std::current_exception();
        }
        std::string().swap(slot.text);
        slot.done.store(true, std::memory_order_release);
      }
    });
  }

  struct Slot {
    std::string text;
    core::crypto::Hash32 hash{};
    std::exception_ptr error;
    std::atomic<bool> done{false};
    bool queued = false;
  };
  const BatchSource &src_;
  int n_;
  int queued_ = 0;
  std::unique_ptr<Slot[]> slots_;
};

[[noreturn]] void refuse_repeat(bool both_keyed, int i, int earlier) {
  int code = both_keyed ? sqlstate::idempotency_key_reused : sqlstate::event_id_reused;
  pg_call_void([&] {
    ereport(ERROR,
            (errcode(code),
             errmsg("the batch repeats an idempotency key or event id with different content"),
             errdetail("Event %d repeats event %d.", i + 1, earlier + 1),
             errhint("Give each event its own key and id.")));
  });
  pg_unreachable();
}

// Bumps the version of every entity of a batch whose events carry no expected
// version, in one statement; returns (entity key, final version) pairs.
std::vector<std::pair<std::string, int64>> bump_grouped_versions(Column &g_tenant, Column &g_type,
                                                                 Column &g_id, Column &g_store,
                                                                 Column &g_count) {
  std::vector<std::pair<std::string, int64>> finals;
  pg_call_void([&] {
    Datum args[5] = {g_tenant.array(), g_type.array(), g_id.array(), g_store.array(),
                     g_count.array()};
    spi_run(bump_grouped, args, nullptr, false, SPI_OK_INSERT_RETURNING);
    for (uint64 r = 0; r < SPI_processed; ++r) {
      AppendInput key{};
      bool isnull;
      HeapTuple tup = SPI_tuptable->vals[r];
      key.tenant = *DatumGetUUIDP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
      key.entity_type = DatumGetTextPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
      key.entity_id = DatumGetTextPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
      finals.emplace_back(entity_key(key),
                          DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 4, &isnull)));
    }
    done_with_result();
  });
  return finals;
}

// Takes `m` positions behind the read fence.
std::vector<int64> take_batch_positions(int m) {
  std::vector<int64> positions;
  pg_call_void([&] {
    ensure_partitions();
    fence::before_position();
    Datum args[1] = {Int32GetDatum(m)};
    spi_run(take_positions, args, nullptr, false, SPI_OK_SELECT);
    bool isnull;
    for (uint64 r = 0; r < SPI_processed; ++r)
      positions.push_back(
          DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)));
    done_with_result();
    fence::after_position(
        positions.empty() ? 0 : *std::max_element(positions.begin(), positions.end()));
  });
  return positions;
}

// Events per chunk: per bulk statement, and per piece of each pass over a
// batch. Each chunk's parsed events, arrays, executor and plan are freed
// before the next, so a batch holds that much beyond what it keeps per event
// (Kept), whatever the batch size.
constexpr int kChunk = 1000;
// Events per chunk of the third pass, whose rows are written once the pool
// has signed them: smaller, so that this thread writes the first rows while
// the pool still signs the last.
constexpr int kSigningChunk = 100;

// What a batch keeps of each event between its passes: what each pass works
// out and a later one needs. The rest is parsed again from the input.
struct Kept {
  pg_uuid_t id{};               // given, or generated by the first pass
  uint8 payload_hash[32] = {};  // plain payload hash
  int64 expected = 0;
  bool has_expected = false;
  bool has_id = false;
  bool keyed = false;    // carries an idempotency key
  bool written = false;  // not a duplicate: gets a version, a position, a row
  int alias = -1;        // an earlier event of the batch this one repeats
  // A written event's signature (BatchSigning): its signing hash in the
  // first 32 bytes until a pool task replaces it with the signature.
  int32 signer = -1;
  int64 created_unix_micros = 0;
  uint8 signature[64] = {};
};

// Parses event i and gives it what the earlier passes worked out.
void parse_kept(const BatchSource &src, int i, const Kept &k, AppendInput *in) {
  src.parse(i, in);
  in->presigned = false;
  in->id = k.id;
  std::memcpy(in->sig.payload_plain_hash, k.payload_hash, 32);
}

// Inserts signed events of a batch, in[j] the event of out[events[j]] with
// position positions[j] (ascending, in batch order), in one statement, and
// queues them for delivery. Its arrays are made in `memory`, which the
// caller frees.
void insert_rows(AppendInput *in, const std::vector<int> &events,
                 const std::vector<int64> &positions, AppendResult *out, MemoryContext memory,
                 bool fan_out) {
  size_t count = events.size();
  Column c_pos(INT8OID), c_tenant(UUIDOID), c_store(UUIDOID), c_type(TEXTOID), c_id(TEXTOID),
      c_version(INT8OID), c_event(UUIDOID), c_event_type(TEXTOID), c_payload(JSONBOID),
      c_metadata(JSONBOID), c_source(TEXTOID), c_agent(UUIDOID), c_key(INT4OID), c_created(TEXTOID),
      c_hash(BYTEAOID), c_signature(BYTEAOID);
  Column *columns[] = {&c_pos,   &c_tenant,     &c_store,   &c_type,     &c_id,     &c_version,
                       &c_event, &c_event_type, &c_payload, &c_metadata, &c_source, &c_agent,
                       &c_key,   &c_created,    &c_hash,    &c_signature};
  // Room for every row now: nothing allocates C++ memory in the call.
  for (Column *c : columns) c->reserve(count);
  pg_call_void([&] {
    MemoryContext old = MemoryContextSwitchTo(memory);
    for (size_t j = 0; j < count; ++j) {
      AppendInput &e = in[j];
      AppendResult &r = out[events[j]];
      r.event_id = e.id;
      r.position = positions[j];
      r.duplicate = false;
      c_pos.push(Int64GetDatum(r.position));
      c_tenant.push(UUIDPGetDatum(&e.tenant));
      c_store.push(UUIDPGetDatum(&e.store));
      c_type.push(PointerGetDatum(e.entity_type));
      c_id.push(PointerGetDatum(e.entity_id));
      c_version.push(Int64GetDatum(r.entity_version));
      c_event.push(UUIDPGetDatum(&e.id));
      c_event_type.push(PointerGetDatum(e.event_type));
      c_payload.push(JsonbPGetDatum(e.payload));
      c_metadata.push(JsonbPGetDatum(e.metadata));
      c_source.push(PointerGetDatum(e.source));
      c_agent.push(UUIDPGetDatum(&e.sig.agent_id));
      c_key.push(Int32GetDatum(e.sig.key_id));
      c_created.push(CStringGetTextDatum(e.sig.created_at));
      c_hash.push(PointerGetDatum(bytes(e.sig.payload_plain_hash, 32)));
      c_signature.push(PointerGetDatum(bytes(e.sig.agent_signature, 64)));
    }
    Datum args[16];
    for (size_t k = 0; k < 16; ++k) args[k] = columns[k]->array();
    MemoryContextSwitchTo(old);
    spi_run(insert_events_bulk, args, nullptr, false, SPI_OK_INSERT);
    if (fan_out) {
      Datum fan[6] = {args[1], args[0], args[6], args[3], args[4], args[7]};
      spi_run(fan_out_bulk, fan, nullptr, false, SPI_OK_INSERT);
      if (SPI_processed > 0) signals::wake_at_commit();
    }
  });
}

// An entity of a batch: its written events and whether any of them carries
// an expected version (then each is checked and bumped on its own).
struct EntityGroup {
  std::vector<int> members;
  pg_uuid_t store{};
  bool checked = false;
};

// The signatures of a batch's written events, computed on the pool from the
// first pass on, so that the pool signs while this thread claims, bumps
// versions and writes rows. Each event's signing hash waits in its Kept
// until a task of kPerTask events turns it into the signature in place; the
// backend's thread reads it only once that task has finished. The batch's
// signers (one per tenant and store it writes to) keep their secrets alive
// for the tasks.
class BatchSigning {
 public:
  static constexpr size_t kPerTask = 16;

  explicit BatchSigning(Kept *kept) : kept_(kept) {}

  // Takes event i's prepared job (its sig's agent and key in `sig`).
  void add(int i, const keys::SigningJob &job, const keys::Signature &sig) {
    Kept &k = kept_[i];
    k.signer = signer_index(job, sig);
    k.created_unix_micros = job.created_unix_micros;
    std::memcpy(k.signature, job.signing_hash.data(), 32);
    if (!filling_) filling_ = std::make_unique<Task>();
    filling_->secrets[filling_->count] = job.secret.get();
    filling_->events[filling_->count++] = i;
    if (filling_->count == kPerTask) ready_.push_back(std::move(filling_));
  }

  // Queues ready tasks on the pool while fewer than `limit` are queued or
  // running; `flush` also readies a task that is not full.
  void pump(core::ThreadPool &pool, size_t limit, bool flush) {
    if (flush && filling_) ready_.push_back(std::move(filling_));
    while (!ready_.empty() && submitted_ - finished_.load(std::memory_order_acquire) < limit) {
      Task *t = ready_.front().get();
      running_.push_back(std::move(ready_.front()));
      ready_.pop_front();
      ++submitted_;
      pool.submit([this, t] {
        run(kept_, t);
        finished_.fetch_add(1, std::memory_order_release);
      });
    }
  }

  // Waits until every event up to batch index `last` is signed, raising the
  // earliest event's signing error. Queues every task still held back.
  void wait_through(core::ThreadPool &pool, int last, int *current) {
    pump(pool, static_cast<size_t>(-1), true);
    while (!running_.empty() && running_.front()->events[0] <= last) {
      Task *t = running_.front().get();
      pool.wait_until([t] { return t->done.load(std::memory_order_acquire); },
                      safe::check_for_interrupts);
      if (t->error) {
        *current = t->error_event;
        std::rethrow_exception(t->error);
      }
      running_.pop_front();
    }
  }

  // Event i's signature fields, once wait_through has covered it.
  void fill(int i, keys::Signature *sig) const {
    const Kept &k = kept_[i];
    const Signer &s = signers_[static_cast<size_t>(k.signer)];
    sig->agent_id = s.agent_id;
    sig->key_id = s.key_id;
    std::snprintf(sig->created_at, sizeof sig->created_at, "%s",
                  core::rfc3339_utc_millis(k.created_unix_micros).c_str());
    std::memcpy(sig->agent_signature, k.signature, 64);
  }

 private:
  struct Task {
    std::array<int, kPerTask> events{};
    std::array<const core::crypto::SecretBytes *, kPerTask> secrets{};  // owned by signers_
    size_t count = 0;
    std::atomic<bool> done{false};
    std::exception_ptr error;  // the task's first failure, of event error_event
    int error_event = -1;
  };
  struct Signer {
    std::shared_ptr<const core::crypto::SecretBytes> secret;
    pg_uuid_t agent_id;
    int32 key_id;
  };

  int32 signer_index(const keys::SigningJob &job, const keys::Signature &sig) {
    for (size_t s = signers_.size(); s-- > 0;)
      if (signers_[s].secret == job.secret) return static_cast<int32>(s);
    signers_.push_back(Signer{job.secret, sig.agent_id, sig.key_id});
    return static_cast<int32>(signers_.size() - 1);
  }

  // On a pool thread: touches only its events' signature bytes and reads
  // their secrets.
  static void run(Kept *kept, Task *t) {
    for (size_t j = 0; j < t->count; ++j) {
      uint8 *bytes = kept[t->events[j]].signature;
      try {
        core::crypto::Hash32 hash;
        std::memcpy(hash.data(), bytes, 32);
        core::crypto::Signature64 signature = core::crypto::sign_detached_64(hash, *t->secrets[j]);
        std::memcpy(bytes, signature.data(), 64);
      } catch (...) {
        if (!t->error) {
          t->error = std::current_exception();
          t->error_event = t->events[j];
        }
      }
    }
    t->done.store(true, std::memory_order_release);
  }

  Kept *kept_;
  std::vector<Signer> signers_;
  std::unique_ptr<Task> filling_;
  std::deque<std::unique_ptr<Task>> ready_;    // full, not queued yet
  std::deque<std::unique_ptr<Task>> running_;  // queued, in batch order
  size_t submitted_ = 0;
  std::atomic<size_t> finished_{0};
};

// Appends the n events of `src` in order, all or nothing; results in out[].
// C++ containers are alive throughout, so it reaches Postgres only through
// the step wrappers above. Three passes over the batch, each a chunk at a
// time: claims (validation, hashes, keys and ids), versions, signatures;
// then positions and the rows.
void append_many(const BatchSource &src, int n, AppendResult *out, int *current) {
  std::vector<Kept> kept(n);
  std::map<std::string, int> keys_seen, ids_seen;
  // The content hashes of the events with a key or id, to compare repeats.
  std::map<int, std::array<uint8, 32>> contents;
  std::map<std::string, EntityGroup> groups;
  MemoryContext chunk_memory = pg_call([] {
    return AllocSetContextCreate(CurrentMemoryContext, "pg_ves batch chunk",
                                 ALLOCSET_DEFAULT_SIZES);
  });
  auto next_chunk = [&] { pg_call_void([&] { MemoryContextReset(chunk_memory); }); };
  // What the pool's tasks touch: the payload hashes (first pass) and the
  // signatures (from the first pass to the third).
  auto payloads = std::make_unique<PayloadHashes>(src, n);
  BatchSigning signing(kept.data());
  // Declared after everything its tasks touch: its destructor drops what has
  // not started and joins the threads before those go away.
  core::ThreadPool pool(batch_threads(n), true);
  // During the first pass, at most this many signing tasks are queued at a
  // time, so that the payload hashes this thread waits for are not stuck
  // behind them.
  const size_t signing_ahead = Max(pool.threads(), 1u);

  // 1. Claims, with the payload hashes computed ahead on the pool, and each
  // written event's signature prepared here and queued for the pool.
  {
    // Enough queued ahead to keep the threads busy while this thread waits
    // on the database, few enough that the payloads' texts stay small.
    const int ahead = pool.threads() > 0 ? 64 * static_cast<int>(pool.threads()) : 1;
    int queued_until = 0;
    for (int i = 0; i < n; ++i) {
      *current = i;
      if (i % kChunk == 0) next_chunk();
      if (i + ahead / 2 >= queued_until) {
        payloads->queue_until(pool, i + ahead, chunk_memory);
        queued_until = i + ahead;
      }
      Kept &k = kept[i];
      AppendInput in{};
      in_memory(chunk_memory, [&] {
        src.parse(i, &in);
        return 0;
      });
      k.has_id = in.has_id;
      k.has_expected = in.has_expected;
      k.expected = in.expected;
      k.keyed = in.idempotency_key != nullptr;
      step_validate(in);
      const uint8 *payload_hash = payloads->take(pool, i);
      bytea *hash = in_memory(chunk_memory, [&] { return hash_validated(in, payload_hash); });
      k.id = in.id;
      std::memcpy(k.payload_hash, in.sig.payload_plain_hash, 32);
      std::array<uint8, 32> content;
      std::memcpy(content.data(), VARDATA(hash), 32);
      // A key or id repeated inside the batch: the same content is the same
      // event, other content is refused, as across batches.
      std::string tenant(reinterpret_cast<const char *>(in.tenant.data), UUID_LEN);
      int earlier = -1;
      if (in.idempotency_key) {
        auto [it, fresh] = keys_seen.emplace(tenant + text_string(in.idempotency_key), i);
        if (!fresh) earlier = it->second;
      }
      if (earlier < 0 && in.has_id) {
        auto [it, fresh] = ids_seen.emplace(
            tenant + std::string(reinterpret_cast<const char *>(in.id.data), UUID_LEN), i);
        if (!fresh) earlier = it->second;
      }
      if (in.idempotency_key || in.has_id) contents.emplace(i, content);
      if (earlier >= 0) {
        if (contents.at(earlier) != content)
          refuse_repeat(k.keyed && kept[earlier].keyed, i, earlier);
        k.alias = earlier;
        continue;
      }
      bool dup = in_memory(chunk_memory, [&] { return claim(in, hash, !in.has_id, &out[i]); });
      k.written = !dup;
      if (k.written) {
        EntityGroup &g = groups[entity_key(in)];
        if (g.members.empty()) g.store = in.store;
        g.members.push_back(i);
        g.checked |= in.has_expected;
        keys::SigningJob job;
        try {
          job = pg_call([&] {
            return keys::prepare_signature(in.tenant, in.store, in.id, in.entity_type, in.entity_id,
                                           in.event_type, &in.sig);
          });
        } catch (...) {
          // An earlier event's signing error goes first.
          signing.wait_through(pool, i, current);
          *current = i;
          throw;
        }
        signing.add(i, job, in.sig);
        signing.pump(pool, signing_ahead, false);
      }
    }
  }
  payloads.reset();  // every hash was taken: no task touches them any more
  signing.pump(pool, static_cast<size_t>(-1), true);  // the pool signs the rest from here on

  // 2. Versions: one statement for every entity whose events carry no
  // expected version (locking in key order, like any other batch), one per
  // event for the others.
  next_chunk();
  Column g_tenant(UUIDOID), g_type(TEXTOID), g_id(TEXTOID), g_store(UUIDOID), g_count(INT8OID);
  std::vector<EntityGroup *> grouped;
  // The grouped entities' names, until their one statement has run.
  MemoryContext group_memory = pg_call([] {
    return AllocSetContextCreate(CurrentMemoryContext, "pg_ves batch entities",
                                 ALLOCSET_DEFAULT_SIZES);
  });
  int parsed = 0;
  for (auto &entry : groups) {
    EntityGroup &g = entry.second;
    if (g.checked) {
      for (int i : g.members) {
        *current = i;
        if (++parsed % kChunk == 0) next_chunk();
        out[i].entity_version = in_memory(chunk_memory, [&] {
          AppendInput in{};
          parse_kept(src, i, kept[i], &in);
          return bump_version(in);
        });
      }
      continue;
    }
    // The key is the tenant's 16 bytes, the entity type, a NUL, the id.
    const std::string &key = entry.first;
    size_t nul = key.find('\0', UUID_LEN);
    std::pair<Datum, Datum> names = in_memory(group_memory, [&] {
      return std::make_pair(PointerGetDatum(cstring_to_text_with_len(
                                key.data() + UUID_LEN, static_cast<int>(nul - UUID_LEN))),
                            PointerGetDatum(cstring_to_text_with_len(
                                key.data() + nul + 1, static_cast<int>(key.size() - nul - 1))));
    });
    g_tenant.push(UUIDPGetDatum(reinterpret_cast<pg_uuid_t *>(const_cast<char *>(key.data()))));
    g_type.push(names.first);
    g_id.push(names.second);
    g_store.push(UUIDPGetDatum(&g.store));
    g_count.push(Int64GetDatum(static_cast<int64>(g.members.size())));
    grouped.push_back(&g);
  }
  if (!grouped.empty()) {
    *current = -1;
    std::vector<std::pair<std::string, int64>> finals =
        bump_grouped_versions(g_tenant, g_type, g_id, g_store, g_count);
    for (const auto &f : finals) {
      const std::vector<int> &members = groups.at(f.first).members;
      int64 v = f.second - static_cast<int64>(members.size());
      for (int i : members) out[i].entity_version = ++v;
    }
  }
  pg_call_void([&] { MemoryContextDelete(group_memory); });

  // 3. A chunk of written events at a time, once the pool has signed them:
  // positions and the rows. Errors are raised for the earliest event, as
  // when signing one after the other.
  bool fan_out = pg_call([] { return have_destinations(); });
  size_t chunk = static_cast<size_t>(std::min(n, kSigningChunk));
  std::vector<AppendInput> inputs(chunk);
  std::vector<int> events;
  events.reserve(chunk);
  auto write_chunk = [&] {
    signing.wait_through(pool, events.back(), current);
    *current = -1;
    next_chunk();
    for (size_t j = 0; j < events.size(); ++j) {
      AppendInput &in = inputs[j];
      in_memory(chunk_memory, [&] {
        in = AppendInput{};
        parse_kept(src, events[j], kept[events[j]], &in);
        return 0;
      });
      signing.fill(events[j], &in.sig);
    }
    std::vector<int64> positions = take_batch_positions(static_cast<int>(events.size()));
    std::sort(positions.begin(), positions.end());
    insert_rows(inputs.data(), events, positions, out, chunk_memory, fan_out);
    events.clear();
  };
  for (int i = 0; i < n; ++i) {
    if (!kept[i].written) continue;
    events.push_back(i);
    if (events.size() == chunk) write_chunk();
  }
  if (!events.empty()) write_chunk();
  for (int i = 0; i < n; ++i)
    if (kept[i].alias >= 0) {
      out[i] = out[kept[i].alias];
      out[i].duplicate = true;
    }
  pg_call_void([&] { MemoryContextDelete(chunk_memory); });
}

}  // namespace

void notify_appended() {
  if (settings::notify_on_append && !signals::relay_notify_at_commit())
    listeners::notify_at_commit();
}

namespace {

HeapTuple result_tuple(TupleDesc desc, const AppendResult &r) {
  pg_uuid_t *id = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
  *id = r.event_id;
  Datum values[4] = {UUIDPGetDatum(id), Int64GetDatum(r.position), Int64GetDatum(r.entity_version),
                     BoolGetDatum(r.duplicate)};
  bool nulls[4] = {false, false, false, false};
  return heap_form_tuple(desc, values, nulls);
}

// --- append_batch: one JSON object per event --------------------------------

struct BatchContext {
  int index;
  int count;
};

void batch_error_context(void *arg) {
  BatchContext *ctx = static_cast<BatchContext *>(arg);
  if (ctx->index >= 0)
    errcontext("event %d of %d in the batch (counting from 1)", ctx->index + 1, ctx->count);
}

// Finds the string member `key` of an event into *v; false when it is absent
// or null, which a required key may not be.
bool field_string(JsonbContainer *obj, const char *key, bool required, JsonbValue *v) {
  if (!getKeyJsonValueFromContainer(obj, key, strlen(key), v) || v->type == jbvNull) {
    if (required)
      ereport(ERROR, (errcode(sqlstate::invalid_batch), errmsg("\"%s\" is missing", key),
                      errhint("Every event of a batch needs \"%s\".", key)));
    return false;
  }
  if (v->type != jbvString)
    ereport(ERROR, (errcode(sqlstate::invalid_batch), errmsg("\"%s\" must be a string", key),
                    errhint("Write \"%s\" as a JSON string.", key)));
  return true;
}

text *field_text(JsonbContainer *obj, const char *key, bool required) {
  JsonbValue v;
  if (!field_string(obj, key, required, &v)) return nullptr;
  return cstring_to_text_with_len(v.val.string.val, v.val.string.len);
}

// Parses the UUID in place: a batch has two per event, and copies of their
// texts would stay until the call ends.
bool field_uuid(JsonbContainer *obj, const char *key, bool required, pg_uuid_t *out) {
  JsonbValue v;
  if (!field_string(obj, key, required, &v)) return false;
  // uuid_in reports bad input as 22P02; a batch reports it as its own error.
  // The same forms as uuid_in: hex digits with optional hyphens after
  // groups of four, optionally in braces.
  const char *p = v.val.string.val, *end = p + v.val.string.len;
  bool braces = p < end && *p == '{';
  if (braces) ++p;
  int digits = 0;
  bool ok = true;
  for (; p < end && ok && digits < 32; ++p) {
    int value;
    if (*p >= '0' && *p <= '9')
      value = *p - '0';
    else if (*p >= 'a' && *p <= 'f')
      value = *p - 'a' + 10;
    else if (*p >= 'A' && *p <= 'F')
      value = *p - 'A' + 10;
    else {
      ok = *p == '-' && digits > 0 && digits % 4 == 0 && p + 1 < end && p[1] != '-';
      continue;
    }
    if (digits % 2 == 0)
      out->data[digits / 2] = static_cast<unsigned char>(value << 4);
    else
      out->data[digits / 2] |= static_cast<unsigned char>(value);
    ++digits;
  }
  if (ok && braces) ok = p < end && *p++ == '}';
  if (!ok || digits != 32 || p != end)
    ereport(
        ERROR,
        (errcode(sqlstate::invalid_uuid),
         errmsg("\"%s\" is not a valid UUID: \"%.*s\"", key, v.val.string.len, v.val.string.val),
         errhint("Write UUIDs as 32 hex digits, e.g. 00000000-0000-0000-0000-000000000001.")));
  return true;
}

Jsonb *field_object(JsonbContainer *obj, const char *key, bool required) {
  JsonbValue v;
  if (!getKeyJsonValueFromContainer(obj, key, strlen(key), &v) || v.type == jbvNull) {
    if (required)
      ereport(ERROR, (errcode(sqlstate::invalid_batch), errmsg("\"%s\" is missing", key),
                      errhint("Every event of a batch needs \"%s\".", key)));
    return nullptr;
  }
  if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
    ereport(ERROR, (errcode(sqlstate::invalid_payload), errmsg("\"%s\" must be a JSON object", key),
                    errhint("Wrap the value in an object, e.g. {\"value\": ...}.")));
  return JsonbValueToJsonb(&v);
}

void check_batch_keys(JsonbContainer *obj) {
  static const char *known[] = {
      "tenant_id",        "store_id",        "entity_type", "entity_id", "event_type", "payload",
      "expected_version", "idempotency_key", "metadata",    "source",    "id"};
  JsonbIterator *it = JsonbIteratorInit(obj);
  JsonbValue v;
  JsonbIteratorToken tok;
  while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
    if (tok != WJB_KEY) continue;
    bool found = false;
    for (const char *k : known)
      if (strlen(k) == static_cast<size_t>(v.val.string.len) &&
          memcmp(k, v.val.string.val, v.val.string.len) == 0)
        found = true;
    if (!found)
      ereport(ERROR, (errcode(sqlstate::invalid_batch),
                      errmsg("unknown key \"%.*s\"", v.val.string.len, v.val.string.val),
                      errhint("Event keys are the parameters of ves.append: tenant_id, store_id, "
                              "entity_type, entity_id, event_type, payload, expected_version, "
                              "idempotency_key, metadata, source, id.")));
  }
}

Jsonb *empty_object() {
  return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}

void batch_input(JsonbContainer *obj, AppendInput *in, Jsonb *empty, text *manual) {
  check_batch_keys(obj);
  field_uuid(obj, "tenant_id", true, &in->tenant);
  field_uuid(obj, "store_id", true, &in->store);
  in->entity_type = field_text(obj, "entity_type", true);
  in->entity_id = field_text(obj, "entity_id", true);
  in->event_type = field_text(obj, "event_type", true);
  in->payload = field_object(obj, "payload", true);
  in->idempotency_key = field_text(obj, "idempotency_key", false);
  in->metadata = field_object(obj, "metadata", false);
  if (!in->metadata) in->metadata = empty;
  in->source = field_text(obj, "source", false);
  if (!in->source) in->source = manual;
  in->has_id = field_uuid(obj, "id", false, &in->id);
  in->presigned = false;
  JsonbValue v;
  in->has_expected = false;
  if (getKeyJsonValueFromContainer(obj, "expected_version", 16, &v) && v.type != jbvNull) {
    if (v.type != jbvNumeric)
      ereport(ERROR,
              (errcode(sqlstate::invalid_batch), errmsg("\"expected_version\" must be a number"),
               errhint("Use null, 0, -1 or the exact current version.")));
    in->has_expected = true;
    in->expected = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v.val.numeric)));
  }
}

}  // namespace
}  // namespace pgves::pg

using namespace pgves::pg;

PGVES_FUNCTION(ves_append) {
  require_arg(fcinfo, 0, "tenant_id");
  require_arg(fcinfo, 1, "store_id");
  require_arg(fcinfo, 2, "entity_type");
  require_arg(fcinfo, 3, "entity_id");
  require_arg(fcinfo, 4, "event_type");
  require_arg(fcinfo, 5, "payload");
  AppendInput in;
  in.tenant = *PG_GETARG_UUID_P(0);
  in.store = *PG_GETARG_UUID_P(1);
  in.entity_type = PG_GETARG_TEXT_PP(2);
  in.entity_id = PG_GETARG_TEXT_PP(3);
  in.event_type = PG_GETARG_TEXT_PP(4);
  in.payload = PG_GETARG_JSONB_P(5);
  in.has_expected = !PG_ARGISNULL(6);
  in.expected = in.has_expected ? PG_GETARG_INT64(6) : 0;
  in.idempotency_key = PG_ARGISNULL(7) ? nullptr : PG_GETARG_TEXT_PP(7);
  in.metadata = PG_ARGISNULL(8) ? empty_object() : PG_GETARG_JSONB_P(8);
  in.source = PG_ARGISNULL(9) ? cstring_to_text("manual") : PG_GETARG_TEXT_PP(9);
  in.has_id = !PG_ARGISNULL(10);
  if (in.has_id) in.id = *PG_GETARG_UUID_P(10);
  in.presigned = false;

  // The result's descriptor, looked up once per call site.
  TupleDesc desc = static_cast<TupleDesc>(fcinfo->flinfo->fn_extra);
  if (!desc) {
    MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "pg_ves: ves.append must return a composite");
    desc = BlessTupleDesc(desc);
    MemoryContextSwitchTo(old);
    fcinfo->flinfo->fn_extra = desc;
  }
  spi_connect();
  AppendResult r = append_one(in);
  SPI_finish();
  if (!r.duplicate) notify_appended();
  return HeapTupleGetDatum(result_tuple(desc, r));
}

namespace {

void refuse_non_array() {
  ereport(ERROR,
          (errcode(sqlstate::invalid_batch), errmsg("events must be a JSON array of objects"),
           errhint("Pass '[{\"tenant_id\": ..., \"entity_type\": ..., ...}, ...]'.")));
}

// Appends the `count` events of `src` and returns them as the call's rows
// (append_batch, for either type of argument).
Datum run_batch(FunctionCallInfo fcinfo, const BatchSource &src, int count) {
  ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  InitMaterializedSRF(fcinfo, 0);
  BatchContext ctx = {0, count};
  ErrorContextCallback callback;
  callback.callback = batch_error_context;
  callback.arg = &ctx;
  callback.previous = error_context_stack;
  error_context_stack = &callback;

  // Every event is parsed once here, so a malformed one is refused before
  // anything is written; each pass of append_many parses them again, a chunk
  // at a time (see BatchSource).
  AppendResult *results =
      static_cast<AppendResult *>(palloc0(sizeof(AppendResult) * Max(count, 1)));
  MemoryContext scratch =
      AllocSetContextCreate(CurrentMemoryContext, "pg_ves batch check", ALLOCSET_SMALL_SIZES);
  MemoryContext old_memory = MemoryContextSwitchTo(scratch);
  for (ctx.index = 0; ctx.index < count; ++ctx.index) {
    AppendInput in;
    src.parse(ctx.index, &in);
    MemoryContextReset(scratch);
  }
  MemoryContextSwitchTo(old_memory);
  MemoryContextDelete(scratch);
  spi_connect();
  try {
    append_many(src, count, results, &ctx.index);
  } catch (const PgError &) {
    // Its context lines were collected when it was raised.
    error_context_stack = callback.previous;
    throw;
  } catch (const std::exception &e) {
    // Raised later, outside this frame: the context callback must not
    // outlive it, so the event number goes into the message instead.
    error_context_stack = callback.previous;
    int at = ctx.index;
    if (at < 0) throw;
    if (auto *core_error = dynamic_cast<const pgves::core::Error *>(&e))
      throw VesError(sqlstate_for_core(core_error->code()),
                     "event " + std::to_string(at + 1) + " of the batch: " + core_error->what());
    throw;
  }
  SPI_finish();
  error_context_stack = callback.previous;
  bool appended = false;
  MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
  for (int i = 0; i < count; ++i) {
    appended |= !results[i].duplicate;
    tuplestore_puttuple(rsinfo->setResult, result_tuple(rsinfo->setDesc, results[i]));
  }
  MemoryContextSwitchTo(old);
  if (appended) notify_appended();
  return (Datum)0;
}

// --- append_batch(text): the array read one event at a time ----------------
//
// PostgreSQL's jsonb input keeps every token and node of a document until the
// statement ends, about 14 times the text: a jsonb argument costs that before
// append_batch runs. A text argument is read here instead. One pass of
// PostgreSQL's JSON lexer over the text finds each event of the top-level
// array; each event's text is parsed into a jsonb value of its own (by
// jsonb_in, so an event means what it means in a jsonb array) in scratch
// memory, which is reset after copying the value out.

struct TextScan {
  JsonLexContext *lex;
  const char *element_start;
  bool root_array;
  Jsonb **items;
  int count;
  int capacity;
  MemoryContext kept;     // the events' jsonb values, for the call
  MemoryContext scratch;  // one event's parse
};

void scan_array_start(void *state) {
  TextScan *s = static_cast<TextScan *>(state);
  if (s->lex->lex_level == 0) s->root_array = true;
}

void scan_element_start(void *state, bool) {
  TextScan *s = static_cast<TextScan *>(state);
  if (s->lex->lex_level == 1) s->element_start = s->lex->token_start;
}

// Errors while an event is read name it, as the passes over the batch do
// (the number of events is not known yet).
void scan_error_context(void *arg) {
  TextScan *s = static_cast<TextScan *>(arg);
  if (s->element_start) errcontext("event %d of the batch (counting from 1)", s->count + 1);
}

void scan_element_end(void *state, bool) {
  TextScan *s = static_cast<TextScan *>(state);
  if (s->lex->lex_level != 1) return;
  CHECK_FOR_INTERRUPTS();
  size_t len = static_cast<size_t>(s->lex->prev_token_terminator - s->element_start);
  MemoryContext old = MemoryContextSwitchTo(s->scratch);
  char *copy = static_cast<char *>(palloc(len + 1));
  memcpy(copy, s->element_start, len);
  copy[len] = '\0';
  Jsonb *parsed = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(copy)));
  MemoryContextSwitchTo(old);
  Jsonb *item = static_cast<Jsonb *>(MemoryContextAlloc(s->kept, VARSIZE(parsed)));
  memcpy(item, parsed, VARSIZE(parsed));
  MemoryContextReset(s->scratch);
  if (s->count == s->capacity) {
    s->capacity = Max(64, s->capacity * 2);
    s->items = static_cast<Jsonb **>(s->items ? repalloc(s->items, sizeof(Jsonb *) * s->capacity)
                                              : palloc(sizeof(Jsonb *) * s->capacity));
  }
  s->items[s->count++] = item;
  s->element_start = nullptr;
}

}  // namespace

PGVES_FUNCTION(ves_append_batch) {
  require_arg(fcinfo, 0, "events");
  Jsonb *events = PG_GETARG_JSONB_P(0);
  if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events)) refuse_non_array();
  BatchSource src = {events, nullptr, empty_object(), cstring_to_text("manual")};
  return run_batch(fcinfo, src, JB_ROOT_COUNT(events));
}

PGVES_FUNCTION(ves_append_batch_text) {
  require_arg(fcinfo, 0, "events");
  text *events = PG_GETARG_TEXT_PP(0);
  TextScan scan = {};
  scan.kept =
      GenerationContextCreate(CurrentMemoryContext, "pg_ves batch events", ALLOCSET_DEFAULT_SIZES);
  scan.scratch =
      AllocSetContextCreate(CurrentMemoryContext, "pg_ves batch event", ALLOCSET_DEFAULT_SIZES);
  scan.lex = makeJsonLexContextCstringLen(VARDATA_ANY(events), VARSIZE_ANY_EXHDR(events),
                                          GetDatabaseEncoding(), false);
  JsonSemAction sem = {};
  sem.semstate = &scan;
  sem.array_start = scan_array_start;
  sem.array_element_start = scan_element_start;
  sem.array_element_end = scan_element_end;
  ErrorContextCallback callback;
  callback.callback = scan_error_context;
  callback.arg = &scan;
  callback.previous = error_context_stack;
  error_context_stack = &callback;
  pg_parse_json_or_ereport(scan.lex, &sem);
  error_context_stack = callback.previous;
  if (!scan.root_array) refuse_non_array();
  MemoryContextDelete(scan.scratch);
  // A detoasted copy is not needed any more; the argument itself is the
  // executor's.
  if (reinterpret_cast<Datum>(events) != PG_GETARG_DATUM(0)) pfree(events);
  BatchSource src = {nullptr, scan.items, empty_object(), cstring_to_text("manual")};
  return run_batch(fcinfo, src, scan.count);
}
