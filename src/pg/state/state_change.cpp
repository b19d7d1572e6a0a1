// ves._state_change: one change to an entity of ves.entity_state, decided by
// the conflict rules (src/core/state/conflict.cpp) and written: the entity's
// row, the signed event that carries the change, and the conflict record when
// the rules found one. ves.upsert calls it with a change from the caller;
// ves._apply_ingested with an event from another node, already stored on the
// entity's stream (`ingested`).
//
// The facts are read and the rows written with plans kept for the backend's
// life; the event is appended in-process (append_one), so a change costs the
// statements it needs and no plpgsql around them. Conflicts are recorded by
// src/pg/state/conflict_record.cpp, as for every other caller.
//
// With `ingested`, nothing is appended when the decided state is what the
// event says (the entity's version becomes the stream's); otherwise the
// decided state is appended as a local event (payload "applied_from": the
// event's id) so the other node learns it. A restatement that arrives (it has
// "applied_from") records no conflict and is restated again only when it
// changed something here.
#include "core/json/json.hpp"
#include "core/state/conflict.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/jsonb_value.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/spi_plan.hpp"
#include "pg/state/conflict_record.hpp"
#include "pg/state/picks.hpp"
#include "pg/store/append.hpp"

extern "C" {
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <string>
#include <vector>

using namespace pgves::pg;
namespace conflict = pgves::core::conflict;
namespace json = pgves::core::json;

namespace {

// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
constexpr int64 kUnixToPostgresUs = INT64CONST(946684800000000);

// The tenant's policy for the type, or else its default ('*'): two lookups
// by primary key.
#define PGVES_POLICY                                          \
  "coalesce((SELECT x.policy FROM ves.conflict_policies x"    \
  "          WHERE x.tenant_id = $1 AND x.entity_type = $2)," \
  "         (SELECT x.policy FROM ves.conflict_policies x"    \
  "          WHERE x.tenant_id = $1 AND x.entity_type = '*'))"

// The entity's row, locked; what the change's source reported last; the
// policy.
SavedPlan current_row = {
    "SELECT s.state, s.version, s.deleted, s.last_source, s.last_observed_at,"
    "       s.source_seen -> $4 -> 'state', (s.source_seen -> $4 ->> 'observed_at')::timestamptz,"
    "       s.field_stamps, " PGVES_POLICY
    " FROM ves.entity_state s"
    " WHERE s.tenant_id = $1 AND s.entity_type = $2 AND s.entity_id = $3 FOR UPDATE OF s",
    4,
    {UUIDOID, TEXTOID, TEXTOID, TEXTOID},
    nullptr};

// The policy alone, for an entity that has no row yet.
SavedPlan policy_row = {"SELECT " PGVES_POLICY, 2, {UUIDOID, TEXTOID}, nullptr};
#undef PGVES_POLICY

// The policy's references that name an entity marked deleted:
// {"field": {"entity_type", "entity_id"}}, NULL when none does.
SavedPlan deleted_references = {
    "SELECT jsonb_object_agg(r.key, jsonb_build_object('entity_type', r.value #>> '{}',"
    "                                                  'entity_id', $2 ->> r.key))"
    " FROM jsonb_each($3 -> 'references') r"
    " WHERE jsonb_typeof($2 -> r.key) IN ('string', 'number')"
    "   AND EXISTS (SELECT FROM ves.entity_state s WHERE s.tenant_id = $1"
    "               AND s.entity_type = r.value #>> '{}' AND s.entity_id = $2 ->> r.key"
    "               AND s.deleted)",
    3,
    {UUIDOID, JSONBOID, JSONBOID},
    nullptr};

// The state the entity had at a version, read back from its event stream.
SavedPlan state_at = {
    "SELECT e.payload -> 'state' FROM ves.events e"
    " WHERE e.tenant_id = $1 AND e.entity_type = $2 AND e.entity_id = $3 AND e.entity_version <= $4"
    "   AND e.event_type IN ($2 || '.created', $2 || '.updated', $2 || '.deleted')"
    " ORDER BY e.entity_version DESC LIMIT 1",
    4,
    {UUIDOID, TEXTOID, TEXTOID, INT8OID},
    nullptr};

SavedPlan stream_version = {
    "SELECT x.version FROM ves.streams x"
    " WHERE x.tenant_id = $1 AND x.entity_type = $2 AND x.entity_id = $3",
    3,
    {UUIDOID, TEXTOID, TEXTOID},
    nullptr};

// A new entity's row. No other writer can insert it meanwhile: every writer
// of ves.entity_state holds the entity's lock (lock_entity).
SavedPlan store_state = {
    "INSERT INTO ves.entity_state (tenant_id, store_id, entity_type, entity_id, state, version,"
    "                              deleted, last_source, last_observed_at, source_seen, "
    "field_stamps)"
    " VALUES ($1, $2, $3, $4, $5, $6, false, $7, $8, ves._source_seen('{}', $7, $9, $8), $10)",
    10,
    {UUIDOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, INT8OID, TEXTOID, TIMESTAMPTZOID, JSONBOID,
     JSONBOID},
    nullptr};

// The same change to a row that exists (and is locked).
SavedPlan update_state = {
    "UPDATE ves.entity_state s"
    "   SET state = $5, version = $6, deleted = false, store_id = $2, field_stamps = $10,"
    "       last_source = $7, last_observed_at = $8,"
    "       source_seen = ves._source_seen(s.source_seen, $7, $9, $8), updated_at = now()"
    " WHERE s.tenant_id = $1 AND s.entity_type = $3 AND s.entity_id = $4",
    10,
    {UUIDOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, INT8OID, TEXTOID, TIMESTAMPTZOID, JSONBOID,
     JSONBOID},
    nullptr};

// What the source reported and the stamps (not for a stale observation),
// and the version.
SavedPlan note_report = {
    "UPDATE ves.entity_state s"
    " SET source_seen = CASE WHEN $8 THEN s.source_seen"
    "                        ELSE ves._source_seen(s.source_seen, $4, $5, $6) END,"
    "     field_stamps = CASE WHEN $8 THEN s.field_stamps ELSE $7 END,"
    "     version = $9"
    " WHERE s.tenant_id = $1 AND s.entity_type = $2 AND s.entity_id = $3",
    9,
    {UUIDOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID, JSONBOID, BOOLOID, INT8OID},
    nullptr};

SavedPlan set_version = {
    "UPDATE ves.entity_state s SET version = $4"
    " WHERE s.tenant_id = $1 AND s.entity_type = $2 AND s.entity_id = $3",
    4,
    {UUIDOID, TEXTOID, TEXTOID, INT8OID},
    nullptr};

// --- PostgreSQL calls ---------------------------------------------------------

// One writer per entity at a time; the row lock alone would not cover an
// entity that does not exist yet. The same key as ves.delete_entity and
// ves._resolve_state_conflict: hashtextextended(tenant/type/id, 11).
void lock_entity(const pg_uuid_t *tenant, text *entity_type, text *entity_id) {
  pg_call_void([&] {
    char *key =
        psprintf("%s/%s/%s", DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(tenant))),
                 text_to_cstring(entity_type), text_to_cstring(entity_id));
    Datum hash = DirectFunctionCall2Coll(hashtextextended, DEFAULT_COLLATION_OID,
                                         CStringGetTextDatum(key), Int64GetDatum(11));
    DirectFunctionCall1(pg_advisory_xact_lock_int8, hash);
  });
}

bool jsonb_equal(Datum a, Datum b) {
  return pg_call([&] { return DatumGetBool(DirectFunctionCall2(jsonb_eq, a, b)); });
}

Datum jsonb_member(Datum object, const char *key) {
  return pg_call([&] {
    Jsonb *j = DatumGetJsonbP(object);
    JsonbValue *v =
        getKeyJsonValueFromContainer(&j->root, key, static_cast<int>(strlen(key)), nullptr);
    return v ? PointerGetDatum(JsonbValueToJsonb(v)) : (Datum)0;
  });
}

bool jsonb_is_object(Datum value) {
  return pg_call([&] { return JB_ROOT_IS_OBJECT(DatumGetJsonbP(value)); });
}

bool names_references(Datum policy) {
  return pg_call([&] {
    Jsonb *j = DatumGetJsonbP(policy);
    JsonbValue *v = getKeyJsonValueFromContainer(&j->root, "references", 10, nullptr);
    // As `policy -> 'references' <> '{}'`: anything but an empty object.
    return v != nullptr && !(v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data) &&
                             JsonContainerSize(v->val.binary.data) == 0);
  });
}

bool jsonb_has(Datum object, const char *key) {
  return pg_call([&] {
    Jsonb *j = DatumGetJsonbP(object);
    return getKeyJsonValueFromContainer(&j->root, key, static_cast<int>(strlen(key)), nullptr) !=
           nullptr;
  });
}

Datum attribute(HeapTupleHeader row, const char *name, bool *isnull) {
  return pg_call([&] { return GetAttributeByName(row, name, isnull); });
}

AppendResult append(AppendInput &in) {
  return pg_call([&] { return append_one(in); });
}

void notify() {
  pg_call_void([] { notify_appended(); });
}

Datum result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls) {
  return safe::composite_result(fcinfo, values, nulls);
}

// The event's payload: {"state", "source", "observed_at", "base_version"},
// and "applied_from" for a restatement of an ingested event.
Jsonb *event_payload(Datum state, Datum source, const Datum *observed_at, const int64 *base_version,
                     const Datum *applied_from) {
  return pg_call([&] {
    JsonbParseState *ps = nullptr;
    pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
    jsonb_push_key(&ps, "state");
    jsonb_push_datum(&ps, WJB_VALUE, JSONBOID, state, false);
    jsonb_push_key(&ps, "source");
    jsonb_push_datum(&ps, WJB_VALUE, TEXTOID, source, false);
    jsonb_push_key(&ps, "observed_at");
    jsonb_push_datum(&ps, WJB_VALUE, TIMESTAMPTZOID, observed_at ? *observed_at : (Datum)0,
                     !observed_at);
    jsonb_push_key(&ps, "base_version");
    jsonb_push_datum(&ps, WJB_VALUE, INT8OID,
                     base_version ? Int64GetDatum(*base_version) : (Datum)0, !base_version);
    if (applied_from) {
      jsonb_push_key(&ps, "applied_from");
      jsonb_push_datum(&ps, WJB_VALUE, UUIDOID, *applied_from, false);
    }
    return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, nullptr));
  });
}

// The event's metadata: {} or {"conflict_id", "rule"}.
Jsonb *event_metadata(const pg_uuid_t *conflict_id, Datum rule) {
  return pg_call([&] {
    JsonbParseState *ps = nullptr;
    pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
    if (conflict_id) {
      jsonb_push_key(&ps, "conflict_id");
      jsonb_push_datum(&ps, WJB_VALUE, UUIDOID, UUIDPGetDatum(conflict_id), false);
      jsonb_push_key(&ps, "rule");
      jsonb_push_datum(&ps, WJB_VALUE, TEXTOID, rule, false);
    }
    return JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, nullptr));
  });
}

pg_uuid_t record_conflict(conflicts::Row *row) {
  return pg_call([&] { return conflicts::record(row); });
}

// text[] of the strings.
Datum text_array(const std::vector<std::string> &list) {
  std::vector<Datum> items;
  for (const auto &s : list) items.push_back(safe::text_datum(s));
  return pg_call([&] {
    return PointerGetDatum(construct_array(items.data(), static_cast<int>(items.size()), TEXTOID,
                                           -1, false, TYPALIGN_INT));
  });
}

// A conflict's detail: {"deleted_references": ...} when references name
// deleted entities, {"entity_deleted": true} when the entity is, else {}.
Datum conflict_detail(Datum deleted_references, bool entity_deleted) {
  return pg_call([&] {
    JsonbParseState *ps = nullptr;
    pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
    if (deleted_references) {
      jsonb_push_key(&ps, "deleted_references");
      jsonb_push_datum(&ps, WJB_VALUE, JSONBOID, deleted_references, false);
    } else if (entity_deleted) {
      jsonb_push_key(&ps, "entity_deleted");
      JsonbValue v;
      v.type = jbvBool;
      v.val.boolean = true;
      pushJsonbValue(&ps, WJB_VALUE, &v);
    }
    return PointerGetDatum(JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, nullptr)));
  });
}

// session_user, as a name.
Datum session_user_name() {
  return pg_call([] {
    return DirectFunctionCall1(namein,
                               CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)));
  });
}

// --- conversions ----------------------------------------------------------------

json::Value object_of(Datum jsonb, const char *name) {
  if (jsonb == (Datum)0) return json::Value(json::Value::Object{});
  json::Value v = jsonb_value(safe::jsonb_detoast(jsonb));
  if (v.kind() != json::Kind::object)
    throw VesError(sqlstate::invalid_payload, std::string(name) + " must be a JSON object", {},
                   "Pass the entity's state as a JSON object.");
  return v;
}

int64 unix_us(Datum timestamptz) { return DatumGetTimestampTz(timestamptz) + kUnixToPostgresUs; }

// A nullable column of the last SPI result's first row.
struct Column {
  Datum value = 0;
  bool null = true;
};

Column column(int n) {
  Column c;
  c.value = safe::spi_datum(0, n, &c.null);
  if (c.null) c.value = 0;
  return c;
}

// The arguments of a change.
struct Change {
  pg_uuid_t *tenant;
  pg_uuid_t *store;
  text *entity_type;
  text *entity_id;
  Datum state;
  bool has_base_version;
  int64 base_version;
  Datum source;
  bool has_observed_at;
  Datum observed_at;
  HeapTupleHeader ingested;  // nullable
};

// Decides and writes one change; returns the ves.upsert_result row.
Datum change_entity(FunctionCallInfo fcinfo, const Change &c) {
  pg_uuid_t *tenant = c.tenant;
  pg_uuid_t *store = c.store;
  text *entity_type = c.entity_type;
  text *entity_id = c.entity_id;
  Datum state = c.state;
  bool has_base_version = c.has_base_version;
  int64 base_version = c.base_version;
  Datum source = c.source;
  bool has_observed_at = c.has_observed_at;
  Datum observed_at = c.observed_at;
  HeapTupleHeader ingested = c.ingested;

  Datum ingested_id = 0, ingested_payload = 0;
  bool derived = false;
  if (ingested) {
    bool null_id, null_payload;
    ingested_id = attribute(ingested, "event_id", &null_id);
    ingested_payload = attribute(ingested, "payload", &null_payload);
    if (null_id || null_payload) elog(ERROR, "pg_ves: an ingested event without id or payload");
    derived = jsonb_has(ingested_payload, "applied_from");
  }
  std::string etype = safe::text_string(PointerGetDatum(entity_type));
  std::string source_name = safe::text_string(source);

  safe::spi_connect();
  lock_entity(tenant, entity_type, entity_id);

  Datum key[4] = {UUIDPGetDatum(tenant), PointerGetDatum(entity_type), PointerGetDatum(entity_id),
                  source};
  safe::spi_run(current_row, key, nullptr, false, SPI_OK_SELECT, 1);
  bool found = SPI_processed > 0;
  Column cur_state, cur_version, cur_deleted, cur_source, cur_observed, seen_state, seen_at, stamps;
  Column policy;
  if (found) {
    cur_state = column(1);
    cur_version = column(2);
    cur_deleted = column(3);
    cur_source = column(4);
    cur_observed = column(5);
    seen_state = column(6);
    seen_at = column(7);
    stamps = column(8);
    policy = column(9);
  } else {
    Datum policy_key[2] = {key[0], key[1]};
    safe::spi_run(policy_row, policy_key, nullptr, true, SPI_OK_SELECT, 1);
    policy = column(1);
  }
  // References to check: the policy's "references" is a non-empty object.
  bool check_references = !policy.null && names_references(policy.value);
  int64 current_version = found ? DatumGetInt64(cur_version.value) : 0;
  bool deleted = found && DatumGetBool(cur_deleted.value);
  if (has_base_version && base_version > current_version)
    throw VesError(sqlstate::wrong_expected_version,
                   "base_version " + std::to_string(base_version) + " of " + etype + " \"" +
                       safe::text_string(PointerGetDatum(entity_id)) +
                       "\" is ahead of the entity, which is at " + std::to_string(current_version),
                   "current_version=" + std::to_string(current_version),
                   "Pass the version the state was read at (0 for an entity that does not exist "
                   "yet), or NULL.");

  Column ref_detail;
  if (check_references) {
    Datum args[3] = {UUIDPGetDatum(tenant), state, policy.value};
    safe::spi_run(deleted_references, args, nullptr, true, SPI_OK_SELECT, 1);
    ref_detail = column(1);
  }

  // The base: the state at the version the caller names, or else what this
  // source reported last ({} if it never did), so a platform that has not
  // seen our changes does not undo them.
  Datum empty = PointerGetDatum(jsonb_from_value(json::Value(json::Value::Object{})));
  Datum base = empty;
  if (found) {
    if (!has_base_version) {
      base = seen_state.null ? empty : seen_state.value;
    } else if (base_version == current_version) {
      base = cur_state.value;
    } else if (base_version != 0) {
      Datum args[4] = {UUIDPGetDatum(tenant), PointerGetDatum(entity_type),
                       PointerGetDatum(entity_id), Int64GetDatum(base_version)};
      safe::spi_run(state_at, args, nullptr, true, SPI_OK_SELECT, 1);
      Column at = SPI_processed > 0 ? column(1) : Column{};
      base = at.null ? empty : at.value;
    }
  }
  Datum local = found ? cur_state.value : empty;

  conflict::Input in;
  in.policy = conflict::parse_policy(policy.null ? json::Value(json::Value::Object{})
                                                 : jsonb_value(safe::jsonb_detoast(policy.value)));
  in.base = object_of(base, "base");
  in.local.state = object_of(local, "local state");
  in.remote.state = object_of(state, "state");
  in.facts.exists = found;
  in.facts.deleted = deleted;
  in.facts.reference_deleted = !ref_detail.null;
  if (has_base_version) in.facts.base_version = base_version;
  in.facts.current_version = current_version;
  in.facts.source_version =
      found && !has_base_version && jsonb_equal(base, cur_state.value) ? current_version : 0;
  if (!seen_at.null) in.facts.source_observed_at_us = unix_us(seen_at.value);
  in.local.source = cur_source.null ? "" : safe::text_string(cur_source.value);
  in.local.observed_at_us = cur_observed.null ? 0 : unix_us(cur_observed.value);
  in.remote.source = source_name;
  in.remote.observed_at_us = has_observed_at ? unix_us(observed_at) : 0;
  in.stamps = object_of(stamps.value, "stamps");

  conflict::Decision d = conflict::decide(in);
  Datum new_state = picks::object(picks::of(d.state, in.remote.state), local, state);
  const char *outcome = conflict::name(d.outcome);
  bool is_conflict = d.outcome == conflict::Outcome::conflict;

  int64 version = current_version;
  bool has_event = false, has_conflict = false;
  pg_uuid_t event_id{}, conflict_id{};
  bool has_stream_version = false;
  int64 stream_v = 0;
  if (ingested) {
    safe::spi_run(stream_version, key, nullptr, true, SPI_OK_SELECT, 1);
    if (SPI_processed > 0) {
      has_stream_version = true;
      stream_v = safe::spi_int64(0, 1, 0);
    }
    has_event = true;
    event_id = *DatumGetUUIDP(ingested_id);
    version = stream_v;
  }
  // The other node's event says something this node did not decide: say
  // what it did (a restatement reaching its origin stops there once both
  // agree; one that changed nothing here is not restated again).
  bool restate = ingested && !is_conflict &&
                 !jsonb_equal(new_state, jsonb_member(ingested_payload, "state")) &&
                 (!derived || d.changed);

  // The conflict record, open for review or resolved by the rule.
  bool record = d.type != conflict::Type::none && !derived &&
                (is_conflict || d.outcome == conflict::Outcome::resolved);
  if (record) {
    conflicts::Row row;
    conflicts::clear(&row);
    auto set = [&row](conflicts::Column c, Datum value, bool isnull = false) {
      row.values[c] = value;
      row.nulls[c] = isnull;
    };
    bool resolved = !is_conflict;
    set(conflicts::tenant_id, UUIDPGetDatum(tenant));
    set(conflicts::store_id, UUIDPGetDatum(store));
    set(conflicts::entity_type, PointerGetDatum(entity_type));
    set(conflicts::entity_id, PointerGetDatum(entity_id));
    set(conflicts::conflict_type, safe::text_datum(conflict::name(d.type)));
    set(conflicts::status, safe::text_datum(resolved ? "resolved" : "open"));
    set(conflicts::rule, safe::text_datum(d.rule));
    set(conflicts::fields, text_array(d.fields));
    set(conflicts::base_version, Int64GetDatum(base_version), !has_base_version);
    set(conflicts::local_version, cur_version.value, cur_version.null);
    set(conflicts::base_state, base);
    set(conflicts::local_state, cur_state.value, cur_state.null);
    set(conflicts::remote_state, state);
    set(conflicts::proposed_state, new_state);
    set(conflicts::local_source, cur_source.value, cur_source.null);
    set(conflicts::remote_source, source);
    set(conflicts::local_observed_at, cur_observed.value, cur_observed.null);
    set(conflicts::remote_observed_at, observed_at, !has_observed_at);
    set(conflicts::detail, conflict_detail(ref_detail.null ? (Datum)0 : ref_detail.value, deleted));
    if (resolved) {
      set(conflicts::strategy, safe::text_datum(d.rule));
      set(conflicts::resolved_state, new_state);
      set(conflicts::resolved_at, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
      set(conflicts::resolved_by, session_user_name());
    }
    conflict_id = record_conflict(&row);
    has_conflict = true;
  }

  if (is_conflict) {
    if (has_stream_version) {
      Datum args[4] = {key[0], key[1], key[2], Int64GetDatum(stream_v)};
      safe::spi_run(set_version, args, nullptr, false, SPI_OK_UPDATE);
    }
  } else {
    if ((!ingested && (d.changed || !found)) || restate) {
      std::string suffix = !found || deleted ? ".created" : ".updated";
      AppendInput a{};
      a.payload = event_payload(new_state, source, has_observed_at ? &observed_at : nullptr,
                                has_base_version ? &base_version : nullptr,
                                ingested ? &ingested_id : nullptr);
      a.metadata = event_metadata(has_conflict ? &conflict_id : nullptr, safe::text_datum(d.rule));
      a.tenant = *tenant;
      a.store = *store;
      a.entity_type = entity_type;
      a.entity_id = entity_id;
      a.event_type = reinterpret_cast<text *>(DatumGetPointer(safe::text_datum(etype + suffix)));
      a.source = reinterpret_cast<text *>(DatumGetPointer(source));
      AppendResult r = append(a);
      if (!r.duplicate) notify();
      version = r.entity_version;
      has_event = true;
      event_id = r.event_id;
    }
    Datum stamps_now = PointerGetDatum(jsonb_from_value(d.stamps));
    if (d.changed || !found) {
      Datum args[10] = {UUIDPGetDatum(tenant),
                        UUIDPGetDatum(store),
                        PointerGetDatum(entity_type),
                        PointerGetDatum(entity_id),
                        new_state,
                        Int64GetDatum(version),
                        source,
                        observed_at,
                        state,
                        stamps_now};
      char nulls[11] = "          ";
      nulls[7] = has_observed_at ? ' ' : 'n';
      if (found)
        safe::spi_run(update_state, args, nulls, false, SPI_OK_UPDATE);
      else
        safe::spi_run(store_state, args, nulls, false, SPI_OK_INSERT);
    } else if (d.rule != "stale_observation" || ingested) {
      Datum args[9] = {key[0],
                       key[1],
                       key[2],
                       source,
                       state,
                       observed_at,
                       stamps_now,
                       BoolGetDatum(d.rule == "stale_observation"),
                       Int64GetDatum(version)};
      char nulls[10] = "         ";
      nulls[5] = has_observed_at ? ' ' : 'n';
      safe::spi_run(note_report, args, nulls, false, SPI_OK_UPDATE);
    }
  }
  safe::spi_finish();

  Datum values[5] = {safe::text_datum(outcome), Int64GetDatum(version),
                     has_conflict ? safe::uuid_datum(conflict_id) : (Datum)0,
                     has_event ? safe::uuid_datum(event_id) : (Datum)0, safe::text_datum(outcome)};
  bool nulls[5] = {false, false, !has_conflict, !has_event, false};
  return result_row(fcinfo, values, nulls);
}

// The arguments ves._state_change and ves.upsert share (the first seven).
Change change_arguments(FunctionCallInfo fcinfo) {
  Change c;
  c.tenant = PG_GETARG_UUID_P(0);
  c.store = PG_GETARG_UUID_P(1);
  c.entity_type = PG_GETARG_TEXT_PP(2);
  c.entity_id = PG_GETARG_TEXT_PP(3);
  c.state = PG_GETARG_DATUM(4);
  c.has_base_version = !PG_ARGISNULL(5);
  c.base_version = c.has_base_version ? PG_GETARG_INT64(5) : 0;
  c.source = PG_GETARG_DATUM(6);
  c.has_observed_at = false;
  c.observed_at = 0;
  c.ingested = nullptr;
  return c;
}

// ves._check_entity's checks (shared with the plpgsql of 75_state.sql,
// 80_inventory.sql and 85_orders.sql through that function).
void check_entity(FunctionCallInfo fcinfo, int tenant, int store, int type, int id, int source) {
  for (int i : {tenant, store, type, id, source})
    if (PG_ARGISNULL(i))
      throw VesError(sqlstate::null_argument,
                     "tenant_id, store_id, entity_type, entity_id and source must not be NULL", {},
                     "Name the tenant, the store and the entity; source defaults to 'manual'.");
  auto bytes = [&](int n) { return VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(n)); };
  size_t t = bytes(type), i = bytes(id), s = bytes(source);
  if (t < 1 || t > 100 || i < 1 || i > 256 || s < 1 || s > 64)
    throw VesError(sqlstate::invalid_identifier,
                   "entity_type (1 to 100 bytes), entity_id (1 to 256) or source (1 to 64) is "
                   "empty or too long",
                   {}, "Use short, printable identifiers.");
  safe::check_tenant_access(*PG_GETARG_UUID_P(tenant));
}

// A keyed ves.upsert, through the keyed-call wrapper of 75_state.sql.
SavedPlan upsert_keyed = {
    "SELECT ves._upsert_keyed($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    9,
    {UUIDOID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID},
    nullptr};

// The first column of the last SPI result's first row, copied out of SPI's
// memory for the caller (before spi_finish).
Datum spi_result_copy() {
  return pg_call([] {
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull) elog(ERROR, "pg_ves: ves._upsert_keyed returned NULL");
    return SPI_datumTransfer(d, false, -1);
  });
}

}  // namespace

// ves._state_change(tenant_id, store_id, entity_type, entity_id, state,
//                   base_version, source, observed_at, ingested ves.events)
//   -> ves.upsert_result
// The caller has checked the arguments (ves.upsert) or the event
// (ves._apply_ingested).
PGVES_FUNCTION(ves_state_change) {
  for (int i : {0, 1, 2, 3, 4, 6})
    if (PG_ARGISNULL(i)) elog(ERROR, "pg_ves: ves._state_change called with a NULL argument");
  Change c = change_arguments(fcinfo);
  c.has_observed_at = !PG_ARGISNULL(7);
  c.observed_at = c.has_observed_at ? PG_GETARG_DATUM(7) : (Datum)0;
  c.ingested = PG_ARGISNULL(8) ? nullptr : PG_GETARG_HEAPTUPLEHEADER(8);
  return change_entity(fcinfo, c);
}

// ves._check_entity(tenant_id, store_id, entity_type, entity_id, source)
PGVES_FUNCTION(ves_check_entity) {
  check_entity(fcinfo, 0, 1, 2, 3, 4);
  PG_RETURN_VOID();
}

// ves.upsert(tenant_id, store_id, entity_type, entity_id, state,
//            base_version, source, idempotency_key, observed_at)
//   -> ves.upsert_result
PGVES_FUNCTION(ves_upsert) {
  check_entity(fcinfo, 0, 1, 2, 3, 6);
  if (PG_ARGISNULL(4) || !jsonb_is_object(PG_GETARG_DATUM(4)))
    throw VesError(sqlstate::invalid_payload, "state must be a JSON object", {},
                   "Pass the entity's whole state, e.g. {\"title\": \"Mug\", \"price\": 12.5}.");
  if (PG_ARGISNULL(8))
    throw VesError(sqlstate::null_argument, "observed_at must not be NULL", {},
                   "Pass when the source saw this state, or leave the default now().");
  if (!PG_ARGISNULL(5) && PG_GETARG_INT64(5) < 0)
    throw VesError(sqlstate::invalid_argument, "base_version must be 0 or more", {},
                   "Pass the version the state was read at, or NULL.");
  if (PG_ARGISNULL(7)) {
    Change c = change_arguments(fcinfo);
    c.has_observed_at = true;
    c.observed_at = PG_GETARG_DATUM(8);
    return change_entity(fcinfo, c);
  }
  Datum args[9];
  char nulls[10] = "         ";
  for (int i = 0; i < 9; ++i) {
    args[i] = PG_ARGISNULL(i) ? (Datum)0 : PG_GETARG_DATUM(i);
    if (PG_ARGISNULL(i)) nulls[i] = 'n';
  }
  safe::spi_connect();
  safe::spi_run(upsert_keyed, args, nulls, false, SPI_OK_SELECT, 1);
  Datum result = spi_result_copy();
  safe::spi_finish();
  return result;
}
