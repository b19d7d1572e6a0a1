// SQL access to the conflict rules and the order state machine of src/core.
// The plpgsql in src/sql/75_state.sql, 80_inventory.sql, 85_orders.sql and
// 87_resolve.sql gathers facts from tables, asks these functions what to do,
// and writes rows. Every rule, and every name SQL stores or accepts
// (strategies, conflict types, rules), is decided in src/core/state.
//
// States cross this boundary as "picks": for every member of the resulting
// state, which input it comes from (src/pg/state/picks.hpp).
#include "core/json/canonical_json.hpp"
#include "core/state/conflict.hpp"
#include "core/json/json.hpp"
#include "core/state/order_state.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/jsonb_value.hpp"
#include "pg/base/safe.hpp"
#include "pg/state/picks.hpp"

extern "C" {
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <optional>
#include <string>
#include <vector>

using namespace pgves::pg;
namespace conflict = pgves::core::conflict;
namespace json = pgves::core::json;
namespace order = pgves::core::order;

namespace {

// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
constexpr int64 kUnixToPostgresUs = INT64CONST(946684800000000);

json::Value jsonb_arg(FunctionCallInfo fcinfo, int n, const char *name) {
  if (PG_ARGISNULL(n)) return json::Value(json::Value::Object{});
  json::Value v = jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(n)));
  if (v.kind() != json::Kind::object)
    throw VesError(sqlstate::invalid_payload, std::string(name) + " must be a JSON object", {},
                   "Pass the entity's state as a JSON object.");
  return v;
}

std::string text_arg(FunctionCallInfo fcinfo, int n, const char *fallback) {
  if (PG_ARGISNULL(n)) return fallback;
  return safe::text_string(PG_GETARG_DATUM(n));
}

int64 unix_us(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? 0 : PG_GETARG_TIMESTAMPTZ(n) + kUnixToPostgresUs;
}

conflict::Policy policy_arg(FunctionCallInfo fcinfo, int n) {
  if (PG_ARGISNULL(n)) return conflict::Policy{};
  return conflict::parse_policy(jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(n))));
}

Datum nullable_jsonb(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? (Datum)0 : PG_GETARG_DATUM(n);
}

std::string quoted(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// {"key": "l" | "r", ...}: where each member of `state` can be taken from.
std::string picks_json(const json::Value &state, const json::Value &local,
                       const json::Value &remote) {
  std::string out = "{";
  bool first = true;
  for (const auto &[key, value] : state.as_object()) {
    const json::Value *r = remote.find(key);
    const char *from = (r && *r == value) ? "r" : "l";
    out += (first ? "" : ",") + quoted(key) + ":\"" + from + "\"";
    first = false;
  }
  return out + "}";
}

Datum jsonb_datum(const std::string &json) { return PointerGetDatum(safe::jsonb_from_text(json)); }

// 8-4-4-4-12 lowercase hex, as uuid_out writes it (uuids are passed by
// reference and never toasted: no PostgreSQL call needed).
std::string uuid_text(const pg_uuid_t *u) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < UUID_LEN; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += hex[u->data[i] >> 4];
    out += hex[u->data[i] & 0xf];
  }
  return out;
}

// "a, b or c", each name as core spells it; merge says what it needs.
std::string resolution_list() {
  const auto &list = conflict::resolutions();
  std::string out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) out += i + 1 == list.size() ? " or " : ", ";
    out += conflict::name(list[i]);
    if (list[i] == conflict::Strategy::merge) out += " (with a merged state)";
  }
  return out;
}

}  // namespace

// ves._decide(policy, base, local, remote, exists, deleted, reference_deleted,
//             base_version, current_version, source_version, source_observed_at,
//             local_source, local_observed_at, remote_source, remote_observed_at, stamps)
PGVES_FUNCTION(ves_decide) {
  conflict::Input in;
  in.policy = policy_arg(fcinfo, 0);
  in.base = jsonb_arg(fcinfo, 1, "base");
  in.local.state = jsonb_arg(fcinfo, 2, "local state");
  in.remote.state = jsonb_arg(fcinfo, 3, "state");
  in.facts.exists = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);
  in.facts.deleted = !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
  in.facts.reference_deleted = !PG_ARGISNULL(6) && PG_GETARG_BOOL(6);
  if (!PG_ARGISNULL(7)) in.facts.base_version = PG_GETARG_INT64(7);
  in.facts.current_version = PG_ARGISNULL(8) ? 0 : PG_GETARG_INT64(8);
  in.facts.source_version = PG_ARGISNULL(9) ? 0 : PG_GETARG_INT64(9);
  if (!PG_ARGISNULL(10)) in.facts.source_observed_at_us = unix_us(fcinfo, 10);
  in.local.source = text_arg(fcinfo, 11, "");
  in.local.observed_at_us = unix_us(fcinfo, 12);
  in.remote.source = text_arg(fcinfo, 13, "manual");
  in.remote.observed_at_us = unix_us(fcinfo, 14);
  in.stamps = jsonb_arg(fcinfo, 15, "stamps");

  conflict::Decision d = conflict::decide(in);
  std::string out = "{\"type\":";
  out += d.type == conflict::Type::none ? "null" : quoted(conflict::name(d.type));
  out += ",\"outcome\":" + quoted(conflict::name(d.outcome));
  out += ",\"rule\":" + quoted(d.rule);
  out += ",\"changed\":";
  out += d.changed ? "true" : "false";
  out += ",\"fields\":[";
  for (size_t i = 0; i < d.fields.size(); ++i) out += (i ? "," : "") + quoted(d.fields[i]);
  out += "],\"stamps\":" + pgves::core::jcs::canonicalize(d.stamps) + "}";
  Datum state = picks::object(picks::of(d.state, in.remote.state), nullable_jsonb(fcinfo, 2),
                              nullable_jsonb(fcinfo, 3));
  // {"state": ...} followed by the rest of the decision.
  return picks::with_first_member("state", state, jsonb_datum(out));
}

// ves._apply_changes(current, base, side): picks for current with side's
// changes relative to base applied; "l" is current, "r" is side.
PGVES_FUNCTION(ves_apply_changes) {
  json::Value current = jsonb_arg(fcinfo, 0, "current state");
  json::Value base = jsonb_arg(fcinfo, 1, "base");
  json::Value side = jsonb_arg(fcinfo, 2, "side");
  json::Value result = conflict::apply_changes(current, base, side);
  return jsonb_datum(picks_json(result, current, side));
}

// ves._restamp(stamps, local, result, source, observed_at, policy): the field
// stamps after `result` replaced `local` by a change from `source`.
PGVES_FUNCTION(ves_restamp) {
  conflict::Side remote;
  remote.source = text_arg(fcinfo, 3, "manual");
  remote.observed_at_us = unix_us(fcinfo, 4);
  json::Value out =
      conflict::restamp(jsonb_arg(fcinfo, 0, "stamps"), jsonb_arg(fcinfo, 1, "local state"),
                        jsonb_arg(fcinfo, 2, "state"), remote, policy_arg(fcinfo, 5));
  return jsonb_datum(pgves::core::jcs::canonicalize(out));
}

// ves._conflict_policy(policy jsonb): the policy validated, defaults filled in.
PGVES_FUNCTION(ves_conflict_policy) {
  conflict::Policy p = policy_arg(fcinfo, 0);
  std::string text = pgves::core::jcs::canonicalize(conflict::policy_json(p));
  return jsonb_datum(text);
}

// ves._order_transition(status, payment, ret, event_type, payload)
//   -> (verdict, status, payment, ret, reason, bad_payload)
PGVES_FUNCTION(ves_order_transition) {
  order::State s;
  s.status = text_arg(fcinfo, 0, "none");
  s.payment = text_arg(fcinfo, 1, "none");
  s.ret = text_arg(fcinfo, 2, "none");
  std::string event_type = text_arg(fcinfo, 3, "");
  json::Value payload = jsonb_arg(fcinfo, 4, "payload");
  order::Transition t = order::transition(s, event_type, payload);
  const order::State &n = t.verdict == order::Verdict::apply ? t.next : s;

  Datum values[6] = {safe::text_datum(order::name(t.verdict)),
                     safe::text_datum(n.status),
                     safe::text_datum(n.payment),
                     safe::text_datum(n.ret),
                     safe::text_datum(t.reason),
                     BoolGetDatum(t.bad_payload)};
  bool nulls[6] = {false, false, false, false, t.reason.empty(), false};
  return safe::composite_result(fcinfo, values, nulls);
}

// ves.conflict_vocabulary() -> (kind, name): every conflict type, policy
// strategy, resolution strategy and rule, as src/core/state spells them.
PGVES_FUNCTION(ves_conflict_vocabulary) {
  std::vector<std::pair<const char *, const char *>> rows;
  for (auto t : conflict::conflict_types()) rows.emplace_back("conflict_type", conflict::name(t));
  for (auto s : conflict::strategies()) rows.emplace_back("strategy", conflict::name(s));
  for (auto s : conflict::resolutions()) rows.emplace_back("resolution", conflict::name(s));
  for (auto r : conflict::rules()) rows.emplace_back("rule", conflict::name(r));
  safe::init_materialized_srf(fcinfo);
  for (const auto &[kind, name] : rows) {
    Datum values[2] = {safe::text_datum(kind), safe::text_datum(name)};
    bool nulls[2] = {false, false};
    safe::put_row(fcinfo, values, nulls);
  }
  return (Datum)0;
}

// ves._check_resolution(conflict_id, strategy, merged): refuses a call to
// ves.resolve_conflict that no stored conflict could make valid.
PGVES_FUNCTION(ves_check_resolution) {
  const std::string hint = "Strategies: " + resolution_list() + ".";
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    throw VesError(sqlstate::null_argument, "conflict_id and strategy must not be NULL", {}, hint);
  std::string strategy = text_arg(fcinfo, 1, "");
  std::optional<conflict::Strategy> s = conflict::parse_resolution(strategy);
  if (!s)
    throw VesError(sqlstate::invalid_argument,
                   "a conflict cannot be resolved with strategy \"" + strategy + "\"", {}, hint);
  if (!PG_ARGISNULL(2) &&
      (*s != conflict::Strategy::merge ||
       jsonb_value(safe::jsonb_detoast(PG_GETARG_DATUM(2))).kind() != json::Kind::object))
    throw VesError(sqlstate::invalid_argument,
                   "a merged state is only taken with strategy merge, and must be a JSON object",
                   {}, "Pass merged => '{...}' together with strategy 'merge'.");
  PG_RETURN_VOID();
}

// ves._resolution_effect(conflict_id, strategy, merged, fields, policy,
//                        local_source, local_observed_at, local_state,
//                        remote_source, remote_observed_at, remote_state)
//   -> accept_local | accept_remote | merge
// What resolving the stored conflict with `strategy` does; last_write_wins
// picks a side by the order automatic resolution uses.
PGVES_FUNCTION(ves_resolution_effect) {
  std::optional<conflict::Strategy> s = conflict::parse_resolution(text_arg(fcinfo, 1, ""));
  if (!s) throw VesError(sqlstate::invalid_argument, "unknown resolution strategy");
  std::vector<std::string> fields;
  if (!PG_ARGISNULL(3)) fields = safe::text_array_strings(PG_GETARG_DATUM(3));
  if (*s == conflict::Strategy::merge && PG_ARGISNULL(2) && !fields.empty()) {
    std::string list;
    for (const auto &f : fields) list += (list.empty() ? "" : ", ") + f;
    std::string id = uuid_text(DatumGetUUIDP(PG_GETARG_DATUM(0)));
    throw VesError(sqlstate::null_argument,
                   "conflict " + id + " has fields changed on both sides (" + list +
                       "); merge needs the merged state",
                   {},
                   "Pass merged => the whole state to keep; proposed_state in ves.open_conflicts "
                   "is a starting point.");
  }
  conflict::Policy policy = policy_arg(fcinfo, 4);
  std::optional<conflict::Side> local;
  if (!PG_ARGISNULL(6)) {
    local.emplace();
    local->source = text_arg(fcinfo, 5, "");
    local->observed_at_us = unix_us(fcinfo, 6);
    local->state = jsonb_arg(fcinfo, 7, "local state");
  }
  conflict::Side remote;
  remote.source = text_arg(fcinfo, 8, "manual");
  remote.observed_at_us = unix_us(fcinfo, 9);
  remote.state = jsonb_arg(fcinfo, 10, "remote state");
  conflict::Strategy effect =
      conflict::resolution_effect(*s, policy, local ? &*local : nullptr, remote);
  return safe::text_datum(conflict::name(effect));
}

// ves._decide_stock(policy, on_hand, reserved, wanted)
//   -> (conflict_type, outcome, rule, on_hand)
// Reservations win over adjustments (conflict::decide_stock).
PGVES_FUNCTION(ves_decide_stock) {
  conflict::Policy policy = policy_arg(fcinfo, 0);
  int64 on_hand = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
  int64 reserved = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2);
  int64 wanted = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
  conflict::StockDecision d = conflict::decide_stock(policy, on_hand, reserved, wanted);
  Datum values[4] = {safe::text_datum(conflict::name(d.type)),
                     safe::text_datum(conflict::name(d.outcome)),
                     safe::text_datum(conflict::name(d.rule)), Int64GetDatum(d.on_hand)};
  bool nulls[4] = {d.type == conflict::Type::none, false, false, false};
  return safe::composite_result(fcinfo, values, nulls);
}
