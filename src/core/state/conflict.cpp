#include "core/state/conflict.hpp"

#include <algorithm>
#include <cmath>

#include "core/json/canonical_json.hpp"
#include "core/base/error.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::conflict {
namespace {

using json::Kind;
using json::Value;

const Value::Object &members(const Value &v) {
  static const Value::Object empty;
  return v.kind() == Kind::object ? v.as_object() : empty;
}

// Absent and present are different; two absent members are equal.
bool same(const Value *a, const Value *b) {
  if (a == nullptr || b == nullptr) return a == b;
  return *a == *b;
}

std::vector<std::string> keys_of(const Value &a, const Value &b, const Value &c) {
  std::vector<std::string> keys;
  for (const Value *v : {&a, &b, &c})
    for (const auto &m : members(*v)) keys.push_back(m.first);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

// Replace, add or (value nullptr) remove one member, keeping the others' order.
void put(Value::Object &obj, const std::string &key, const Value *value) {
  auto it =
      std::find_if(obj.begin(), obj.end(), [&](const Value::Member &m) { return m.first == key; });
  if (value == nullptr) {
    if (it != obj.end()) obj.erase(it);
  } else if (it != obj.end()) {
    it->second = *value;
  } else {
    obj.emplace_back(key, *value);
  }
}

bool contains(const std::vector<std::string> &list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

std::int64_t distance(std::int64_t a, std::int64_t b) { return a > b ? a - b : b - a; }

bool same_state(const Value &a, const Value &b) {
  const auto &am = members(a);
  const auto &bm = members(b);
  if (am.size() != bm.size()) return false;
  for (const auto &[key, value] : am) {
    const Value *other = b.find(key);
    if (other == nullptr || !(*other == value)) return false;
  }
  return true;
}

Value stamp_of(const Side &side, bool gone) {
  Value::Object o;
  o.emplace_back("at", Value(static_cast<double>(side.observed_at_us)));
  o.emplace_back("src", Value(side.source));
  if (gone) o.emplace_back("gone", Value(true));
  return Value(std::move(o));
}

// Who made an assertion about a field.
struct Stamp {
  std::int64_t at = 0;
  std::string src;
  bool nobody = false;
};

Stamp stamp_from(const Value *s) {
  if (s && s->kind() == Kind::object) {
    const Value *at = s->find("at");
    const Value *src = s->find("src");
    if (at && at->kind() == Kind::number && src && src->kind() == Kind::string)
      return {static_cast<std::int64_t>(at->as_number()), src->as_string()};
  }
  Stamp none;
  none.nobody = true;
  return none;
}

// A total order on assertions about one field: the higher-ranked source,
// then the later observation, then the source name, then the canonical text
// of the value (absent lowest). Every replica picks the same winner.
bool beats(const Policy &p, const Stamp &a, const Value *av, const Stamp &b, const Value *bv) {
  if (b.nobody) return !a.nobody;
  if (a.nobody) return false;
  int ar = source_rank(p, a.src), br = source_rank(p, b.src);
  if (ar != br) return ar < br;
  if (a.at != b.at) return a.at > b.at;
  if (a.src != b.src) return a.src > b.src;
  std::string at = av ? jcs::canonicalize(*av) : std::string();
  std::string bt = bv ? jcs::canonicalize(*bv) : std::string();
  return at > bt;
}

// The stamps are {"floor": stamp, "fields": {"f": stamp}}. Every change is a
// whole state, so it also says "absent" for each field it lacks: the floor is
// the strongest change seen, the implicit stamp of every field without one.
const Value &stamp_fields(const Value &stamps) {
  static const Value empty(Value::Object{});
  const Value *f = stamps.find("fields");
  return f && f->kind() == Kind::object ? *f : empty;
}

Stamp field_stamp(const Input &in, const std::string &key) {
  const Value *s = stamp_fields(in.stamps).find(key);
  if (s) return stamp_from(s);
  if (in.local.state.find(key) != nullptr)
    return {in.local.observed_at_us, in.local.source};  // before stamps
  return stamp_from(in.stamps.find("floor"));
}

Value make_stamps(const Value &floor, Value::Object fields) {
  Value::Object o;
  if (floor.kind() == Kind::object) o.emplace_back("floor", floor);
  o.emplace_back("fields", Value(std::move(fields)));
  return Value(std::move(o));
}

Value raised_floor(const Input &in) {
  const Value *floor = in.stamps.find("floor");
  Stamp current = stamp_from(floor);
  Stamp r{in.remote.observed_at_us, in.remote.source};
  return beats(in.policy, r, nullptr, current, nullptr) ? stamp_of(in.remote, true) : *floor;
}

// Stamps after a change that applied: every field whose value (or presence)
// the change altered now carries the remote's stamp.
Value restamp_input(const Input &in, const Value &result) {
  Value::Object out = members(stamp_fields(in.stamps));
  const Value &local = in.local.state;
  for (const auto &key : keys_of(local, result, Value(Value::Object{}))) {
    const Value *l = local.find(key);
    const Value *r = result.find(key);
    if (same(l, r)) continue;
    put(out, key, nullptr);
    out.emplace_back(key, stamp_of(in.remote, r == nullptr));
  }
  return make_stamps(raised_floor(in), std::move(out));
}

Decision finish(Decision d, const Input &in) {
  d.changed = !same_state(d.state, in.local.state);
  std::sort(d.fields.begin(), d.fields.end());
  if (d.stamps.kind() != Kind::object)
    d.stamps = d.outcome == Outcome::conflict ? in.stamps : restamp_input(in, d.state);
  return d;
}

// last_write_wins for a change that names no base: the change asserts every
// field (a missing one is removed) with its own stamp; each field keeps the
// assertion that wins the order above. A last-writer-wins map, so replicas
// that see the same changes in any order agree.
Decision last_writer_wins_map(const Input &in) {
  const Value &local = in.local.state;
  const Value &remote = in.remote.state;
  Decision d;
  Value::Object state = members(local);
  Value::Object stamps = members(stamp_fields(in.stamps));
  Stamp r{in.remote.observed_at_us, in.remote.source};
  for (const auto &key : keys_of(local, remote, stamp_fields(in.stamps))) {
    const Value *l = local.find(key);
    const Value *rv = remote.find(key);
    Stamp ls = field_stamp(in, key);
    if (beats(in.policy, r, rv, ls, l)) {
      put(state, key, rv);
      put(stamps, key, nullptr);
      stamps.emplace_back(key, stamp_of(in.remote, rv == nullptr));
    } else if (!same(l, rv)) {
      d.fields.push_back(key);  // the remote lost this field to a stronger assertion
    }
  }
  d.state = Value(std::move(state));
  d.stamps = make_stamps(raised_floor(in), std::move(stamps));
  if (d.fields.empty()) {
    d.rule = name(Rule::none);
  } else {
    d.type = is_external(in.remote.source) ? Type::cross_platform_mismatch : Type::concurrent_edit;
    d.outcome = Outcome::resolved;
    d.rule = name(Rule::last_write_wins);
  }
  return finish(d, in);
}

Strategy strategy_from(const Value &v) {
  if (v.kind() != Kind::string) throw Error("invalid_policy", "strategy must be a string");
  return parse_strategy(v.as_string());
}

std::int64_t window_from(const Value &v, const char *key) {
  if (v.kind() != Kind::number || v.as_number() < 0 || v.as_number() > 86400000.0 ||
      v.as_number() != std::floor(v.as_number()))
    throw Error(
        "invalid_policy",
        std::string(key) + " must be a whole number of milliseconds between 0 and 86400000");
  return static_cast<std::int64_t>(v.as_number()) * 1000;
}

bool bool_from(const Value &v, const char *key) {
  if (v.kind() != Kind::boolean)
    throw Error("invalid_policy", std::string(key) + " must be true or false");
  return v.as_bool();
}

std::vector<std::string> names_from(const Value &v, const char *key) {
  if (v.kind() != Kind::array)
    throw Error("invalid_policy", std::string(key) + " must be an array of strings");
  std::vector<std::string> out;
  for (const auto &e : v.as_array()) {
    if (e.kind() != Kind::string || e.as_string().empty())
      throw Error("invalid_policy", std::string(key) + " must be an array of non-empty strings");
    out.push_back(e.as_string());
  }
  return out;
}

Value names_json(const std::vector<std::string> &names) {
  Value::Array a;
  for (const auto &n : names) a.emplace_back(n);
  return Value(std::move(a));
}

}  // namespace

const char *name(Type t) {
  switch (t) {
    case Type::none:
      return "none";
    case Type::version_mismatch:
      return "version_mismatch";
    case Type::concurrent_edit:
      return "concurrent_edit";
    case Type::deleted_reference:
      return "deleted_reference";
    case Type::cross_platform_mismatch:
      return "cross_platform_mismatch";
    case Type::reservation_conflict:
      return "reservation_conflict";
  }
  return "none";
}

const char *name(Strategy s) {
  switch (s) {
    case Strategy::accept_local:
      return "accept_local";
    case Strategy::accept_remote:
      return "accept_remote";
    case Strategy::merge:
      return "merge";
    case Strategy::manual:
      return "manual";
    case Strategy::last_write_wins:
      return "last_write_wins";
  }
  return "merge";
}

const char *name(Outcome o) {
  switch (o) {
    case Outcome::applied:
      return "applied";
    case Outcome::resolved:
      return "resolved";
    case Outcome::conflict:
      return "conflict";
  }
  return "applied";
}

const char *name(Rule r) {
  switch (r) {
    case Rule::none:
      return "none";
    case Rule::three_way_merge:
      return "three_way_merge";
    case Rule::stale_observation:
      return "stale_observation";
    case Rule::stock_reduction:
      return "stock_reduction";
    case Rule::review_window:
      return "review_window";
    case Rule::source_priority:
      return "source_priority";
    case Rule::merge:
      return "merge";
    case Rule::manual:
      return "manual";
    case Rule::accept_local:
      return "accept_local";
    case Rule::accept_remote:
      return "accept_remote";
    case Rule::last_write_wins:
      return "last_write_wins";
    case Rule::reservations_win:
      return "reservations_win";
  }
  return "none";
}

const std::vector<Type> &conflict_types() {
  static const std::vector<Type> list = {Type::version_mismatch, Type::concurrent_edit,
                                         Type::deleted_reference, Type::cross_platform_mismatch,
                                         Type::reservation_conflict};
  return list;
}

const std::vector<Strategy> &strategies() {
  static const std::vector<Strategy> list = {Strategy::accept_local, Strategy::accept_remote,
                                             Strategy::merge, Strategy::manual,
                                             Strategy::last_write_wins};
  return list;
}

const std::vector<Strategy> &resolutions() {
  // manual is "leave it to a person": resolving is what that person does.
  static const std::vector<Strategy> list = {Strategy::accept_local, Strategy::accept_remote,
                                             Strategy::merge, Strategy::last_write_wins};
  return list;
}

const std::vector<Rule> &rules() {
  static const std::vector<Rule> list = {Rule::none,
                                         Rule::three_way_merge,
                                         Rule::stale_observation,
                                         Rule::stock_reduction,
                                         Rule::review_window,
                                         Rule::source_priority,
                                         Rule::merge,
                                         Rule::manual,
                                         Rule::accept_local,
                                         Rule::accept_remote,
                                         Rule::last_write_wins,
                                         Rule::reservations_win};
  return list;
}

std::optional<Strategy> parse_resolution(std::string_view s) {
  for (Strategy x : resolutions())
    if (s == name(x)) return x;
  return std::nullopt;
}

Strategy parse_strategy(std::string_view s) {
  for (Strategy x : strategies())
    if (s == name(x)) return x;
  throw Error("invalid_strategy",
              "unknown strategy \"" + std::string(s) +
                  "\" (accept_local, accept_remote, merge, manual or last_write_wins)");
}

Policy parse_policy(const Value &v) {
  if (v.kind() != Kind::object)
    throw Error("invalid_policy", "a conflict policy must be a JSON object");
  Policy p;
  for (const auto &[key, val] : v.as_object()) {
    if (key == "strategy")
      p.strategy = strategy_from(val);
    else if (key == "detection_window_ms")
      p.detection_window_us = window_from(val, "detection_window_ms");
    else if (key == "review_window_ms")
      p.review_window_us = window_from(val, "review_window_ms");
    else if (key == "stock_reductions_win")
      p.stock_reductions_win = bool_from(val, "stock_reductions_win");
    else if (key == "reservations_win")
      p.reservations_win = bool_from(val, "reservations_win");
    else if (key == "external_sources_win")
      p.external_sources_win = bool_from(val, "external_sources_win");
    else if (key == "source_priority")
      p.source_priority = names_from(val, "source_priority");
    else if (key == "stock_fields")
      p.stock_fields = names_from(val, "stock_fields");
    else if (key == "references") {
      if (val.kind() != Kind::object)
        throw Error("invalid_policy", "references must map field names to entity types");
      for (const auto &r : val.as_object())
        if (r.second.kind() != Kind::string || r.second.as_string().empty())
          throw Error("invalid_policy", "references must map field names to entity types");
    } else
      throw Error("invalid_policy", "unknown conflict policy key \"" + key + "\"");
  }
  return p;
}

Value policy_json(const Policy &p) {
  Value::Object o;
  o.emplace_back("strategy", Value(name(p.strategy)));
  o.emplace_back("detection_window_ms", Value(static_cast<double>(p.detection_window_us / 1000)));
  o.emplace_back("review_window_ms", Value(static_cast<double>(p.review_window_us / 1000)));
  o.emplace_back("stock_reductions_win", Value(p.stock_reductions_win));
  o.emplace_back("reservations_win", Value(p.reservations_win));
  o.emplace_back("external_sources_win", Value(p.external_sources_win));
  o.emplace_back("source_priority", names_json(p.source_priority));
  o.emplace_back("stock_fields", names_json(p.stock_fields));
  return Value(std::move(o));
}

bool is_external(std::string_view source) { return source != "manual"; }

int source_rank(const Policy &p, std::string_view source) {
  auto it = std::find(p.source_priority.begin(), p.source_priority.end(), source);
  if (it != p.source_priority.end()) return static_cast<int>(it - p.source_priority.begin());
  int listed = static_cast<int>(p.source_priority.size());
  return is_external(source) || !p.external_sources_win ? listed : listed + 1;
}

Value restamp(const Value &stamps, const Value &local, const Value &result, const Side &remote,
              const Policy &policy) {
  Input in;
  in.stamps = stamps;
  in.local.state = local;
  in.remote = remote;
  in.policy = policy;
  return restamp_input(in, result);
}

ThreeWay merge3(const Value &base, const Value &local, const Value &remote) {
  ThreeWay out;
  Value::Object merged = members(local);
  for (const auto &key : keys_of(base, local, remote)) {
    const Value *b = base.find(key);
    const Value *l = local.find(key);
    const Value *r = remote.find(key);
    bool local_changed = !same(b, l), remote_changed = !same(b, r);
    if (!remote_changed || same(l, r)) continue;
    if (!local_changed)
      put(merged, key, r);
    else
      out.conflicts.push_back(key);
  }
  out.merged = Value(std::move(merged));
  return out;
}

Value apply_changes(const Value &current, const Value &base, const Value &side) {
  Value::Object out = members(current);
  for (const auto &key : keys_of(base, side, Value(Value::Object{}))) {
    const Value *b = base.find(key);
    const Value *s = side.find(key);
    if (!same(b, s)) put(out, key, s);
  }
  return Value(std::move(out));
}

Decision decide(const Input &in) {
  const Facts &f = in.facts;
  const Policy &p = in.policy;
  const Value &local = in.local.state;
  const Value &remote = in.remote.state;
  Decision d;
  d.state = local;

  // A deleted entity, or one that points at a deleted entity: the change
  // cannot merge field by field; one side wins as a whole or a person decides.
  if (f.deleted || f.reference_deleted) {
    d.type = Type::deleted_reference;
    bool remote_wins = false;
    switch (p.strategy) {
      case Strategy::accept_local:
        d.outcome = Outcome::resolved;
        d.rule = name(Rule::accept_local);
        break;
      case Strategy::accept_remote:
        d.outcome = Outcome::resolved;
        d.rule = name(Rule::accept_remote);
        remote_wins = true;
        break;
      case Strategy::last_write_wins:
        d.outcome = Outcome::resolved;
        d.rule = name(Rule::last_write_wins);
        remote_wins = conflict::remote_wins(p, &in.local, in.remote);
        break;
      case Strategy::merge:
      case Strategy::manual:
        d.outcome = Outcome::conflict;
        d.rule = name(Rule::manual);
        break;
    }
    if (remote_wins) d.state = remote;
    Decision out = finish(d, in);
    out.changed =
        remote_wins;  // resurrecting a deleted entity is a change even when the state is equal
    return out;
  }

  if (!f.exists) {
    d.state = remote;
    d.rule = name(Rule::none);
    return finish(d, in);
  }

  // The same source repeating an observation older than one it already gave:
  // delivered out of order, and what it said later stands.
  // (A person's edit names its base or is simply the newest intent; only
  // platform reports, which name no base, can arrive out of order.)
  if (!f.base_version && is_external(in.remote.source) && p.strategy != Strategy::last_write_wins &&
      f.source_observed_at_us && in.remote.observed_at_us < *f.source_observed_at_us) {
    d.type = Type::version_mismatch;
    d.outcome = Outcome::resolved;
    d.rule = name(Rule::stale_observation);
    return finish(d, in);
  }

  if (f.base_version) {
    if (*f.base_version == f.current_version) {
      d.state = remote;
      d.rule = name(Rule::none);
      return finish(d, in);
    }
    d.type = Type::version_mismatch;
  } else {
    if (p.strategy == Strategy::last_write_wins) return last_writer_wins_map(in);
    // The source saw exactly the current state: its change is the whole story.
    if (f.source_version == f.current_version) {
      d.state = remote;
      d.rule = name(Rule::none);
      return finish(d, in);
    }
  }

  ThreeWay m = merge3(in.base, local, remote);
  d.state = m.merged;
  if (d.type == Type::none) {
    // A change that names no base, against an entity another source changed
    // since this source last saw it.
    if (m.conflicts.empty()) {
      d.rule = name(Rule::three_way_merge);
      return finish(d, in);
    }
    if (is_external(in.remote.source)) {
      d.type = Type::cross_platform_mismatch;
    } else if (in.remote.observed_at_us - in.local.observed_at_us < p.detection_window_us) {
      // Within the window, or even older than the change it would undo.
      d.type = Type::concurrent_edit;
    } else {
      // A person overwriting, well after the other source's change: their
      // edit is the newer intent.
      Value::Object s = d.state.as_object();
      for (const auto &key : m.conflicts) put(s, key, remote.find(key));
      d.state = Value(std::move(s));
      d.rule = name(Rule::three_way_merge);
      return finish(d, in);
    }
  }

  d.fields = m.conflicts;
  if (p.strategy == Strategy::manual) {
    d.outcome = Outcome::conflict;
    d.rule = name(Rule::manual);
    return finish(d, in);
  }
  if (m.conflicts.empty()) {
    d.outcome = Outcome::resolved;
    d.rule = name(Rule::three_way_merge);
    return finish(d, in);
  }

  Value::Object state = d.state.as_object();
  std::vector<std::string> open;
  std::string rule;
  for (const auto &key : m.conflicts) {
    const Value *b = in.base.find(key);
    const Value *l = local.find(key);
    const Value *r = remote.find(key);
    if (p.stock_reductions_win && contains(p.stock_fields, key) && b && l && r &&
        b->kind() == Kind::number && l->kind() == Kind::number && r->kind() == Kind::number) {
      double bv = b->as_number(), lv = l->as_number(), rv = r->as_number();
      if (lv < bv || rv < bv) {  // at least one reduction: the lowest count stands
        put(state, key, lv <= rv ? l : r);
        rule = name(Rule::stock_reduction);
        continue;
      }
    }
    open.push_back(key);
  }

  if (!open.empty()) {
    if (distance(in.remote.observed_at_us, in.local.observed_at_us) < p.review_window_us) {
      d.outcome = Outcome::conflict;
      d.rule = name(Rule::review_window);
      d.state = Value(std::move(state));
      return finish(d, in);
    }
    int lr = source_rank(p, in.local.source), rr = source_rank(p, in.remote.source);
    if (lr != rr) {
      for (const auto &key : open) put(state, key, rr < lr ? remote.find(key) : local.find(key));
      rule = name(Rule::source_priority);
      open.clear();
    }
  }

  if (!open.empty()) {
    switch (p.strategy) {
      case Strategy::merge:
      case Strategy::manual:
        d.outcome = Outcome::conflict;
        d.rule = name(Rule::merge);
        d.state = Value(std::move(state));
        return finish(d, in);
      case Strategy::accept_local:
        rule = name(Rule::accept_local);
        break;
      case Strategy::accept_remote:
        for (const auto &key : open) put(state, key, remote.find(key));
        rule = name(Rule::accept_remote);
        break;
      case Strategy::last_write_wins:
        for (const auto &key : open) {
          const Value *l = local.find(key);
          const Value *r = remote.find(key);
          if (beats(p, {in.remote.observed_at_us, in.remote.source}, r, field_stamp(in, key), l))
            put(state, key, r);
        }
        rule = name(Rule::last_write_wins);
        break;
    }
  }
  d.outcome = Outcome::resolved;
  d.rule = rule;
  d.state = Value(std::move(state));
  return finish(d, in);
}

bool remote_wins(const Policy &p, const Side *local, const Side &remote) {
  Stamp r{remote.observed_at_us, remote.source};
  if (local == nullptr) return beats(p, r, &remote.state, Stamp{0, {}, true}, nullptr);
  return beats(p, r, &remote.state, {local->observed_at_us, local->source}, &local->state);
}

Strategy resolution_effect(Strategy chosen, const Policy &p, const Side *local,
                           const Side &remote) {
  if (chosen != Strategy::last_write_wins) return chosen;
  return remote_wins(p, local, remote) ? Strategy::accept_remote : Strategy::accept_local;
}

StockDecision decide_stock(const Policy &p, std::int64_t on_hand, std::int64_t reserved,
                           std::int64_t wanted) {
  StockDecision d;
  d.on_hand = wanted;
  if (wanted >= reserved) return d;
  d.type = Type::reservation_conflict;
  if (p.reservations_win) {
    d.outcome = Outcome::resolved;
    d.rule = Rule::reservations_win;
    d.on_hand = reserved;
  } else {
    d.outcome = Outcome::conflict;
    d.rule = Rule::manual;
    d.on_hand = on_hand;
  }
  return d;
}

}  // namespace pgves::core::conflict
