// See alerts.hpp. The queue is an array of slots, each with an atomic
// state: free -> writing (a reporter owns it) -> ready -> taken (a drainer
// owns it, until its transaction ends: commit frees the slot, abort makes
// it ready again). Nothing here holds a lock; a slot is only ever touched
// by whoever moved its state with a compare-and-swap.
#include "pg/sync/alerts.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/shmem.hpp"
#include "pg/sync/signals.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include <cstring>
#include <vector>

namespace pgves::pg::alerts {
namespace {

constexpr int kSlots = 64;
constexpr uint32 kFree = 0, kWriting = 1, kReady = 2, kTaken = 3;

struct Slot {
  pg_atomic_uint32 state;
  int taker;  // pid of the drainer, while taken
  Oid dboid;
  TimestampTz detected_at;
  pg_uuid_t uid;  // the alert's identity: a drain repeated after an abort adds nothing
  bool has_tenant, has_store, has_event, has_sequence, raw_truncated;
  pg_uuid_t tenant, store, event_id;
  int64 sequence_number;
  char kind[40];
  char source[160];
  char role[NAMEDATALEN];
  char reason[512];
  uint32 raw_len;
  char raw[kRawMax];
};

struct Shared {
  Slot slots[kSlots];
};

Shared *shared = nullptr;
bool callback_registered = false;

Size size() { return sizeof(Shared); }

void init(void *segment) {
  auto *s = static_cast<Shared *>(segment);
  memset(s, 0, sizeof(Shared));
  for (auto &slot : s->slots) pg_atomic_init_u32(&slot.state, kFree);
}

void attach(void *segment) { shared = static_cast<Shared *>(segment); }

// At most max bytes of s, not cutting a UTF-8 sequence, NUL-terminated.
void put_text(char *out, std::size_t cap, std::string_view s) {
  std::size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
  if (n < s.size())
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  for (std::size_t i = 0; i < n; ++i) out[i] = s[i] == '\0' ? ' ' : s[i];
  out[n] = '\0';
}

void end_of_transaction(XactEvent event, void *) {
  bool commit = event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT;
  bool abort = event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT;
  if (!shared || (!commit && !abort)) return;
  for (auto &slot : shared->slots) {
    if (pg_atomic_read_u32(&slot.state) != kTaken || slot.taker != MyProcPid) continue;
    slot.taker = 0;
    pg_write_barrier();
    pg_atomic_write_u32(&slot.state, commit ? kFree : kReady);
  }
}

std::string uuid_text(const pg_uuid_t &u) {
  static const char *hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += hex[u.data[i] >> 4];
    s += hex[u.data[i] & 15];
  }
  return s;
}

void log_alert(const Alert &a, const char *what) {
  std::string line = std::string("pg_ves: security alert ") + what + ": kind=" + a.kind +
                     ", source=" + a.source +
                     (a.tenant ? ", tenant=" + uuid_text(*a.tenant) : std::string()) +
                     (a.event_id ? ", event=" + uuid_text(*a.event_id) : std::string()) +
                     ", reason=" + a.reason + ", message bytes=" + std::to_string(a.raw.size());
  pg_call_void([&] { ereport(LOG, (errmsg("%s", line.c_str()), errhidestmt(true))); });
}

// A plain copy of a taken slot, made before anything can fail.
struct Copy {
  Slot *slot;
  std::string kind, source, role, reason, raw;
  TimestampTz detected_at;
  pg_uuid_t uid, tenant, store, event_id;
  bool has_tenant, has_store, has_event, has_sequence, raw_truncated;
  int64 sequence_number;
};

}  // namespace

void request_shmem() { shmem::register_segment("pg_ves security alerts", size, init, attach); }

void report(const Alert &alert) noexcept {
  try {
    Slot *slot = nullptr;
    if (shared)
      for (auto &s : shared->slots) {
        uint32 expected = kFree;
        if (pg_atomic_compare_exchange_u32(&s.state, &expected, kWriting)) {
          slot = &s;
          break;
        }
      }
    if (!slot) {
      log_alert(alert, shared ? "not queued (the queue is full; this line is its only record)"
                              : "not queued (pg_ves is not in shared_preload_libraries; this "
                                "line is its only record)");
      return;
    }
    slot->dboid = MyDatabaseId;
    slot->taker = 0;
    slot->detected_at = GetCurrentTimestamp();
    if (!pg_strong_random(slot->uid.data, sizeof slot->uid.data))
      for (int i = 0; i < 16; ++i) slot->uid.data[i] = static_cast<uint8>(random());
    slot->uid.data[6] = (slot->uid.data[6] & 0x0F) | 0x40;
    slot->uid.data[8] = (slot->uid.data[8] & 0x3F) | 0x80;
    slot->has_tenant = alert.tenant.has_value();
    if (alert.tenant) slot->tenant = *alert.tenant;
    slot->has_store = alert.store.has_value();
    if (alert.store) slot->store = *alert.store;
    slot->has_event = alert.event_id.has_value();
    if (alert.event_id) slot->event_id = *alert.event_id;
    slot->has_sequence = alert.sequence_number.has_value();
    slot->sequence_number = alert.sequence_number.value_or(0);
    put_text(slot->kind, sizeof slot->kind, alert.kind);
    put_text(slot->source, sizeof slot->source, alert.source);
    put_text(slot->reason, sizeof slot->reason, alert.reason);
    const char *role = GetUserNameFromId(GetSessionUserId(), true);
    put_text(slot->role, sizeof slot->role, role ? role : "");
    slot->raw_len = static_cast<uint32>(alert.raw.size() < kRawMax ? alert.raw.size() : kRawMax);
    slot->raw_truncated = alert.raw.size() > kRawMax;
    memcpy(slot->raw, alert.raw.data(), slot->raw_len);
    pg_write_barrier();
    pg_atomic_write_u32(&slot->state, kReady);
    signals::wake_workers_now();
    log_alert(alert, "queued");
  } catch (...) {
    // Logging failed (out of memory): nothing more can be done here.
  }
}

bool pending() {
  if (!shared) return false;
  for (auto &slot : shared->slots)
    if (pg_atomic_read_u32(&slot.state) == kReady && slot.dboid == MyDatabaseId) return true;
  return false;
}

int drain() {
  if (!shared) return 0;
  if (!callback_registered) {
    RegisterXactCallback(end_of_transaction, nullptr);
    callback_registered = true;
  }
  std::vector<Copy> taken;
  for (auto &slot : shared->slots) {
    if (pg_atomic_read_u32(&slot.state) != kReady || slot.dboid != MyDatabaseId) continue;
    uint32 expected = kReady;
    // A slot this backend took in a transaction that is still open (a
    // second call in it) is already being written.
    if (!pg_atomic_compare_exchange_u32(&slot.state, &expected, kTaken)) continue;
    pg_read_barrier();
    if (slot.dboid != MyDatabaseId) {  // reused for another database meanwhile
      pg_atomic_write_u32(&slot.state, kReady);
      continue;
    }
    slot.taker = MyProcPid;
    Copy c;
    c.slot = &slot;
    c.kind = slot.kind;
    c.source = slot.source;
    c.role = slot.role;
    c.reason = slot.reason;
    c.raw.assign(slot.raw, slot.raw_len);
    c.detected_at = slot.detected_at;
    c.uid = slot.uid;
    c.tenant = slot.tenant;
    c.store = slot.store;
    c.event_id = slot.event_id;
    c.has_tenant = slot.has_tenant;
    c.has_store = slot.has_store;
    c.has_event = slot.has_event;
    c.has_sequence = slot.has_sequence;
    c.raw_truncated = slot.raw_truncated;
    c.sequence_number = slot.sequence_number;
    taken.push_back(std::move(c));
  }
  if (taken.empty()) return 0;
  safe::spi_connect();
  int written = 0;
  for (const Copy &c : taken) {
    Datum args[12] = {safe::uuid_datum(c.uid),
                      safe::text_datum(c.kind),
                      safe::text_datum(c.source),
                      c.has_tenant ? safe::uuid_datum(c.tenant) : Datum(0),
                      c.has_store ? safe::uuid_datum(c.store) : Datum(0),
                      Int64GetDatum(c.sequence_number),
                      c.has_event ? safe::uuid_datum(c.event_id) : Datum(0),
                      safe::text_datum(c.reason),
                      safe::bytea_datum(c.raw.data(), c.raw.size()),
                      BoolGetDatum(c.raw_truncated),
                      safe::text_datum(c.role),
                      TimestampTzGetDatum(c.detected_at)};
    char nulls[13] = {' ',
                      ' ',
                      ' ',
                      c.has_tenant ? ' ' : 'n',
                      c.has_store ? ' ' : 'n',
                      c.has_sequence ? ' ' : 'n',
                      c.has_event ? ' ' : 'n',
                      ' ',
                      ' ',
                      ' ',
                      c.role.empty() ? 'n' : ' ',
                      ' ',
                      '\0'};
    written += pg_call([&] {
      Oid types[12] = {UUIDOID, TEXTOID, TEXTOID,  UUIDOID, UUIDOID, INT8OID,
                       UUIDOID, TEXTOID, BYTEAOID, BOOLOID, TEXTOID, TIMESTAMPTZOID};
      int rc = SPI_execute_with_args(
          "WITH a AS (INSERT INTO ves.security_alerts (alert_uid, kind, source, tenant_id, "
          "store_id,"
          " sequence_number, event_id, reason, raw, raw_truncated, reported_by, detected_at)"
          " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
          " ON CONFLICT (alert_uid) DO NOTHING RETURNING id, kind, source, tenant_id)"
          " SELECT pg_catalog.pg_notify('ves_security', pg_catalog.json_build_object("
          "'id', a.id, 'kind', a.kind, 'source', a.source, 'tenant_id', a.tenant_id)::text) FROM a",
          12, types, args, nulls, false, 0);
      if (rc != SPI_OK_SELECT) elog(ERROR, "pg_ves: cannot record a security alert");
      return static_cast<int>(SPI_processed);
    });
  }
  safe::spi_finish();
  return written;
}

}  // namespace pgves::pg::alerts

using namespace pgves::pg;

// ves._drain_security_alerts() -> int: the queued alerts of this database
// into ves.security_alerts (the worker calls it; so may an administrator
// where no worker serves the database).
PGVES_FUNCTION(ves_drain_security_alerts) { PG_RETURN_INT32(alerts::drain()); }
