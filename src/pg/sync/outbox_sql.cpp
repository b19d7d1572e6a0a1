// The deliverer's statements (see outbox_sql.hpp).
#include "pg/sync/outbox_sql.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/sync/metrics.hpp"
#include "pg/store/stored_event.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <string>
#include <string_view>

namespace pgves::pg::outbox_sql {
namespace {

// One destination's claim. Its plan must not depend on the table's
// statistics (the worker keeps its plans, and statistics taken while the
// outbox was empty would otherwise pick a plan that scans every open row for
// every candidate): each part has exactly one access path that needs no sort
// or sequential scan, which run_indexed turns off.
//  - candidates: outbox_open_idx, (destination_id, event_position), read in
//    position order from the scan floor;
//  - "no earlier open row of this entity": one probe of outbox_entity_idx
//    for the entity's open row just before the candidate (two rows at one
//    position, as a listing queued again at its SKU's latest event, go by
//    id; the position bound stays an index condition). A scalar subquery
//    with LIMIT, not NOT EXISTS: that would become an anti-join, which the
//    planner may run as a hash join over a full index scan. The ORDER BY
//    (position, once the entity's columns are fixed) needs a sort on any
//    other index, and outbox_open_idx, which would serve it, does not apply
//    (its predicate needs next_attempt_at, which the probe does not test);
//  - the update finds the locked rows by their ctid (a TID scan), not by a
//    join whose order the statistics would choose.
// A committed lease blocks a row until it expires unless its holder is gone
// ($6 lists the lease identities of the workers alive now): rows of a worker
// that was killed are taken over at once.
const char *kClaimSql =
    "UPDATE ves.outbox o SET lease_until = now() + $3 * interval '1 second', leased_by = $5"
    " WHERE o.ctid = ANY (ARRAY("
    "  SELECT c.ctid FROM ves.outbox c"
    "  WHERE c.destination_id = $2 AND c.status IN ('pending', 'failed')"
    "    AND c.event_position >= $4"
    "    AND c.next_attempt_at <= now()"
    "    AND (c.lease_until IS NULL OR c.lease_until < now() OR NOT coalesce(c.leased_by = ANY "
    "($6), false))"
    "    AND (SELECT 1 FROM ves.outbox p"
    "         WHERE p.destination_id = c.destination_id AND p.tenant_id = c.tenant_id"
    "           AND p.entity_type = c.entity_type AND p.entity_id = c.entity_id"
    "           AND p.event_position <= c.event_position"
    "           AND (p.event_position < c.event_position OR p.id < c.id)"
    "           AND p.status IN ('pending', 'failed', 'conflict')"
    "         ORDER BY p.event_position DESC"
    "         LIMIT 1) IS NULL"
    "  ORDER BY c.event_position"
    "  LIMIT $1"
    "  FOR UPDATE SKIP LOCKED))"
    " RETURNING o.id, o.tenant_id, o.destination_id, o.attempts, o.event_position, "
    "o.event_recorded_at, o.entity_type, o.entity_id, o.base_check";

// A platform destination's claim: the same, with the listings of each
// claimed inventory row and its SKU's counts, as the claim's own snapshot
// has them (every claimed row is in it, and so is its event's change of
// the count; a later change has a row of its own, claimed after this one).
// One result row per (outbox row, listing), an outbox row without listings
// once with NULLs; a non-flattened lateral subquery, so each outbox row's
// listings come together, in location order by the listings' key, and
// each count is one lookup of the inventory's key.
const std::string kClaimListingsSql =
    std::string("WITH c AS (") + kClaimSql + ")" +
    " SELECT c.*, x.location, x.platform_ref::text, x.available, x.known_quantity"
    " FROM c LEFT JOIN LATERAL ("
    "   SELECT l.location, l.platform_ref, l.known_quantity,"
    "     coalesce((SELECT i.available FROM ves.inventory i"
    "               WHERE i.tenant_id = l.tenant_id AND i.store_id = l.store_id"
    "                 AND i.sku = l.sku AND i.location = l.location), 0) AS available"
    "   FROM ves.listings l"
    "   WHERE c.entity_type = 'inventory' AND l.destination_id = c.destination_id"
    "     AND l.sku = c.entity_id"
    "   ORDER BY l.location OFFSET 0) x ON true";

const char *kRecordSql =
    "UPDATE ves.outbox o SET status = r.status, attempts = r.attempts,"
    "  next_attempt_at = now() + r.delay_ms * interval '1 millisecond',"
    "  last_status = nullif(r.http_status, 0), last_error = r.error, last_response = r.excerpt,"
    "  lease_until = NULL, leased_by = NULL, updated_at = now(),"
    "  synced_at = CASE WHEN r.status = 'synced' THEN now() END"
    " FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::int[], $6::int[], "
    "$7::text[], $8::text[])"
    "   AS r(id, tenant_id, status, delay_ms, attempts, http_status, error, excerpt)"
    " WHERE o.tenant_id = r.tenant_id AND o.id = r.id AND o.leased_by = $9"
    "   AND o.lease_until IS NOT NULL";

// Stores the verified sequencer receipts of rows still leased by $6, before
// kRecordSql ends their leases. A receipt already stored (the same event
// pushed again to the same destination) stays as it was.
const char *kReceiptSql =
    "INSERT INTO ves.sequencer_receipts AS x (tenant_id, event_id, destination_id,"
    "  sequence_number, sequenced_at, receipt_hash, signature_verified, receipt)"
    " SELECT r.tenant_id, r.event_id, r.destination_id, (r.receipt->>'sequenceNumber')::bigint,"
    "  (r.receipt->>'sequencedAt')::timestamptz,"
    "  decode(regexp_replace(r.receipt->>'receiptHash', '^0[xX]', ''), 'hex'), r.verified, "
    "r.receipt"
    " FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::int[], $5::jsonb[], $7::boolean[])"
    "   AS r(id, tenant_id, event_id, destination_id, receipt, verified)"
    " JOIN ves.outbox o ON o.tenant_id = r.tenant_id AND o.id = r.id AND o.leased_by = $6"
    "   AND o.lease_until IS NOT NULL"
    " ON CONFLICT (tenant_id, destination_id, event_id) DO NOTHING";

// Runs one of the delivery statements with sequential scans, bitmap scans,
// sorts, hash joins and merge joins off. Their right plans are index
// lookups in nested loops whatever the table's size: right after a burst
// the statistics still say the outbox is tiny, and a plan made then (the
// worker keeps its plans) would scan every row of a queue that has since
// grown; a hash join of a few outcomes with the listings reads every
// listing of the table at every record. The settings hold for this
// statement only.
// Not read-only: a read-only SPI query would use the transaction's first
// snapshot, older than the claim's, and miss rows committed between.
void run_indexed(SavedPlan &plan, Datum *args, const char *nulls, int expect) {
  int level = NewGUCNestLevel();
  for (const char *name : {"enable_seqscan", "enable_bitmapscan", "enable_sort",
                           "enable_incremental_sort", "enable_hashjoin", "enable_mergejoin"})
    set_config_option(name, "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  spi_run(plan, args, nulls, false, expect);
  AtEOXact_GUC(true, level);
}

SavedPlan claim_plan = {
    kClaimSql, 6, {INT4OID, INT4OID, INT4OID, INT8OID, INT8OID, INT8ARRAYOID}, nullptr};
SavedPlan claim_listings_plan = {kClaimListingsSql.c_str(),
                                 6,
                                 {INT4OID, INT4OID, INT4OID, INT8OID, INT8OID, INT8ARRAYOID},
                                 nullptr};
SavedPlan record_plan = {kRecordSql,
                         9,
                         {INT8ARRAYOID, UUIDARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID,
                          INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8OID},
                         nullptr};
SavedPlan destination_plan = {
    "UPDATE ves.destinations SET breaker_state = $2,"
    "  last_success_at = CASE WHEN $3 THEN now() ELSE last_success_at END,"
    "  last_error = coalesce($4, last_error), last_error_at = CASE WHEN $4 IS NULL THEN "
    "last_error_at ELSE now() END,"
    "  paused = paused OR $5, paused_reason = CASE WHEN $5 THEN $4 ELSE paused_reason END"
    " WHERE id = $1",
    5,
    {INT4OID, TEXTOID, BOOLOID, TEXTOID, BOOLOID},
    nullptr};

// A one-dimensional array of `values`; with `nulls`, element i is NULL
// where (*nulls)[i] is set.
Datum array_of(const std::vector<Datum> &values, Oid type,
               const std::vector<bool> *nulls = nullptr) {
  int16 len;
  bool byval;
  char align;
  get_typlenbyvalalign(type, &len, &byval, &align);
  bool *flags = nullptr;
  if (nulls) {
    flags = static_cast<bool *>(palloc(sizeof(bool) * (nulls->size() + 1)));
    for (size_t i = 0; i < nulls->size(); ++i) flags[i] = (*nulls)[i];
  }
  int dims[1] = {static_cast<int>(values.size())};
  int lbs[1] = {1};
  return PointerGetDatum(construct_md_array(const_cast<Datum *>(values.data()), flags, 1, dims, lbs,
                                            type, len, byval, align));
}

Datum int8_array(const std::vector<std::int64_t> &values) {
  std::vector<Datum> datums;
  datums.reserve(values.size());
  for (std::int64_t v : values) datums.push_back(Int64GetDatum(v));
  return array_of(datums, INT8OID);
}

// Response excerpts are diagnostics: cut at the first byte that is not
// valid as text so the text column never refuses them.
int clean_length(const std::string &s) {
  size_t n = 0;
  while (n < s.size() && s[n] != '\0' && static_cast<unsigned char>(s[n]) < 0x80) ++n;
  return static_cast<int>(n);
}

}  // namespace

void begin_step(const char *activity) {
  pg_call_void([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    spi_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, activity);
  });
}

void commit_step() {
  pg_call_void([] {
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

void abort_step() {
  pg_call_void([] { AbortCurrentTransaction(); });
}

std::string sync_settings_json() {
  return pg_call([] {
    if (SPI_execute("SELECT settings::text FROM ves.sync_settings", true, 1) != SPI_OK_SELECT)
      elog(ERROR, "pg_ves: cannot read ves.sync_settings");
    char *json_text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    return std::string(json_text ? json_text : "{}");
  });
}

char ***destination_rows(uint64 *count) {
  return pg_call([&] {
    if (SPI_execute(
            "SELECT d.id, d.name, d.kind, d.url, encode(s.secret_box, 'hex'), d.concurrency,"
            " d.rate_limit, d.burst, d.timeout_ms, d.max_attempts, d.backoff_base_ms, "
            "d.backoff_cap_ms,"
            " d.jitter, d.breaker_threshold, d.breaker_cooldown_ms, d.headers::text, d.paused,"
            " encode(s.headers_box, 'hex'), d.kind_options::text, d.tenant_id::text,"
            " encode(s.credentials_box, 'hex'), encode(s.token_box, 'hex')"
            " FROM ves.destinations d LEFT JOIN ves._worker_secrets() s ON s.destination_id = "
            "d.id",
            true, 0) != SPI_OK_SELECT)
      elog(ERROR, "pg_ves: cannot read ves.destinations");
    uint64 nrows = SPI_processed;
    auto rows = static_cast<char ***>(palloc0(sizeof(char **) * (nrows + 1)));
    for (uint64 i = 0; i < nrows; ++i) {
      rows[i] = static_cast<char **>(palloc0(sizeof(char *) * kDestinationColumns));
      for (int c = 0; c < kDestinationColumns; ++c)
        rows[i][c] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);
    }
    *count = nrows;
    return rows;
  });
}

int destination_id(const std::string &name) {
  return pg_call([&] {
    int id = 0;
    spi_connect();
    Oid types[1] = {TEXTOID};
    Datum args[1] = {CStringGetTextDatum(name.c_str())};
    SPI_execute_with_args("SELECT id FROM ves.destinations WHERE name = $1", 1, types, args,
                          nullptr, true, 1);
    if (SPI_processed == 1) {
      bool isnull;
      id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    SPI_finish();
    return id;
  });
}

uint64 claim(int destination, int rows, int lease_seconds, std::int64_t floor, std::int64_t owner,
             const std::vector<std::int64_t> &live_owners, bool with_listings) {
  return pg_call([&] {
    Datum args[6] = {Int32GetDatum(rows),  Int32GetDatum(destination), Int32GetDatum(lease_seconds),
                     Int64GetDatum(floor), Int64GetDatum(owner),       int8_array(live_owners)};
    if (with_listings)
      run_indexed(claim_listings_plan, args, nullptr, SPI_OK_SELECT);
    else
      run_indexed(claim_plan, args, nullptr, SPI_OK_UPDATE_RETURNING);
    return SPI_processed;
  });
}

ClaimedRow claimed_row(uint64 i) {
  ClaimedRow row;
  // The entity's columns as text in Postgres memory; the strings are made
  // outside pg_call.
  struct Texts {
    char *entity_type, *entity_id;
  };
  Texts texts = pg_call([&] {
    SPITupleTable *table = SPI_tuptable;
    HeapTuple tup = table->vals[i];
    bool isnull;
    row.id = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 1, &isnull));
    row.tenant = *DatumGetUUIDP(SPI_getbinval(tup, table->tupdesc, 2, &isnull));
    row.destination = DatumGetInt32(SPI_getbinval(tup, table->tupdesc, 3, &isnull));
    row.attempts = DatumGetInt32(SPI_getbinval(tup, table->tupdesc, 4, &isnull));
    row.position = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 5, &isnull));
    row.recorded_at = DatumGetTimestampTz(SPI_getbinval(tup, table->tupdesc, 6, &isnull));
    row.base_check = DatumGetBool(SPI_getbinval(tup, table->tupdesc, 9, &isnull));
    return Texts{SPI_getvalue(tup, table->tupdesc, 7), SPI_getvalue(tup, table->tupdesc, 8)};
  });
  if (texts.entity_type) row.entity_type = texts.entity_type;  // also the metrics' event kind
  if (texts.entity_id) row.entity_id = texts.entity_id;
  return row;
}

bool claimed_listing(uint64 i, ListingFact *fact) {
  struct Texts {
    char *location, *platform_ref;
  };
  bool has = false;
  Texts texts = pg_call([&] {
    SPITupleTable *table = SPI_tuptable;
    HeapTuple tup = table->vals[i];
    bool isnull;
    fact->row = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 1, &isnull));
    SPI_getbinval(tup, table->tupdesc, 10, &isnull);
    has = !isnull;
    if (!has) return Texts{nullptr, nullptr};
    fact->available = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 12, &isnull));
    Datum known = SPI_getbinval(tup, table->tupdesc, 13, &isnull);
    fact->known = isnull ? std::nullopt : std::optional<std::int64_t>(DatumGetInt64(known));
    return Texts{SPI_getvalue(tup, table->tupdesc, 10), SPI_getvalue(tup, table->tupdesc, 11)};
  });
  if (!has) return false;
  fact->location = texts.location ? texts.location : "";
  fact->platform_ref = texts.platform_ref ? texts.platform_ref : "";
  return true;
}

namespace {

// The events at `positions`, recorded between the bounds (which prune the
// read to the partitions holding them), with the columns `plan` selects
// before PGVES_EVENTS_AT.
#define PGVES_EVENTS_AT \
  " FROM ves.events WHERE position = ANY ($1) AND recorded_at BETWEEN $2 AND $3"

SPITupleTable *select_events_at(SavedPlan &plan, const std::vector<std::int64_t> &positions,
                                TimestampTz first_recorded, TimestampTz last_recorded,
                                uint64 *count) {
  return pg_call([&] {
    Datum args[3] = {int8_array(positions), TimestampTzGetDatum(first_recorded),
                     TimestampTzGetDatum(last_recorded)};
    run_indexed(plan, args, nullptr, SPI_OK_SELECT);
    *count = SPI_processed;
    return SPI_tuptable;
  });
}

}  // namespace

const SPITupleTable *events(const std::vector<std::int64_t> &positions, TimestampTz first_recorded,
                            TimestampTz last_recorded, uint64 *count) {
  static std::string sql = std::string("SELECT ") + kStoredEventColumns + PGVES_EVENTS_AT;
  static SavedPlan plan = {nullptr, 3, {INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, nullptr};
  plan.sql = sql.c_str();
  return select_events_at(plan, positions, first_recorded, last_recorded, count);
}

std::vector<EventRef> event_refs(const std::vector<std::int64_t> &positions,
                                 TimestampTz first_recorded, TimestampTz last_recorded) {
  static SavedPlan plan = {"SELECT position, event_id::text, entity_version" PGVES_EVENTS_AT,
                           3,
                           {INT8ARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID},
                           nullptr};
  uint64 count = 0;
  SPITupleTable *table = select_events_at(plan, positions, first_recorded, last_recorded, &count);
  std::vector<EventRef> refs;
  refs.reserve(count);
  for (uint64 i = 0; i < count; ++i) {
    std::int64_t position = 0, version = 0;
    char *id = pg_call([&] {
      bool isnull;
      HeapTuple tup = table->vals[i];
      position = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 1, &isnull));
      version = DatumGetInt64(SPI_getbinval(tup, table->tupdesc, 3, &isnull));
      return SPI_getvalue(tup, table->tupdesc, 2);
    });
    refs.push_back(EventRef{position, id ? id : "", version});
  }
  pg_call_void([&] { SPI_freetuptable(table); });
  return refs;
}

namespace {

// The receipts among outcomes, stored by kReceiptSql.
void record_receipts(const RowOutcome *outcomes, size_t n, std::int64_t owner) {
  std::vector<Datum> ids, tenants, events, destinations, receipts, verified;
  pg_call_void([&] {
    for (size_t i = 0; i < n; ++i) {
      const RowOutcome &o = outcomes[i];
      if (o.receipt.empty()) continue;
      ids.push_back(Int64GetDatum(o.id));
      pg_uuid_t *t = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
      *t = o.tenant;
      tenants.push_back(UUIDPGetDatum(t));
      events.push_back(DirectFunctionCall1(uuid_in, CStringGetDatum(o.event_id.c_str())));
      destinations.push_back(Int32GetDatum(o.destination));
      receipts.push_back(DirectFunctionCall1(jsonb_in, CStringGetDatum(o.receipt.c_str())));
      verified.push_back(BoolGetDatum(o.receipt_signature_verified));
    }
    if (ids.empty()) return;
    Oid types[7] = {INT8ARRAYOID,  UUIDARRAYOID, UUIDARRAYOID, INT4ARRAYOID,
                    JSONBARRAYOID, INT8OID,      BOOLARRAYOID};
    Datum args[7] = {array_of(ids, INT8OID),       array_of(tenants, UUIDOID),
                     array_of(events, UUIDOID),    array_of(destinations, INT4OID),
                     array_of(receipts, JSONBOID), Int64GetDatum(owner),
                     array_of(verified, BOOLOID)};
    if (SPI_execute_with_args(kReceiptSql, 7, types, args, nullptr, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "pg_ves: cannot store sequencer receipts");
  });
}

}  // namespace

namespace {

// Opens a conflict for each row recorded in status 'conflict'
// (ves._outbox_conflicts, 56_outbox_conflicts.sql).
void open_conflicts(const RowOutcome *outcomes, size_t n) {
  std::vector<std::int64_t> ids;
  std::vector<pg_uuid_t> tenants;
  for (size_t i = 0; i < n; ++i)
    if (std::string_view(outcomes[i].status) == "conflict") {
      ids.push_back(outcomes[i].id);
      tenants.push_back(outcomes[i].tenant);
    }
  if (ids.empty()) return;
  static SavedPlan plan = {
      "SELECT ves._outbox_conflicts($1, $2)", 2, {INT8ARRAYOID, UUIDARRAYOID}, nullptr};
  std::vector<Datum> tenant_datums;
  pg_call_void([&] {
    for (pg_uuid_t &t : tenants) tenant_datums.push_back(UUIDPGetDatum(&t));
    Datum args[2] = {int8_array(ids), array_of(tenant_datums, UUIDOID)};
    spi_run(plan, args, nullptr, false, SPI_OK_SELECT);
  });
}

// The rows' outcomes (kRecordSql, $1 to $9) and, in the same statement,
// what platforms acknowledged or refused per listing ($10 to $16) and the
// cross-platform samples that completes, by the rules of the trigger
// ves._listings_agree (which leaves this statement to it): per SKU and
// location, one sample when every listing of it on every destination now
// holds its available count and one of this statement's listings did not
// hold it before ($16, what the claim read), counted on the lowest such
// destination. The listings this statement writes are judged by what it
// wrote (u); the others as its snapshot has them (their old rows would be
// the written ones' too, hence `written`). Run with run_indexed: every
// lookup goes by a key (listings_pkey, listings_sku_idx, the inventory's),
// whatever the statistics said when the plan was made.
const std::string kRecordWithListingsSql =
    std::string("WITH recorded AS (") + kRecordSql +
    " RETURNING 1),"
    " u AS ("
    " UPDATE ves.listings l SET"
    "  pushed_quantity = CASE WHEN r.state = 'synced' THEN r.quantity ELSE l.pushed_quantity END,"
    "  pushed_at = CASE WHEN r.state = 'synced' THEN now() ELSE l.pushed_at END,"
    "  known_quantity = CASE WHEN r.state = 'synced' THEN r.quantity ELSE l.known_quantity END,"
    "  state = r.state, last_error = r.error, updated_at = now()"
    " FROM unnest($10::int[], $11::text[], $12::text[], $13::bigint[], $14::text[], $15::text[], "
    "$16::bigint[])"
    "   AS r(destination_id, sku, location, quantity, state, error, prior_known)"
    " WHERE l.destination_id = r.destination_id AND l.sku = r.sku AND l.location = r.location"
    " RETURNING l.destination_id, l.tenant_id, l.store_id, l.sku, l.location, l.known_quantity,"
    "  r.prior_known)"
    " SELECT count(ves._record_cross_platform(x.destination_id,"
    "   pg_catalog.date_part('epoch', now() - x.changed_at)))"
    " FROM (SELECT u.tenant_id, u.store_id, u.sku, u.location, min(i.available) AS available,"
    "         min(i.updated_at) AS changed_at, array_agg(u.destination_id) AS written,"
    "         min(u.destination_id) FILTER (WHERE u.prior_known IS DISTINCT FROM u.known_quantity)"
    "           AS destination_id"
    "       FROM u JOIN ves.inventory i ON i.tenant_id = u.tenant_id AND i.store_id = u.store_id"
    "         AND i.sku = u.sku AND i.location = u.location"
    "       GROUP BY u.tenant_id, u.store_id, u.sku, u.location"
    "       HAVING bool_and(u.known_quantity IS NOT DISTINCT FROM i.available)"
    "         AND bool_or(u.prior_known IS DISTINCT FROM u.known_quantity)) x"
    " WHERE NOT EXISTS (SELECT FROM ves.listings o"
    "                   WHERE o.tenant_id = x.tenant_id AND o.store_id = x.store_id"
    "                     AND o.sku = x.sku AND o.location = x.location"
    "                     AND o.known_quantity IS DISTINCT FROM x.available"
    "                     AND o.destination_id <> ALL (x.written))";

SavedPlan record_listings_plan = {
    kRecordWithListingsSql.c_str(),
    16,
    {INT8ARRAYOID, UUIDARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
     TEXTARRAYOID, TEXTARRAYOID, INT8OID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
     TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID},
    nullptr};

// The listings' columns as the parameters $10 to $16 of
// kRecordWithListingsSql (PostgreSQL calls only): args[0] to args[6]. The
// vectors hold the Datums until the statement has run.
struct ListingColumns {
  std::vector<Datum> dests, skus, locations, quantities, states, errors, priors;
  std::vector<bool> prior_nulls;
};
void listing_args(const std::vector<ListingOutcome> &outcomes, ListingColumns &c, Datum *args) {
  for (const ListingOutcome &o : outcomes) {
    c.dests.push_back(Int32GetDatum(o.destination));
    c.skus.push_back(CStringGetTextDatum(o.sku.c_str()));
    c.locations.push_back(CStringGetTextDatum(o.location.c_str()));
    c.quantities.push_back(Int64GetDatum(o.quantity));
    c.states.push_back(CStringGetTextDatum(o.state));
    c.errors.push_back(CStringGetTextDatum(o.error.c_str()));
    c.priors.push_back(Int64GetDatum(o.prior_known.value_or(0)));
    c.prior_nulls.push_back(!o.prior_known.has_value());
  }
  args[0] = array_of(c.dests, INT4OID);
  args[1] = array_of(c.skus, TEXTOID);
  args[2] = array_of(c.locations, TEXTOID);
  args[3] = array_of(c.quantities, INT8OID);
  args[4] = array_of(c.states, TEXTOID);
  args[5] = array_of(c.errors, TEXTOID);
  args[6] = array_of(c.priors, INT8OID, &c.prior_nulls);
}

// The trigger on ves.listings leaves the samples of a statement that
// records listings to the statement, and only it: the flag is down again
// however the statement ends.
struct Counting {
  Counting() { metrics::agreements_counted_by_statement = true; }
  ~Counting() { metrics::agreements_counted_by_statement = false; }
};

}  // namespace

void record_rows(const RowOutcome *outcomes, size_t n, std::int64_t owner,
                 const std::vector<ListingOutcome> *listings) {
  record_receipts(outcomes, n, owner);
  const bool with_listings = listings && !listings->empty();
  std::optional<Counting> counting;
  if (with_listings) counting.emplace();
  // Declared outside pg_call: a Postgres error must not skip destructors.
  std::vector<Datum> ids, tenants, statuses, delays, attempts, codes, errors, excerpts;
  ListingColumns columns;
  pg_call_void([&] {
    for (size_t i = 0; i < n; ++i) {
      const RowOutcome &o = outcomes[i];
      ids.push_back(Int64GetDatum(o.id));
      pg_uuid_t *t = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
      *t = o.tenant;
      tenants.push_back(UUIDPGetDatum(t));
      statuses.push_back(CStringGetTextDatum(o.status));
      delays.push_back(Int64GetDatum(o.delay_ms));
      attempts.push_back(Int32GetDatum(o.attempts));
      codes.push_back(Int32GetDatum(static_cast<int32>(o.http_status)));
      errors.push_back(CStringGetTextDatum(o.error.c_str()));
      excerpts.push_back(
          PointerGetDatum(cstring_to_text_with_len(o.excerpt.data(), clean_length(o.excerpt))));
    }
    Datum args[16] = {
        array_of(ids, INT8OID),    array_of(tenants, UUIDOID),  array_of(statuses, TEXTOID),
        array_of(delays, INT8OID), array_of(attempts, INT4OID), array_of(codes, INT4OID),
        array_of(errors, TEXTOID), array_of(excerpts, TEXTOID), Int64GetDatum(owner)};
    if (with_listings) {
      listing_args(*listings, columns, args + 9);
      run_indexed(record_listings_plan, args, nullptr, SPI_OK_SELECT);
    } else {
      run_indexed(record_plan, args, nullptr, SPI_OK_UPDATE);
    }
  });
  open_conflicts(outcomes, n);
}

void record_destination(int id, const char *breaker_state, bool succeeded,
                        const std::string &last_error, bool gone) {
  pg_call_void([&] {
    Datum args[5] = {Int32GetDatum(id), CStringGetTextDatum(breaker_state), BoolGetDatum(succeeded),
                     last_error.empty() ? (Datum)0 : CStringGetTextDatum(last_error.c_str()),
                     BoolGetDatum(gone)};
    char nulls[6] = {' ', ' ', ' ', last_error.empty() ? 'n' : ' ', ' ', '\0'};
    spi_run(destination_plan, args, nulls, false, SPI_OK_UPDATE);
  });
}

void release_rows(const std::vector<std::int64_t> &ids, std::int64_t owner) {
  pg_call_void([&] {
    Oid types[2] = {INT8ARRAYOID, INT8OID};
    Datum args[2] = {int8_array(ids), Int64GetDatum(owner)};
    SPI_execute_with_args(
        "UPDATE ves.outbox SET lease_until = NULL, leased_by = NULL"
        " WHERE id = ANY ($1) AND leased_by = $2",
        2, types, args, nullptr, false, 0);
  });
}

void release_leases_of(std::int64_t owner) {
  pg_call_void([&] {
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(owner)};
    SPI_execute_with_args(
        "UPDATE ves.outbox SET lease_until = NULL, leased_by = NULL"
        " WHERE leased_by = $1 AND lease_until IS NOT NULL",
        1, types, args, nullptr, false, 0);
  });
}

void record_batches(const std::vector<AcceptedBatch> &batches) {
  if (batches.empty()) return;
  static SavedPlan plan = {
      "INSERT INTO ves.platform_batches (destination_id, tenant_id, handle, items)"
      " SELECT * FROM unnest($1::int[], $2::uuid[], $3::text[], $4::jsonb[])"
      " ON CONFLICT (destination_id, handle) DO NOTHING",
      4,
      {INT4ARRAYOID, UUIDARRAYOID, TEXTARRAYOID, JSONBARRAYOID},
      nullptr};
  std::vector<pg_uuid_t> tenants;
  for (const AcceptedBatch &b : batches) tenants.push_back(b.tenant);
  std::vector<Datum> dests, tenant_datums, handles, items;
  pg_call_void([&] {
    for (size_t i = 0; i < batches.size(); ++i) {
      dests.push_back(Int32GetDatum(batches[i].destination));
      tenant_datums.push_back(UUIDPGetDatum(&tenants[i]));
      handles.push_back(CStringGetTextDatum(batches[i].handle.c_str()));
      items.push_back(DirectFunctionCall1(jsonb_in, CStringGetDatum(batches[i].items.c_str())));
    }
    Datum args[4] = {array_of(dests, INT4OID), array_of(tenant_datums, UUIDOID),
                     array_of(handles, TEXTOID), array_of(items, JSONBOID)};
    spi_run(plan, args, nullptr, false, SPI_OK_INSERT);
  });
}

}  // namespace pgves::pg::outbox_sql
