// Conflict detection and resolution for entity state. The Postgres layer
// gathers the facts about an entity (its current state, the base the caller
// wrote against, who changed it last and when) and this file decides, by the
// tenant's policy, whether the change applies, resolves automatically or waits
// for a person. Nothing here reads a clock or a table: the same input always
// gives the same decision, which is what lets two replicas converge.
//
// A "field" is a top-level member of the state object. A change is a full
// state; what it changed is its difference from the base it was made against.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json/json.hpp"

namespace pgves::core::conflict {

enum class Type {
  none,
  version_mismatch,
  concurrent_edit,
  deleted_reference,
  cross_platform_mismatch,
  reservation_conflict
};
enum class Strategy { accept_local, accept_remote, merge, manual, last_write_wins };
enum class Outcome { applied, resolved, conflict };
// What decided a change, or sent it to review (Decision::rule, the rule and
// strategy columns of ves.conflicts).
enum class Rule {
  none,
  three_way_merge,
  stale_observation,
  stock_reduction,
  review_window,
  source_priority,
  merge,
  manual,
  accept_local,
  accept_remote,
  last_write_wins,
  reservations_win
};

const char *name(Type t);
const char *name(Strategy s);
const char *name(Outcome o);
const char *name(Rule r);
// Throws Error("invalid_strategy") for anything but the five names.
Strategy parse_strategy(std::string_view s);

// The vocabularies, in the order SQL lists them (ves.conflict_vocabulary()):
// every name SQL stores or accepts comes from these lists, so nothing in SQL
// enumerates them again.
const std::vector<Type> &conflict_types();  // without Type::none
const std::vector<Strategy> &strategies();
// The strategies a person may resolve a stored conflict with: all but manual.
const std::vector<Strategy> &resolutions();
const std::vector<Rule> &rules();
// nullopt for anything not in resolutions().
std::optional<Strategy> parse_resolution(std::string_view s);

struct Policy {
  Strategy strategy = Strategy::merge;
  std::int64_t detection_window_us = 5'000'000;  // concurrent_edit: another source within this
  std::int64_t review_window_us =
      30'000'000;  // conflicting changes closer than this: manual review
  bool stock_reductions_win = true;
  bool reservations_win = true;
  // External platform changes win over manual ones; off, "manual" ranks
  // with the sources the priority list does not name.
  bool external_sources_win = true;
  // Earlier names outrank later ones; a source not listed ranks below every
  // listed one, and "manual" below all of them.
  std::vector<std::string> source_priority = {"shopify", "amazon",    "tiktok",
                                              "meta",    "instagram", "sequencer"};
  std::vector<std::string> stock_fields = {"on_hand", "quantity", "inventory_quantity", "available",
                                           "stock"};
};

// Reads the policy object stored for a tenant and entity type: any subset of
// strategy, detection_window_ms, review_window_ms, stock_reductions_win,
// reservations_win, source_priority, stock_fields, references (ignored here).
// Unknown keys and wrong types throw Error("invalid_policy").
Policy parse_policy(const json::Value &v);
// The same policy as a JSON object with every key, defaults filled in.
json::Value policy_json(const Policy &p);

// 0 for the first listed source; larger numbers rank lower.
int source_rank(const Policy &p, std::string_view source);
// Sources other than "manual" are external platforms (or peers).
bool is_external(std::string_view source);

struct Side {
  json::Value state;  // an object
  std::string source;
  std::int64_t observed_at_us = 0;  // microseconds since the Unix epoch
};

struct Facts {
  bool exists = true;
  bool deleted = false;                      // the entity itself was deleted
  bool reference_deleted = false;            // an entity the new state references was deleted
  std::optional<std::int64_t> base_version;  // what the caller wrote against, if it said
  std::int64_t current_version = 0;
  // The last version whose state was exactly what the remote's source wrote
  // or reported (0: never); the implicit base of a change that names no
  // base version. A merged state that the source has not seen does not count.
  std::int64_t source_version = 0;
  // The latest observed_at already accepted from the remote's source.
  std::optional<std::int64_t> source_observed_at_us;
};

// Per field, who set its current value (or removed it) and when:
// {"field": {"at": microseconds, "src": "source", "gone": true?}}. A field
// without a stamp counts as set by the local side's source at its time.
// Last-write-wins compares a change with these stamps field by field, which
// is what makes the result independent of the order changes arrive in.
struct Input {
  Facts facts;
  json::Value base;    // state at the base version ({} when there is none)
  Side local;          // the entity as stored now
  Side remote;         // the incoming change
  json::Value stamps;  // of the local state's fields, see above
  Policy policy;
};

struct Decision {
  Type type = Type::none;
  Outcome outcome = Outcome::applied;
  // applied/resolved: the state to store. conflict: the fields that merge
  // cleanly applied to the local state, a starting point for the reviewer.
  json::Value state;
  std::string rule;  // what decided: "none", "three_way_merge", "stock_reduction", ...
  std::vector<std::string> fields;  // fields both sides changed to different values, sorted
  bool changed = false;             // state differs from the local state
  json::Value stamps;               // the stamps to store with `state`
};

Decision decide(const Input &in);

// The last_write_wins order between two whole changes: the higher-ranked
// source (source_priority, external_sources_win), then the later
// observation, then the greater source name, then the greater canonical text
// of the state. local == nullptr is a side nobody wrote, which always loses.
// decide() orders field assertions the same way; ves.resolve_conflict uses
// this for a stored conflict, so both paths pick the same winner.
bool remote_wins(const Policy &p, const Side *local, const Side &remote);

// What resolving a stored conflict with `chosen` (one of resolutions()) does:
// accept_local, accept_remote or merge. last_write_wins becomes whichever
// side remote_wins() picks.
Strategy resolution_effect(Strategy chosen, const Policy &p, const Side *local, const Side &remote);

// Reservations win over adjustments: an on-hand count below the units
// reserved is a reservation_conflict. With reservations_win the count stops
// at the reserved quantity (resolved, rule reservations_win); without, the
// change waits for a person (conflict, rule manual, on_hand unchanged).
struct StockDecision {
  Type type = Type::none;
  Outcome outcome = Outcome::applied;
  Rule rule = Rule::none;
  std::int64_t on_hand = 0;  // the count to store
};
StockDecision decide_stock(const Policy &p, std::int64_t on_hand, std::int64_t reserved,
                           std::int64_t wanted);

struct ThreeWay {
  json::Value merged;                  // local plus the remote's one-sided changes
  std::vector<std::string> conflicts;  // changed on both sides to different values, sorted
};
ThreeWay merge3(const json::Value &base, const json::Value &local, const json::Value &remote);

// The stamps after `result` replaced `local` by a change from `remote`: the
// fields it altered carry remote's stamp, the floor rises if remote outranks it.
json::Value restamp(const json::Value &stamps, const json::Value &local, const json::Value &result,
                    const Side &remote, const Policy &policy);

// current with every change side made relative to base applied on top (a
// member side removed is removed). Used to resolve a stored conflict in
// favour of one side against the entity as it is now.
json::Value apply_changes(const json::Value &current, const json::Value &base,
                          const json::Value &side);

}  // namespace pgves::core::conflict
