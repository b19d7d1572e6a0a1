#include "mcp/tools.hpp"

#include <cmath>
#include <utility>

#include "core/base/error.hpp"
#include "core/json/canonical_json.hpp"
#include "mcp/schema.hpp"

namespace pgves::mcp {

using core::json::Kind;
using core::json::Value;

namespace {

// Argument access ---------------------------------------------------------

Param text_arg(const Value &args, const char *key) {
  const Value *v = args.find(key);
  if (!v || v->is_null()) return std::nullopt;
  return v->as_string();
}

std::string integer_text(double d) { return std::to_string(static_cast<long long>(d)); }

Param integer_arg(const Value &args, const char *key) {
  const Value *v = args.find(key);
  if (!v || v->is_null()) return std::nullopt;
  return integer_text(v->as_number());
}

Param json_arg(const Value &args, const char *key) {
  const Value *v = args.find(key);
  if (!v || v->is_null()) return std::nullopt;
  return core::jcs::canonicalize(*v);
}

// A bigint[] literal from a JSON array of integers (checked by the schema).
Param id_array_arg(const Value &args, const char *key) {
  const Value *v = args.find(key);
  if (!v || v->is_null()) return std::nullopt;
  std::string out = "{";
  for (const Value &id : v->as_array())
    out += (out.size() > 1 ? "," : "") + integer_text(id.as_number());
  return out + "}";
}

// Results -------------------------------------------------------------------

long long count_of(const Value &v, const char *key) {
  const Value *n = v.find(key);
  return n && n->kind() == Kind::number ? static_cast<long long>(n->as_number()) : 0;
}

std::string plural(long long n, const char *one, const char *many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

ToolResult success(Value structured, std::string text) {
  return ToolResult{false, std::move(structured), std::move(text)};
}

ToolResult failure(std::string text) { return ToolResult{true, Value(), std::move(text)}; }

// The text of a tool error from the database: the pg_ves SQLSTATE first, so
// an agent can act on it, then the message, detail and hint as psql shows them.
ToolResult sql_failure(const SqlError &e) {
  std::string text = "ERROR";
  if (!e.sqlstate.empty()) text += " " + e.sqlstate;
  text += ": " + e.message;
  if (!e.detail.empty()) text += "\nDETAIL: " + e.detail;
  if (!e.hint.empty()) text += "\nHINT: " + e.hint;
  return failure(std::move(text));
}

Value member(const Value &v, const char *key) {
  const Value *m = v.find(key);
  return m ? *m : Value();
}

Value object(Value::Object members) { return Value(std::move(members)); }

// Schemas are written as JSON text and parsed once.
Value schema(const char *text) { return core::json::parse(text); }

// The SQL -------------------------------------------------------------------
// Every statement returns one JSON document. The session's search_path is
// pg_catalog, pg_temp; pg_ves objects are named with their schema.

// The destinations' rows of ves.get_sync_status() (not a sequencer's
// per-stream rows, whose destination is NULL).
constexpr const char *kSyncStatus = R"sql(
WITH s AS (SELECT * FROM ves.get_sync_status() x WHERE x.destination IS NOT NULL),
     c AS (SELECT c.conflict_id, c.event_id, c.tenant_id, c.entity_type, c.entity_id, c.conflict_type,
                  c.rule, c.detected_at
           FROM ves.conflicts c WHERE c.status = 'open' AND ves.tenant_visible(c.tenant_id))
SELECT jsonb_build_object(
  'pendingCount', (SELECT coalesce(sum(s.pending), 0) FROM s),
  'syncingCount', (SELECT coalesce(sum(s.syncing), 0) FROM s),
  'failedCount', (SELECT coalesce(sum(s.failed), 0) FROM s),
  'deadCount', (SELECT coalesce(sum(s.dead), 0) FROM s),
  'syncedCount', (SELECT coalesce(sum(s.synced), 0) FROM s),
  'lastSyncTime', (SELECT max(s.last_success_at) FROM s),
  'openConflicts', (SELECT count(*) FROM c),
  'conflicts', (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.detected_at, x.conflict_id), '[]')
                FROM (SELECT * FROM c ORDER BY c.detected_at, c.conflict_id LIMIT 20) x),
  'destinations', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.destination), '[]') FROM s))
)sql";

constexpr const char *kPushEvents =
    "SELECT to_jsonb(r) FROM ves.push_events($1::text, coalesce($2::int, 1000)) r";

constexpr const char *kEventPosition =
    "SELECT to_jsonb(e.position) FROM ves.events e "
    "WHERE e.event_id = $1::uuid AND ves.tenant_visible(e.tenant_id)";

constexpr const char *kPullEvents = R"sql(
SELECT coalesce(jsonb_agg(jsonb_build_object(
  'position', e.position, 'event_id', e.event_id, 'tenant_id', e.tenant_id, 'store_id', e.store_id,
  'entity_type', e.entity_type, 'entity_id', e.entity_id, 'entity_version', e.entity_version,
  'event_type', e.event_type, 'payload', e.payload, 'metadata', e.metadata, 'source', e.source,
  'recorded_at', e.recorded_at) ORDER BY e.position), '[]')
FROM ves.read_all($1::bigint, coalesce($2::int, 100)) e
)sql";

constexpr const char *kListOutbox =
    "SELECT coalesce(jsonb_agg(to_jsonb(o) ORDER BY o.event_position, o.destination_id), '[]') "
    "FROM ves.list_outbox_events($1::text, $2::text, coalesce($3::int, 100)) o";

constexpr const char *kGetOutbox = "SELECT to_jsonb(ves.get_outbox_event($1::bigint))";

constexpr const char *kAcknowledge =
    "SELECT jsonb_build_object('acknowledged', ves.acknowledge_events($1::bigint[]))";

constexpr const char *kRetry =
    "SELECT jsonb_build_object('retried', ves.retry_events($1::bigint[]))";

// The open conflicts an event id names: the conflict whose
// sync.conflict_detected event it is, or the conflicts raised against the
// entity version that event wrote (the local side of the conflict).
constexpr const char *kConflictsOfEvent = R"sql(
SELECT coalesce(jsonb_agg(m.conflict_id ORDER BY m.conflict_id), '[]') FROM (
  SELECT c.conflict_id FROM ves.conflicts c
  WHERE c.event_id = $1::uuid AND c.status = 'open' AND ves.tenant_visible(c.tenant_id)
  UNION
  SELECT c.conflict_id FROM ves.events e
  JOIN ves.conflicts c ON c.tenant_id = e.tenant_id AND c.entity_type = e.entity_type
   AND c.entity_id = e.entity_id AND c.local_version = e.entity_version
  WHERE e.event_id = $1::uuid AND c.status = 'open' AND ves.tenant_visible(c.tenant_id)) m
)sql";

constexpr const char *kResolve =
    "SELECT to_jsonb(r) FROM ves.resolve_conflict($1::uuid, $2::text, $3::jsonb) r";

constexpr const char *kGetSettings = "SELECT ves.get_sync_settings()";
constexpr const char *kSetSettings = "SELECT ves.set_sync_settings($1::jsonb)";

constexpr const char *kListConflicts = R"sql(
SELECT coalesce(jsonb_agg(to_jsonb(o) || jsonb_build_object('event_id', c.event_id)
                          ORDER BY o.detected_at, o.conflict_id), '[]')
FROM (SELECT * FROM ves.open_conflicts o
      WHERE ($1::text IS NULL OR o.entity_type = $1::text) AND ($2::text IS NULL OR o.entity_id = $2::text)
      ORDER BY o.detected_at, o.conflict_id LIMIT coalesce($3::int, 100)) o
JOIN ves.conflicts c ON c.conflict_id = o.conflict_id
)sql";

constexpr const char *kMetrics = R"sql(
WITH s AS (SELECT * FROM ves.get_sync_status() x WHERE x.destination IS NOT NULL),
     c AS (SELECT c.conflict_type FROM ves.conflicts c
           WHERE c.status = 'open' AND ves.tenant_visible(c.tenant_id))
SELECT jsonb_build_object(
  'outbox', jsonb_build_object(
    'pending', (SELECT coalesce(sum(s.pending), 0) FROM s),
    'syncing', (SELECT coalesce(sum(s.syncing), 0) FROM s),
    'synced', (SELECT coalesce(sum(s.synced), 0) FROM s),
    'failed', (SELECT coalesce(sum(s.failed), 0) FROM s),
    'dead', (SELECT coalesce(sum(s.dead), 0) FROM s),
    'oldestPendingSeconds', (SELECT extract(epoch FROM max(s.oldest_pending_age)) FROM s)),
  'destinations', jsonb_build_object(
    'total', (SELECT count(*) FROM s),
    'paused', (SELECT count(*) FROM s WHERE s.paused),
    'breakerNotClosed', (SELECT count(*) FROM s WHERE s.breaker <> 'closed'),
    'lastSuccessAt', (SELECT max(s.last_success_at) FROM s)),
  'conflicts', jsonb_build_object(
    'open', (SELECT count(*) FROM c),
    'byType', (SELECT coalesce(jsonb_object_agg(t.conflict_type, t.n), '{}')
               FROM (SELECT c.conflict_type, count(*) AS n FROM c GROUP BY c.conflict_type) t)),
  'workers', (SELECT coalesce(jsonb_agg(to_jsonb(w) ORDER BY w.database), '[]') FROM ves.worker_status w))
)sql";

constexpr const char *kVerify = R"sql(
SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY v.event_position NULLS LAST, v.reason), '[]')
FROM ves.verify_events($1::uuid, $2::uuid, $3::text, $4::text, $5::bigint, $6::bigint) v
)sql";

// Runs a statement that changes nothing (retried once on a new connection if
// the old one was lost) or one that may change something (never retried).
Outcome read(Database &db, const char *sql, const std::vector<Param> &params) {
  return db.query(sql, params, true);
}
Outcome write(Database &db, const char *sql, const std::vector<Param> &params) {
  return db.query(sql, params, false);
}

// The tools ---------------------------------------------------------------

ToolResult get_sync_status(Database &db, const Value &) {
  Outcome o = read(db, kSyncStatus, {});
  if (!o.ok) return sql_failure(o.error);
  const Value &v = o.value;
  const Value *last = v.find("lastSyncTime");
  std::string text = std::to_string(count_of(v, "pendingCount")) + " pending, " +
                     std::to_string(count_of(v, "syncingCount")) + " syncing, " +
                     std::to_string(count_of(v, "failedCount")) + " failed, " +
                     std::to_string(count_of(v, "deadCount")) + " dead across " +
                     plural(static_cast<long long>(member(v, "destinations").as_array().size()),
                            "destination", "destinations") +
                     "; last sync " +
                     (last && last->kind() == Kind::string ? last->as_string() : "never") + "; " +
                     plural(count_of(v, "openConflicts"), "open conflict", "open conflicts") + ".";
  return success(v, text);
}

ToolResult push_events(Database &db, const Value &args) {
  Outcome o = write(db, kPushEvents, {text_arg(args, "destination"), integer_arg(args, "limit")});
  if (!o.ok) return sql_failure(o.error);
  const Value &v = o.value;
  return success(v, "Sent " + std::to_string(count_of(v, "sent")) + ": " +
                        std::to_string(count_of(v, "synced")) + " synced, " +
                        std::to_string(count_of(v, "failed")) + " failed, " +
                        std::to_string(count_of(v, "dead")) + " dead.");
}

ToolResult pull_events(Database &db, const Value &args) {
  // since: the last event id received (its position is looked up), or a
  // position; absent, from the beginning of the log.
  std::string after = "0";
  if (Param since = text_arg(args, "since")) {
    if (is_uuid(*since)) {
      Outcome p = read(db, kEventPosition, {since});
      if (!p.ok) return sql_failure(p.error);
      if (p.value.is_null())
        return failure("ERROR: no event " + *since +
                       " is visible to this session\nHINT: Pass the id of an event received "
                       "from pull_events, a position, or omit since to read from the beginning.");
      after = integer_text(p.value.as_number());
    } else if (!since->empty() && since->find_first_not_of("0123456789") == std::string::npos &&
               since->size() < 19) {
      after = *since;
    } else {
      return failure("ERROR: since must be an event id (a UUID) or a position (digits), not \"" +
                     *since + "\"\nHINT: Pass the id of the last event received from pull_events.");
    }
  }
  Outcome o = read(db, kPullEvents, {after, integer_arg(args, "limit")});
  if (!o.ok) return sql_failure(o.error);
  const auto &events = o.value.as_array();
  Value last_id, last_position;
  if (!events.empty()) {
    last_id = member(events.back(), "event_id");
    last_position = member(events.back(), "position");
  }
  const long long n = static_cast<long long>(events.size());
  std::string text = plural(n, "event", "events") + " after position " + after;
  if (n) text += "; pass since=" + last_id.as_string() + " for the next page";
  Value structured = object({{"events", o.value},
                             {"count", Value(static_cast<double>(n))},
                             {"afterPosition", Value(std::stod(after))},
                             {"lastEventId", last_id},
                             {"lastPosition", last_position}});
  return success(std::move(structured), text + ".");
}

ToolResult list_outbox_events(Database &db, const Value &args) {
  Param status = text_arg(args, "status");
  Outcome o =
      read(db, kListOutbox, {status, text_arg(args, "destination"), integer_arg(args, "limit")});
  if (!o.ok) return sql_failure(o.error);
  const long long n = static_cast<long long>(o.value.as_array().size());
  Value::Object s = {{"events", o.value}, {"count", Value(static_cast<double>(n))}};
  if (status) s.emplace_back("status", Value(*status));
  std::string text =
      plural(n, "outbox row", "outbox rows") + (status ? " with status " + *status : "") + ".";
  return success(object(std::move(s)), text);
}

ToolResult get_outbox_event(Database &db, const Value &args) {
  Outcome o = read(db, kGetOutbox, {integer_arg(args, "id")});
  if (!o.ok) return sql_failure(o.error);
  const Value &v = o.value;
  std::string text = "Outbox row " + integer_text(member(v, "id").as_number()) + ": " +
                     member(v, "status").as_string() + " after " +
                     plural(count_of(v, "attempts"), "attempt", "attempts") + ", event " +
                     member(v, "event_id").as_string() + ".";
  return success(v, text);
}

ToolResult acknowledge_events(Database &db, const Value &args) {
  Outcome o = write(db, kAcknowledge, {id_array_arg(args, "ids")});
  if (!o.ok) return sql_failure(o.error);
  const long long requested = static_cast<long long>(member(args, "ids").as_array().size());
  Value v = object({{"acknowledged", member(o.value, "acknowledged")},
                    {"requested", Value(static_cast<double>(requested))}});
  return success(v, "Acknowledged " + std::to_string(count_of(o.value, "acknowledged")) + " of " +
                        std::to_string(requested) +
                        " (only failed or dead rows are closed; the entities' later rows may "
                        "now be sent).");
}

ToolResult retry_events(Database &db, const Value &args) {
  Outcome o = write(db, kRetry, {id_array_arg(args, "ids")});
  if (!o.ok) return sql_failure(o.error);
  const long long requested = static_cast<long long>(member(args, "ids").as_array().size());
  Value v = object({{"retried", member(o.value, "retried")},
                    {"requested", Value(static_cast<double>(requested))}});
  return success(v, "Scheduled " + std::to_string(count_of(o.value, "retried")) + " of " +
                        std::to_string(requested) +
                        " for another delivery from the first attempt (only failed, dead or "
                        "acknowledged rows are retried).");
}

ToolResult resolve_conflict(Database &db, const Value &args) {
  Param conflict = text_arg(args, "conflictId");
  std::string matched_by = "conflictId";
  if (!conflict) {
    const std::string event = *text_arg(args, "eventId");
    Outcome m = read(db, kConflictsOfEvent, {event});
    if (!m.ok) return sql_failure(m.error);
    const auto &ids = m.value.as_array();
    if (ids.empty())
      return failure("ERROR: no open conflict belongs to event " + event +
                     "\nHINT: Pass the id of a sync.conflict_detected event or of the local "
                     "event a conflict was raised against; list_conflicts shows the open ones.");
    if (ids.size() > 1) {
      std::string list;
      for (const Value &id : ids) list += (list.empty() ? "" : ", ") + id.as_string();
      return failure("ERROR: event " + event + " belongs to " + std::to_string(ids.size()) +
                     " open conflicts (" + list + ")\nHINT: Pass conflictId to choose one.");
    }
    conflict = ids.front().as_string();
    matched_by = "eventId";
  }
  Outcome o = write(db, kResolve, {conflict, text_arg(args, "strategy"), json_arg(args, "merged")});
  if (!o.ok) return sql_failure(o.error);
  Value::Object s = o.value.as_object();
  s.emplace_back("conflictId", Value(*conflict));
  s.emplace_back("matchedBy", Value(matched_by));
  const Value version = member(o.value, "version");
  std::string text =
      "Conflict " + *conflict + " resolved with " + *text_arg(args, "strategy") + ": " +
      member(o.value, "outcome").as_string() +
      (version.kind() == Kind::number ? ", entity at version " + integer_text(version.as_number())
                                      : std::string()) +
      ".";
  return success(object(std::move(s)), text);
}

ToolResult get_sync_settings(Database &db, const Value &) {
  Outcome o = read(db, kGetSettings, {});
  if (!o.ok) return sql_failure(o.error);
  return success(object({{"settings", o.value}}),
                 "Sync settings: " + core::jcs::canonicalize(o.value));
}

ToolResult set_sync_settings(Database &db, const Value &args) {
  Outcome o = write(db, kSetSettings, {json_arg(args, "settings")});
  if (!o.ok) return sql_failure(o.error);
  return success(object({{"settings", o.value}}),
                 "Sync settings are now: " + core::jcs::canonicalize(o.value));
}

ToolResult list_conflicts(Database &db, const Value &args) {
  Outcome o =
      read(db, kListConflicts,
           {text_arg(args, "entityType"), text_arg(args, "entityId"), integer_arg(args, "limit")});
  if (!o.ok) return sql_failure(o.error);
  const long long n = static_cast<long long>(o.value.as_array().size());
  return success(object({{"conflicts", o.value}, {"count", Value(static_cast<double>(n))}}),
                 plural(n, "open conflict", "open conflicts") + ".");
}

ToolResult get_sync_metrics(Database &db, const Value &) {
  Outcome o = read(db, kMetrics, {});
  if (!o.ok) return sql_failure(o.error);
  const Value &v = o.value;
  const Value outbox = member(v, "outbox");
  std::string text =
      "Outbox: " + std::to_string(count_of(outbox, "pending")) + " pending, " +
      std::to_string(count_of(outbox, "failed")) + " failed, " +
      std::to_string(count_of(outbox, "dead")) + " dead; " +
      plural(count_of(member(v, "conflicts"), "open"), "open conflict", "open conflicts") + "; " +
      plural(static_cast<long long>(member(v, "workers").as_array().size()), "sync worker",
             "sync workers") +
      ".";
  return success(v, text);
}

ToolResult verify_events(Database &db, const Value &args) {
  Outcome o = read(db, kVerify,
                   {text_arg(args, "tenantId"), text_arg(args, "storeId"),
                    text_arg(args, "entityType"), text_arg(args, "entityId"),
                    integer_arg(args, "fromPosition"), integer_arg(args, "toPosition")});
  if (!o.ok) return sql_failure(o.error);
  const long long n = static_cast<long long>(o.value.as_array().size());
  Value v = object({{"ok", Value(n == 0)},
                    {"failureCount", Value(static_cast<double>(n))},
                    {"failures", o.value}});
  return success(v, n == 0 ? "Every event in the range verifies."
                           : plural(n, "event fails", "events fail") +
                                 " verification; see failures for the reasons.");
}

// Schemas ---------------------------------------------------------------------

constexpr const char *kNoArguments =
    R"({"type": "object", "properties": {}, "additionalProperties": false})";

constexpr const char *kIdsInput = R"({
  "type": "object",
  "properties": {
    "ids": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 100000,
            "description": "Outbox row ids (the id column of list_outbox_events)."}
  },
  "required": ["ids"],
  "additionalProperties": false
})";

constexpr const char *kOutboxRow = R"({
  "type": "object",
  "required": ["id", "tenant_id", "destination_id", "event_position", "event_id", "entity_type", "entity_id",
               "status", "attempts"],
  "properties": {
    "id": {"type": "integer"}, "tenant_id": {"type": "string"}, "destination_id": {"type": "integer"},
    "event_position": {"type": "integer"}, "event_id": {"type": "string"}, "entity_type": {"type": "string"},
    "entity_id": {"type": "string"},
    "status": {"type": "string", "enum": ["pending", "syncing", "synced", "failed", "dead", "acknowledged"]},
    "attempts": {"type": "integer"}, "next_attempt_at": {"type": ["string", "null"]},
    "last_status": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
    "synced_at": {"type": ["string", "null"]}
  }
})";

std::vector<Tool> make_tools() {
  std::vector<Tool> t;
  auto add = [&t](const char *name, const char *title, const char *description, bool read_only,
                  bool idempotent, bool destructive, const std::string &input,
                  const std::string &output,
                  std::function<ToolResult(Database &, const Value &)> run) {
    t.push_back(Tool{name, title, description, read_only, idempotent, destructive,
                     schema(input.c_str()), schema(output.c_str()), std::move(run)});
  };
  const std::string outbox_row = kOutboxRow;

  add("get_sync_status", "Sync status",
      "The outbox counts summed over every destination (pending, syncing, failed, dead, synced), "
      "the last time a delivery succeeded, the open conflicts (the first 20 and their number), "
      "and one row per destination as ves.get_sync_status() returns it.",
      true, true, false, kNoArguments, R"({
        "type": "object",
        "required": ["pendingCount", "syncingCount", "failedCount", "deadCount", "syncedCount",
                     "lastSyncTime", "openConflicts", "conflicts", "destinations"],
        "properties": {
          "pendingCount": {"type": "integer"}, "syncingCount": {"type": "integer"},
          "failedCount": {"type": "integer"}, "deadCount": {"type": "integer"},
          "syncedCount": {"type": "integer"},
          "lastSyncTime": {"type": ["string", "null"], "description": "When a delivery last succeeded."},
          "openConflicts": {"type": "integer"},
          "conflicts": {"type": "array", "items": {"type": "object", "required": ["conflict_id", "entity_type",
                        "entity_id", "conflict_type"]}},
          "destinations": {"type": "array", "items": {"type": "object", "required": ["destination", "pending",
                           "syncing", "synced", "failed", "dead"]}}
        }
      })",
      get_sync_status);

  add("push_events", "Push events",
      "Runs one delivery pass now, in the database session (ves.push_events): sends up to limit "
      "due outbox rows to their destinations and records the results. The sync worker does the "
      "same continuously; this is for manual syncs.",
      false, false, false, R"({
        "type": "object",
        "properties": {
          "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000,
                    "description": "The most outbox rows to send in this pass."},
          "destination": {"type": "string", "description": "Only this destination (by name)."}
        },
        "additionalProperties": false
      })",
      R"({
        "type": "object", "required": ["sent", "synced", "failed", "dead"],
        "properties": {"sent": {"type": "integer"}, "synced": {"type": "integer"},
                       "failed": {"type": "integer"}, "dead": {"type": "integer"}}
      })",
      push_events);

  add("pull_events", "Pull events",
      "Reads events from this database's log after `since` in commit-safe position order "
      "(ves.read_all): pass the event id of the last event received (or its position), or "
      "nothing to start at the beginning. This reads the local log; pulling from a remote VES "
      "sequencer is not in this version.",
      true, true, false, R"({
        "type": "object",
        "properties": {
          "since": {"type": "string", "description": "The id of the last event received, or a position."},
          "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 100}
        },
        "additionalProperties": false
      })",
      R"({
        "type": "object", "required": ["events", "count", "afterPosition", "lastEventId", "lastPosition"],
        "properties": {
          "events": {"type": "array", "items": {"type": "object", "required": ["position", "event_id",
                     "entity_type", "entity_id", "entity_version", "event_type", "payload"]}},
          "count": {"type": "integer"}, "afterPosition": {"type": "integer"},
          "lastEventId": {"type": ["string", "null"]}, "lastPosition": {"type": ["integer", "null"]}
        }
      })",
      pull_events);

  add("list_outbox_events", "List outbox events",
      "Outbox rows in event order (ves.list_outbox_events), optionally of one status and one "
      "destination. A claimed row shows as syncing; a row a sequencer refused with a version "
      "conflict is in status conflict until its conflict is resolved (see list_conflicts).",
      true, true, false, R"({
        "type": "object",
        "properties": {
          "status": {"type": "string",
                     "enum": ["pending", "syncing", "synced", "failed", "dead", "acknowledged", "conflict"]},
          "destination": {"type": "string", "description": "A destination name."},
          "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 100}
        },
        "additionalProperties": false
      })",
      R"({
        "type": "object", "required": ["events", "count"],
        "properties": {
          "events": {"type": "array", "items": )" +
          outbox_row + R"(},
          "count": {"type": "integer"}, "status": {"type": "string"}, "note": {"type": "string"}
        }
      })",
      list_outbox_events);

  add("get_outbox_event", "Get outbox event",
      "One outbox row by its id (ves.get_outbox_event): its status, attempts, next attempt, the "
      "destination's last HTTP status, error and response.",
      true, true, false, R"({
        "type": "object",
        "properties": {"id": {"type": "integer", "minimum": 1, "description": "The outbox row id."}},
        "required": ["id"],
        "additionalProperties": false
      })",
      outbox_row, get_outbox_event);

  add("acknowledge_events", "Acknowledge events",
      "Closes failed or dead outbox rows without sending them (ves.acknowledge_events), so the "
      "entities' later rows may be sent; other rows are left as they are. Returns how many "
      "were closed.",
      false, true, true, kIdsInput, R"({
        "type": "object", "required": ["acknowledged", "requested"],
        "properties": {"acknowledged": {"type": "integer"}, "requested": {"type": "integer"}}
      })",
      acknowledge_events);

  add("resolve_conflict", "Resolve conflict",
      "Resolves an open conflict (ves.resolve_conflict) named by conflictId, or by eventId: the "
      "sync.conflict_detected event of the conflict, or the local event the conflict was raised "
      "against. Strategies: accept_local, accept_remote, merge (with merged, the whole state to "
      "keep, when fields changed on both sides) and last_write_wins.",
      false, false, false, R"({
        "type": "object",
        "properties": {
          "conflictId": {"type": "string", "format": "uuid"},
          "eventId": {"type": "string", "format": "uuid"},
          "strategy": {"type": "string", "enum": ["accept_local", "accept_remote", "merge", "last_write_wins"]},
          "merged": {"type": "object", "description": "For strategy merge: the state to keep."}
        },
        "required": ["strategy"],
        "oneOf": [{"required": ["conflictId"]}, {"required": ["eventId"]}],
        "additionalProperties": false
      })",
      R"({
        "type": "object", "required": ["conflictId", "matchedBy", "outcome"],
        "properties": {
          "conflictId": {"type": "string"}, "matchedBy": {"type": "string", "enum": ["conflictId", "eventId"]},
          "outcome": {"type": "string"}, "version": {"type": ["integer", "null"]},
          "conflict_id": {"type": ["string", "null"]}, "event_id": {"type": ["string", "null"]},
          "original_outcome": {"type": ["string", "null"]}
        }
      })",
      resolve_conflict);

  const std::string settings_output = R"({
    "type": "object", "required": ["settings"],
    "properties": {"settings": {"type": "object", "properties": {
      "window": {"type": "integer"}, "claim_batch": {"type": "integer"}, "lease_seconds": {"type": "integer"},
      "safety_poll_ms": {"type": "integer"}, "purge_batch": {"type": "integer"},
      "synced_retention": {"type": "string"}, "order_hold": {"type": "string"}}}}
  })";
  add("get_sync_settings", "Get sync settings",
      "The sync worker's settings (ves.get_sync_settings).", true, true, false, kNoArguments,
      settings_output, get_sync_settings);

  add("set_sync_settings", "Set sync settings",
      "Merges the given keys into the sync worker's settings (ves.set_sync_settings); each is "
      "checked, unknown keys are refused. Returns the settings now in force.",
      false, true, false, R"({
        "type": "object",
        "properties": {
          "settings": {"type": "object",
                       "description": "For example {\"window\": 128, \"synced_retention\": \"2 days\"}.",
                       "properties": {
                         "window": {"type": "integer"}, "claim_batch": {"type": "integer"},
                         "lease_seconds": {"type": "integer"}, "safety_poll_ms": {"type": "integer"},
                         "purge_batch": {"type": "integer"}, "synced_retention": {"type": "string"},
                         "order_hold": {"type": "string"}}}
        },
        "required": ["settings"],
        "additionalProperties": false
      })",
      settings_output, set_sync_settings);

  add("list_conflicts", "List conflicts",
      "Open conflicts waiting for a decision (ves.open_conflicts), oldest first, with both "
      "sides, the base, the rule that sent them to review, a proposed merge and the id of their "
      "sync.conflict_detected event.",
      true, true, false, R"({
        "type": "object",
        "properties": {
          "entityType": {"type": "string"}, "entityId": {"type": "string"},
          "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 100}
        },
        "additionalProperties": false
      })",
      R"({
        "type": "object", "required": ["conflicts", "count"],
        "properties": {
          "conflicts": {"type": "array", "items": {"type": "object", "required": ["conflict_id", "event_id",
                        "entity_type", "entity_id", "conflict_type", "local_state", "remote_state"]}},
          "count": {"type": "integer"}
        }
      })",
      list_conflicts);

  add("retry_events", "Retry events",
      "Sends failed, dead or acknowledged outbox rows again from the first attempt "
      "(ves.retry_events). Returns how many were scheduled.",
      false, true, false, kIdsInput, R"({
        "type": "object", "required": ["retried", "requested"],
        "properties": {"retried": {"type": "integer"}, "requested": {"type": "integer"}}
      })",
      retry_events);

  add("get_sync_metrics", "Sync metrics",
      "Counts for monitoring, from ves.get_sync_status, the open conflicts and ves.worker_status: "
      "outbox rows by status and the oldest pending row's age, destinations paused or with a "
      "breaker not closed, open conflicts by type, and each sync worker's deliveries. Latency "
      "histograms are not in this version.",
      true, true, false, kNoArguments, R"({
        "type": "object", "required": ["outbox", "destinations", "conflicts", "workers"],
        "properties": {
          "outbox": {"type": "object", "required": ["pending", "syncing", "synced", "failed", "dead"],
                     "properties": {"pending": {"type": "integer"}, "syncing": {"type": "integer"},
                                    "synced": {"type": "integer"}, "failed": {"type": "integer"},
                                    "dead": {"type": "integer"},
                                    "oldestPendingSeconds": {"type": ["number", "null"]}}},
          "destinations": {"type": "object", "required": ["total", "paused", "breakerNotClosed"]},
          "conflicts": {"type": "object", "required": ["open", "byType"]},
          "workers": {"type": "array", "items": {"type": "object"}}
        }
      })",
      get_sync_metrics);

  add("verify_events", "Verify events",
      "Checks signatures, payload hashes and version streams (ves.verify_events) of a tenant, "
      "store, entity type, entity or position range (all optional), and lists the events that "
      "fail with the reason.",
      true, true, false, R"({
        "type": "object",
        "properties": {
          "tenantId": {"type": "string", "format": "uuid"}, "storeId": {"type": "string", "format": "uuid"},
          "entityType": {"type": "string"}, "entityId": {"type": "string"},
          "fromPosition": {"type": "integer", "minimum": 0}, "toPosition": {"type": "integer", "minimum": 0}
        },
        "additionalProperties": false
      })",
      R"({
        "type": "object", "required": ["ok", "failureCount", "failures"],
        "properties": {
          "ok": {"type": "boolean"}, "failureCount": {"type": "integer"},
          "failures": {"type": "array", "items": {"type": "object", "required": ["reason"]}}
        }
      })",
      verify_events);
  return t;
}

}  // namespace

const std::vector<Tool> &all_tools() {
  static const std::vector<Tool> tools = make_tools();
  return tools;
}

Value describe(const Tool &tool) {
  return object({{"name", Value(tool.name)},
                 {"title", Value(tool.title)},
                 {"description", Value(tool.description)},
                 {"inputSchema", tool.input_schema},
                 {"outputSchema", tool.output_schema},
                 {"annotations", object({{"title", Value(tool.title)},
                                         {"readOnlyHint", Value(tool.read_only)},
                                         {"destructiveHint", Value(tool.destructive)},
                                         {"idempotentHint", Value(tool.idempotent)},
                                         {"openWorldHint", Value(tool.name == "push_events")}})}});
}

ToolResult call_tool(const Tool &tool, Database &db, const Value &arguments) {
  std::string problem = validate(tool.input_schema, arguments, "arguments");
  if (!problem.empty())
    return failure("ERROR: invalid arguments for " + tool.name + ": " + problem +
                   "\nHINT: See the tool's inputSchema in tools/list.");
  try {
    return tool.run(db, arguments);
  } catch (const std::exception &e) {
    return failure("ERROR: pg_ves_mcp could not complete " + tool.name + ": " + e.what());
  }
}

}  // namespace pgves::mcp
