// SQL access to the conflict rules and the order state machine of src/core.
// The plpgsql in src/sql/75_state.sql, 80_inventory.sql and 85_orders.sql
// gathers facts from tables, asks these functions what to do, and writes.
//
// States cross this boundary as "picks": for every member of the resulting
// state, which input it comes from. The caller assembles the state from the
// original jsonb values, so numbers never pass through a double and come
// back rounded.
#include "core/json/canonical_json.hpp"
#include "core/state/conflict.hpp"
#include "core/json/json.hpp"
#include "core/state/order_state.hpp"
#include "pg/base/boundary.hpp"
#include "pg/store/stored_event.hpp"

extern "C" {
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include <string>
#include <vector>

using namespace pgves::pg;
namespace conflict = pgves::core::conflict;
namespace json = pgves::core::json;
namespace order = pgves::core::order;

namespace {

// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
constexpr int64 kUnixToPostgresUs = INT64CONST(946684800000000);

// Argument n, detoasted through pg_call: a detoast can raise, and the
// callers hold C++ objects.
Jsonb *jsonb_param(FunctionCallInfo fcinfo, int n) {
  return pg_call([&] { return PG_GETARG_JSONB_P(n); });
}

json::Value jsonb_arg(FunctionCallInfo fcinfo, int n, const char *name) {
  if (PG_ARGISNULL(n)) return json::Value(json::Value::Object{});
  std::string text = jsonb_text(jsonb_param(fcinfo, n));
  json::Value v = json::parse(text);
  if (v.kind() != json::Kind::object)
    throw VesError(sqlstate::invalid_payload, std::string(name) + " must be a JSON object", {},
                   "Pass the entity's state as a JSON object.");
  return v;
}

std::string text_arg(FunctionCallInfo fcinfo, int n, const char *fallback) {
  if (PG_ARGISNULL(n)) return fallback;
  text *t = pg_call([&] { return PG_GETARG_TEXT_PP(n); });
  return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

int64 unix_us(FunctionCallInfo fcinfo, int n) {
  return PG_ARGISNULL(n) ? 0 : PG_GETARG_TIMESTAMPTZ(n) + kUnixToPostgresUs;
}

conflict::Policy policy_arg(FunctionCallInfo fcinfo, int n) {
  if (PG_ARGISNULL(n)) return conflict::Policy{};
  return conflict::parse_policy(json::parse(jsonb_text(jsonb_param(fcinfo, n))));
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
std::string picks(const json::Value &state, const json::Value &local, const json::Value &remote) {
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

Datum jsonb_datum(const std::string &text) { return PointerGetDatum(jsonb_from_text(text)); }

// The state a decision picked, built from the original jsonb values of the
// two sides (the one that is NULL counts as {}): {"key": value of the side
// picked}. Keys are copied into palloc'd memory before any Postgres call.
Jsonb *picked_state(const json::Value &state, const json::Value &remote, Jsonb *l, Jsonb *r) {
  struct Pick {
    std::string key;
    bool from_remote;
  };
  std::vector<Pick> list;
  for (const auto &[key, value] : state.as_object()) {
    const json::Value *rv = remote.find(key);
    list.push_back({key, rv && *rv == value});
  }
  // No C++ object is created inside: a Postgres error here unwinds only
  // through `list`, which outlives the call.
  return pg_call([&] {
    JsonbParseState *ps = nullptr;
    pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
    for (const Pick &p : list) {
      Jsonb *from = p.from_remote ? r : l;
      JsonbValue k;
      k.type = jbvString;
      k.val.string.val = pstrdup(p.key.c_str());
      k.val.string.len = static_cast<int>(p.key.size());
      JsonbValue *v = from ? getKeyJsonValueFromContainer(&from->root, k.val.string.val,
                                                          k.val.string.len, nullptr)
                           : nullptr;
      if (v == nullptr) elog(ERROR, "pg_ves: picked member \"%s\" is missing", k.val.string.val);
      pushJsonbValue(&ps, WJB_KEY, &k);
      pushJsonbValue(&ps, WJB_VALUE, v);
    }
    JsonbValue *res = pushJsonbValue(&ps, WJB_END_OBJECT, nullptr);
    return JsonbValueToJsonb(res);
  });
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
  Jsonb *state =
      picked_state(d.state, in.remote.state, PG_ARGISNULL(2) ? nullptr : jsonb_param(fcinfo, 2),
                   PG_ARGISNULL(3) ? nullptr : jsonb_param(fcinfo, 3));
  Jsonb *result = jsonb_from_text(out);
  // {"state": ...} || result, through jsonb's own concatenation.
  return pg_call([&] {
    JsonbParseState *ps = nullptr;
    JsonbValue k;
    k.type = jbvString;
    k.val.string.val = const_cast<char *>("state");
    k.val.string.len = 5;
    pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
    pushJsonbValue(&ps, WJB_KEY, &k);
    JsonbValue sv;
    sv.type = jbvBinary;
    sv.val.binary.data = &state->root;
    sv.val.binary.len = VARSIZE(state) - VARHDRSZ;
    pushJsonbValue(&ps, WJB_VALUE, &sv);
    JsonbIterator *it = JsonbIteratorInit(&result->root);
    JsonbValue v;
    JsonbIteratorToken tok;
    bool first = true;
    while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
      if (first) {  // skip the inner WJB_BEGIN_OBJECT
        first = false;
        continue;
      }
      if (tok == WJB_END_OBJECT) break;
      pushJsonbValue(&ps, tok, tok == WJB_KEY || tok == WJB_VALUE ? &v : nullptr);
    }
    return PointerGetDatum(JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, nullptr)));
  });
}

// ves._apply_changes(current, base, side): picks for current with side's
// changes relative to base applied; "l" is current, "r" is side.
PGVES_FUNCTION(ves_apply_changes) {
  json::Value current = jsonb_arg(fcinfo, 0, "current state");
  json::Value base = jsonb_arg(fcinfo, 1, "base");
  json::Value side = jsonb_arg(fcinfo, 2, "side");
  json::Value result = conflict::apply_changes(current, base, side);
  return jsonb_datum(picks(result, current, side));
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

  TupleDesc desc;
  pg_call_void([&] {
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "pg_ves: composite expected");
    desc = BlessTupleDesc(desc);
  });
  return pg_call([&] {
    Datum values[6] = {
        CStringGetTextDatum(order::name(t.verdict)), CStringGetTextDatum(n.status.c_str()),
        CStringGetTextDatum(n.payment.c_str()),      CStringGetTextDatum(n.ret.c_str()),
        CStringGetTextDatum(t.reason.c_str()),       BoolGetDatum(t.bad_payload)};
    bool nulls[6] = {false, false, false, false, t.reason.empty(), false};
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
  });
}
