#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "core/json/canonical_json.hpp"
#include "core/state/conflict.hpp"
#include "core/base/error.hpp"
#include "core/json/json.hpp"

using pgves::core::Error;
namespace json = pgves::core::json;
namespace jcs = pgves::core::jcs;
namespace conflict = pgves::core::conflict;

using conflict::Decision;
using conflict::Input;
using conflict::Outcome;
using conflict::Policy;
using conflict::Strategy;
using conflict::Type;

namespace {

json::Value J(std::string_view text) { return json::parse(text); }

// States compare by their canonical text: member order is not part of a
// state (the SQL layer stores them as jsonb), and a mismatch prints readably.
std::string canon(const json::Value &v) { return jcs::canonicalize(v); }
std::string canon(const char *text) { return jcs::canonicalize_text(text); }
std::string canon(const std::string &text) { return jcs::canonicalize_text(text); }

constexpr std::int64_t kSec = 1'000'000;
constexpr std::int64_t kT0 = std::int64_t{1'700'000'000} * kSec;  // 2023-11-14, in microseconds

std::vector<std::string> V(std::initializer_list<const char *> names) {
  return {names.begin(), names.end()};
}

// An entity at version 5 that the remote last saw at version 4 (whose state
// is base); local was written by shopify at kT0, remote arrives from shopify a
// minute later. The review window is off so the other rules can be seen; the
// tests that need something else change it.
Input stale_base(std::string_view base, std::string_view local, std::string_view remote) {
  Input in;
  in.facts.exists = true;
  in.facts.base_version = 4;
  in.facts.current_version = 5;
  in.facts.source_version = 4;
  in.base = J(base);
  in.local = {J(local), "shopify", kT0};
  in.remote = {J(remote), "shopify", kT0 + 60 * kSec};
  in.policy.review_window_us = 0;
  return in;
}

// The same entity, but the remote names no base version: its base is the
// state at the version its source last wrote (3), and another source wrote
// since (current version 5).
Input blind(std::string_view base, std::string_view local, std::string_view remote,
            const char *local_source, const char *remote_source) {
  Input in = stale_base(base, local, remote);
  in.facts.base_version = std::nullopt;
  in.facts.source_version = 3;
  in.local.source = local_source;
  in.remote.source = remote_source;
  return in;
}

// One stamp, as decide() writes it: {"at": µs, "src": source, "gone": true?}.
std::string stamp(std::int64_t at, const char *src, bool gone = false) {
  return std::string(R"({"at":)") + std::to_string(at) + R"(,"src":")" + src + "\"" +
         (gone ? R"(,"gone":true})" : "}");
}

// {"floor": floor, "fields": {...}}; an empty floor leaves the member out.
std::string stamps(const std::string &floor,
                   std::initializer_list<std::pair<const char *, std::string>> fields) {
  std::string out = "{";
  if (!floor.empty()) out += R"("floor":)" + floor + ",";
  out += R"("fields":{)";
  bool first = true;
  for (const auto &[key, value] : fields) {
    out += (first ? "\"" : ",\"") + std::string(key) + "\":" + value;
    first = false;
  }
  return out + "}}";
}

std::string error_code(const std::function<void()> &f) {
  try {
    f();
  } catch (const Error &e) {
    return e.code();
  }
  return "accepted";
}

std::string policy_error(std::string_view text) {
  return error_code([&] { conflict::parse_policy(J(text)); });
}

}  // namespace

// ---------------------------------------------------------------- merge3

TEST(ConflictMerge3, RemoteOnlyChangesMergeIncludingAddedAndRemovedMembers) {
  const auto m = conflict::merge3(J(R"({"a":1,"b":2,"c":3})"), J(R"({"a":1,"b":2,"c":3})"),
                                  J(R"({"a":1,"b":20,"d":4})"));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":1,"b":20,"d":4})"));
  EXPECT_TRUE(m.conflicts.empty());
}

TEST(ConflictMerge3, LocalOnlyChangesAreKeptIncludingAddedAndRemovedMembers) {
  const auto m = conflict::merge3(J(R"({"a":1,"b":2,"c":3})"), J(R"({"a":10,"b":2,"e":5})"),
                                  J(R"({"a":1,"b":2,"c":3})"));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":10,"b":2,"e":5})"));
  EXPECT_TRUE(m.conflicts.empty());
}

TEST(ConflictMerge3, ChangesToDifferentFieldsFromBothSidesCombine) {
  const auto m =
      conflict::merge3(J(R"({"a":1,"b":1,"c":1,"d":1})"), J(R"({"a":2,"b":1,"c":1,"d":1,"x":9})"),
                       J(R"({"a":1,"b":3,"d":1,"y":8})"));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":2,"b":3,"d":1,"x":9,"y":8})"));
  EXPECT_TRUE(m.conflicts.empty());
}

TEST(ConflictMerge3, IdenticalChangesOnBothSidesAreNotConflicts) {
  // Same new value, same added member, same removed member.
  const auto m = conflict::merge3(J(R"({"a":1,"gone":true})"), J(R"({"a":2,"new":"x"})"),
                                  J(R"({"a":2,"new":"x"})"));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":2,"new":"x"})"));
  EXPECT_TRUE(m.conflicts.empty());
}

TEST(ConflictMerge3, SameFieldChangedDifferentlyIsAConflictAndLocalIsKept) {
  const auto m =
      conflict::merge3(J(R"({"z":1,"m":1,"b":1,"ok":1})"), J(R"({"z":2,"m":2,"b":2,"ok":1})"),
                       J(R"({"z":3,"m":3,"b":3,"ok":4})"));
  EXPECT_EQ(m.conflicts, V({"b", "m", "z"}));
  EXPECT_EQ(canon(m.merged), canon(R"({"z":2,"m":2,"b":2,"ok":4})"));
}

TEST(ConflictMerge3, AddAddAndRemoveModifyAreConflicts) {
  auto m = conflict::merge3(J("{}"), J(R"({"a":1})"), J(R"({"a":2})"));
  EXPECT_EQ(m.conflicts, V({"a"}));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":1})"));

  m = conflict::merge3(J(R"({"a":1})"), J("{}"), J(R"({"a":2})"));  // local removed, remote changed
  EXPECT_EQ(m.conflicts, V({"a"}));
  EXPECT_EQ(canon(m.merged), "{}");

  m = conflict::merge3(J(R"({"a":1})"), J(R"({"a":2})"), J("{}"));  // local changed, remote removed
  EXPECT_EQ(m.conflicts, V({"a"}));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":2})"));
}

TEST(ConflictMerge3, NestedValuesAreWholeFieldsAndNullIsNotAbsent) {
  // No deep merge: a field is a top-level member, compared as a whole.
  auto m = conflict::merge3(J(R"({"o":{"x":1,"y":1}})"), J(R"({"o":{"x":2,"y":1}})"),
                            J(R"({"o":{"x":1,"y":2}})"));
  EXPECT_EQ(m.conflicts, V({"o"}));
  EXPECT_EQ(canon(m.merged), canon(R"({"o":{"x":2,"y":1}})"));

  m = conflict::merge3(J("{}"), J("{}"), J(R"({"a":null})"));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":null})"));
  EXPECT_TRUE(m.conflicts.empty());

  m = conflict::merge3(J(R"({"a":null})"), J(R"({"a":null})"), J("{}"));
  EXPECT_EQ(canon(m.merged), "{}");
  EXPECT_TRUE(m.conflicts.empty());
}

TEST(ConflictMerge3, NonObjectInputsCountAsEmptyObjects) {
  // A base that is not an object: everything either side has was added.
  auto m = conflict::merge3(J("null"), J(R"({"a":1})"), J(R"({"a":1,"b":2})"));
  EXPECT_EQ(canon(m.merged), canon(R"({"a":1,"b":2})"));
  EXPECT_TRUE(m.conflicts.empty());
  m = conflict::merge3(J("[1,2]"), J(R"({"a":1})"), J(R"({"a":2})"));
  EXPECT_EQ(m.conflicts, V({"a"}));

  // A local that is not an object: the merge starts from {}.
  m = conflict::merge3(J(R"({"a":1})"), J("7"), J(R"({"a":1,"b":2})"));
  EXPECT_EQ(canon(m.merged), canon(R"({"b":2})"));
  EXPECT_TRUE(m.conflicts.empty());

  // A remote that is not an object removed every member of base: a goes,
  // b (changed locally) is a conflict and keeps its local value.
  m = conflict::merge3(J(R"({"a":1,"b":1})"), J(R"({"a":1,"b":5,"c":3})"), J(R"("text")"));
  EXPECT_EQ(canon(m.merged), canon(R"({"b":5,"c":3})"));
  EXPECT_EQ(m.conflicts, V({"b"}));

  m = conflict::merge3(J("null"), J("true"), J("[]"));
  EXPECT_EQ(m.merged.kind(), json::Kind::object);
  EXPECT_EQ(canon(m.merged), "{}");
  EXPECT_TRUE(m.conflicts.empty());
}

// ---------------------------------------------------------------- apply_changes

TEST(ConflictApplyChanges, AppliesOneSidesChangesOnTopOfANewerState) {
  // Since base, the entity moved on (a=5, c added); side changed b, removed
  // x and added d. Members side left alone keep their current values.
  const auto out = conflict::apply_changes(
      J(R"({"a":5,"b":1,"c":7,"x":0})"), J(R"({"a":1,"b":1,"x":0})"), J(R"({"a":1,"b":2,"d":4})"));
  EXPECT_EQ(canon(out), canon(R"({"a":5,"b":2,"c":7,"d":4})"));
}

TEST(ConflictApplyChanges, SideEqualToBaseChangesNothing) {
  const auto out = conflict::apply_changes(J(R"({"a":5,"b":9})"), J(R"({"a":1})"), J(R"({"a":1})"));
  EXPECT_EQ(canon(out), canon(R"({"a":5,"b":9})"));
}

TEST(ConflictApplyChanges, RemovingAMemberTheCurrentStateNoLongerHasIsHarmless) {
  const auto out = conflict::apply_changes(J(R"({"b":1})"), J(R"({"a":1,"b":1})"), J(R"({"b":1})"));
  EXPECT_EQ(canon(out), canon(R"({"b":1})"));
}

TEST(ConflictApplyChanges, NonObjectCurrentOrBaseCountAsEmpty) {
  EXPECT_EQ(canon(conflict::apply_changes(J("null"), J(R"({"a":1})"), J(R"({"a":2})"))),
            canon(R"({"a":2})"));
  EXPECT_EQ(canon(conflict::apply_changes(J(R"({"a":1})"), J("[]"), J(R"({"b":2})"))),
            canon(R"({"a":1,"b":2})"));
}

// ---------------------------------------------------------------- decide: paths before the merge

TEST(ConflictDecide, EntityThatDoesNotExistTakesTheRemoteState) {
  Input in;
  in.facts.exists = false;
  in.base = J("{}");
  in.local = {J("{}"), "", 0};
  in.remote = {J(R"({"title":"A","on_hand":3})"), "amazon", kT0};
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"A","on_hand":3})"));
  EXPECT_TRUE(d.fields.empty());
  EXPECT_TRUE(d.changed);

  in.remote.state = J("{}");
  EXPECT_FALSE(conflict::decide(in).changed);
}

TEST(ConflictDecide, ANewEntityReferencingADeletedOneIsADeletedReference) {
  Input in;
  in.facts.exists = false;
  in.facts.reference_deleted = true;
  in.base = J("{}");
  in.local = {J("{}"), "", 0};
  in.remote = {J(R"({"customer_id":"c1"})"), "shopify", kT0};
  Decision d = conflict::decide(in);  // strategy merge
  EXPECT_EQ(d.type, Type::deleted_reference);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "manual");
  EXPECT_EQ(canon(d.state), "{}");
  EXPECT_FALSE(d.changed);

  in.policy.strategy = Strategy::accept_remote;
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::deleted_reference);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(canon(d.state), canon(R"({"customer_id":"c1"})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, DeletedEntityOrReferenceUnderEachStrategy) {
  for (int which = 0; which < 2; ++which) {
    SCOPED_TRACE(which == 0 ? "deleted" : "reference_deleted");
    Input in = stale_base(R"({"a":1})", R"({"a":1,"b":1})", R"({"a":2,"b":1})");
    in.facts.base_version = 5;  // even a change against the current version
    (which == 0 ? in.facts.deleted : in.facts.reference_deleted) = true;
    in.local.source = "amazon";

    in.policy.strategy = Strategy::accept_local;
    Decision d = conflict::decide(in);
    EXPECT_EQ(d.type, Type::deleted_reference);
    EXPECT_EQ(d.outcome, Outcome::resolved);
    EXPECT_EQ(d.rule, "accept_local");
    EXPECT_EQ(canon(d.state), canon(R"({"a":1,"b":1})"));
    EXPECT_FALSE(d.changed);
    EXPECT_TRUE(d.fields.empty());

    in.policy.strategy = Strategy::accept_remote;
    d = conflict::decide(in);
    EXPECT_EQ(d.type, Type::deleted_reference);
    EXPECT_EQ(d.outcome, Outcome::resolved);
    EXPECT_EQ(d.rule, "accept_remote");
    EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":1})"));
    EXPECT_TRUE(d.changed);

    for (Strategy s : {Strategy::merge, Strategy::manual}) {
      in.policy.strategy = s;
      d = conflict::decide(in);
      EXPECT_EQ(d.type, Type::deleted_reference) << conflict::name(s);
      EXPECT_EQ(d.outcome, Outcome::conflict) << conflict::name(s);
      EXPECT_EQ(d.rule, "manual") << conflict::name(s);
      EXPECT_EQ(canon(d.state), canon(R"({"a":1,"b":1})")) << conflict::name(s);
      EXPECT_FALSE(d.changed) << conflict::name(s);
    }

    in.policy.strategy = Strategy::last_write_wins;
    d = conflict::decide(in);  // remote observed a minute later
    EXPECT_EQ(d.outcome, Outcome::resolved);
    EXPECT_EQ(d.rule, "last_write_wins");
    EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":1})"));
    EXPECT_TRUE(d.changed);

    // Observed earlier, but from shopify, which outranks amazon: the same
    // order last_write_wins uses field by field everywhere else.
    in.remote.observed_at_us = kT0 - kSec;
    d = conflict::decide(in);
    EXPECT_EQ(d.outcome, Outcome::resolved);
    EXPECT_EQ(d.rule, "last_write_wins");
    EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":1})"));
    EXPECT_TRUE(d.changed);

    // With source priority off, the earlier observation loses.
    in.policy.source_priority.clear();
    in.policy.external_sources_win = false;
    d = conflict::decide(in);
    EXPECT_EQ(canon(d.state), canon(R"({"a":1,"b":1})"));
    EXPECT_FALSE(d.changed);
    in.policy = Policy{};
    in.policy.strategy = Strategy::last_write_wins;

    in.remote.observed_at_us = kT0;  // a tie: shopify outranks amazon
    d = conflict::decide(in);
    EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":1})"));
    EXPECT_TRUE(d.changed);
    std::swap(in.local.source, in.remote.source);  // now remote is the lower-ranked amazon
    d = conflict::decide(in);
    EXPECT_EQ(canon(d.state), canon(R"({"a":1,"b":1})"));
    EXPECT_FALSE(d.changed);
  }
}

TEST(ConflictDecide, ResurrectingADeletedEntityIsAChangeEvenWithAnEqualState) {
  Input in = stale_base("{}", R"({"a":1})", R"({"a":1})");
  in.facts.deleted = true;
  in.policy.strategy = Strategy::accept_remote;
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(canon(d.state), canon(R"({"a":1})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, AnObservationOlderThanTheSourcesLatestIsStale) {
  Input in = stale_base(R"({"a":1})", R"({"a":3,"b":1})", R"({"a":2})");
  in.facts.base_version = std::nullopt;
  in.facts.source_version = 5;
  in.facts.source_observed_at_us = kT0;
  in.remote.observed_at_us = kT0 - kSec;
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::version_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "stale_observation");
  EXPECT_EQ(canon(d.state), canon(R"({"a":3,"b":1})"));
  EXPECT_FALSE(d.changed);
  EXPECT_TRUE(d.fields.empty());

  // A change that names its base version is not an out-of-order report:
  // against the current version it applies, however old its observation.
  in.facts.base_version = 5;
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));
  EXPECT_TRUE(d.changed);

  // Stale whoever wrote last: an older amazon observation after shopify's
  // write does not undo what amazon said later.
  in.facts.base_version = std::nullopt;
  in.facts.source_version = 4;
  in.local.source = "shopify";
  in.remote.source = "amazon";
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::version_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "stale_observation");
  EXPECT_EQ(canon(d.state), canon(R"({"a":3,"b":1})"));
  EXPECT_FALSE(d.changed);
  in.facts.source_version = 5;
  in.remote.source = "shopify";

  // An observation as recent as the latest one is not stale.
  in.remote.observed_at_us = kT0;
  d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, BaseVersionEqualToCurrentApplies) {
  Input in = stale_base(R"({"a":1,"b":1})", R"({"a":1,"b":1})", R"({"a":2})");
  in.facts.base_version = 5;
  in.remote.source = "manual";
  in.policy.strategy = Strategy::manual;  // no strategy is consulted
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));  // a full state: b is gone
  EXPECT_TRUE(d.fields.empty());
  EXPECT_TRUE(d.changed);

  in.remote.state = in.local.state;
  EXPECT_FALSE(conflict::decide(in).changed);
}

// ---------------------------------------------------------------- decide: stale base version

TEST(ConflictDecide, StaleBaseWithDisjointChangesMerges) {
  for (Strategy s : {Strategy::merge, Strategy::accept_local, Strategy::accept_remote,
                     Strategy::last_write_wins}) {
    Input in =
        stale_base(R"({"a":1,"b":1,"x":1})", R"({"a":2,"b":1,"x":1})", R"({"a":1,"b":3,"c":4})");
    in.policy.strategy = s;
    const Decision d = conflict::decide(in);
    EXPECT_EQ(d.type, Type::version_mismatch) << conflict::name(s);
    EXPECT_EQ(d.outcome, Outcome::resolved) << conflict::name(s);
    EXPECT_EQ(d.rule, "three_way_merge") << conflict::name(s);
    EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":3,"c":4})")) << conflict::name(s);
    EXPECT_TRUE(d.fields.empty()) << conflict::name(s);
    EXPECT_TRUE(d.changed) << conflict::name(s);
  }
}

TEST(ConflictDecide, StaleBaseWithNothingNewFromTheRemoteIsUnchanged) {
  Input in = stale_base(R"({"a":1})", R"({"a":2})", R"({"a":1})");
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::version_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "three_way_merge");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));
  EXPECT_FALSE(d.changed);
}

TEST(ConflictDecide, ManualStrategyHoldsEvenDisjointChanges) {
  Input in = stale_base(R"({"a":1,"b":1})", R"({"a":2,"b":1})", R"({"a":1,"b":3})");
  in.policy.strategy = Strategy::manual;
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::version_mismatch);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "manual");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":3})"));  // the clean merge, for the reviewer
  EXPECT_TRUE(d.fields.empty());
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, StaleBaseWithAConflictingFieldUnderEachStrategy) {
  // Both sides are shopify, so source priority cannot decide; price changed
  // only remotely, title on both sides.
  const auto make = [](Strategy s) {
    Input in = stale_base(R"({"title":"A","price":1})", R"({"title":"B","price":1})",
                          R"({"title":"C","price":2})");
    in.policy.strategy = s;
    return in;
  };

  Decision d = conflict::decide(make(Strategy::accept_local));
  EXPECT_EQ(d.type, Type::version_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "accept_local");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"B","price":2})"));
  EXPECT_EQ(d.fields, V({"title"}));
  EXPECT_TRUE(d.changed);

  d = conflict::decide(make(Strategy::accept_remote));
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "accept_remote");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"C","price":2})"));
  EXPECT_EQ(d.fields, V({"title"}));
  EXPECT_TRUE(d.changed);

  d = conflict::decide(make(Strategy::merge));
  EXPECT_EQ(d.type, Type::version_mismatch);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "merge");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"B","price":2})"));
  EXPECT_EQ(d.fields, V({"title"}));
  EXPECT_TRUE(d.changed);

  d = conflict::decide(make(Strategy::manual));
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "manual");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"B","price":2})"));
  EXPECT_EQ(d.fields, V({"title"}));
}

TEST(ConflictDecide, AcceptLocalWithNothingElseNewIsUnchanged) {
  Input in = stale_base(R"({"title":"A"})", R"({"title":"B"})", R"({"title":"C"})");
  in.policy.strategy = Strategy::accept_local;
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(canon(d.state), canon(R"({"title":"B"})"));
  EXPECT_FALSE(d.changed);
}

TEST(ConflictDecide, ConflictingFieldsAreListedSorted) {
  Input in =
      stale_base(R"({"z":0,"m":0,"b":0})", R"({"z":1,"m":1,"b":1})", R"({"z":2,"m":2,"b":2})");
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.fields, V({"b", "m", "z"}));
  EXPECT_FALSE(d.changed);
}

TEST(ConflictDecide, LastWriteWinsTakesTheLaterObservation) {
  Input in = stale_base(R"({"title":"A","price":1})", R"({"title":"B","price":1})",
                        R"({"title":"C","price":2})");
  in.policy.strategy = Strategy::last_write_wins;
  Decision d = conflict::decide(in);  // remote a minute later
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"C","price":2})"));
  EXPECT_EQ(d.fields, V({"title"}));
  EXPECT_TRUE(d.changed);

  in.remote.observed_at_us = kT0 - 60 * kSec;  // remote a minute earlier
  d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"B","price":2})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, LastWriteWinsTieBreaksAreTheSameOnEveryReplica) {
  // Equal observation times between equally ranked sources: two unlisted
  // platforms are ordered by name ("etsy" > "ebay") ...
  Input in = stale_base(R"({"t":"A"})", R"({"t":"B"})", R"({"t":"C"})");
  in.policy.strategy = Strategy::last_write_wins;
  in.remote.observed_at_us = kT0;
  in.local.source = "ebay";
  in.remote.source = "etsy";
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C"})"));
  std::swap(in.local, in.remote);
  d = conflict::decide(in);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C"})"));
  EXPECT_FALSE(d.changed);

  // ... and the same source by the canonical text of the values.
  in.local.source = in.remote.source = "shopify";
  d = conflict::decide(in);
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C"})"));
  std::swap(in.local, in.remote);
  d = conflict::decide(in);
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C"})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, LastWriteWinsTieBetweenDifferentlyRankedSourcesGoesToTheHigherRank) {
  // Settled by the source priority rule before the strategy is consulted.
  Input in = stale_base(R"({"t":"A"})", R"({"t":"B"})", R"({"t":"C"})");
  in.policy.strategy = Strategy::last_write_wins;
  in.remote.observed_at_us = kT0;
  in.local.source = "amazon";  // remote is shopify
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "source_priority");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C"})"));
  EXPECT_TRUE(d.changed);
  std::swap(in.local.source, in.remote.source);
  d = conflict::decide(in);
  EXPECT_EQ(d.rule, "source_priority");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"B"})"));
  EXPECT_FALSE(d.changed);
}

// ---------------------------------------------------------------- decide: review window

TEST(ConflictDecide, ConflictingChangesCloserThanTheReviewWindowWaitForAPerson) {
  Input in = stale_base(R"({"title":"A","price":1})", R"({"title":"B","price":1})",
                        R"({"title":"C","price":2})");
  in.policy = Policy{};  // review window 30 s
  in.policy.strategy = Strategy::accept_remote;
  in.remote.observed_at_us = kT0 + 10 * kSec;
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::version_mismatch);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "review_window");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"B","price":2})"));
  EXPECT_EQ(d.fields, V({"title"}));

  // The window is symmetric: an earlier remote is as close.
  in.remote.observed_at_us = kT0 - 10 * kSec;
  EXPECT_EQ(conflict::decide(in).rule, "review_window");

  // Exactly the window apart is outside it.
  in.remote.observed_at_us = kT0 + 30 * kSec;
  d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "accept_remote");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"C","price":2})"));

  // It also comes before source priority.
  in.remote.observed_at_us = kT0 + 10 * kSec;
  in.local.source = "manual";
  EXPECT_EQ(conflict::decide(in).rule, "review_window");
}

TEST(ConflictDecide, ReviewWindowDoesNotHoldDisjointChanges) {
  Input in = stale_base(R"({"a":1,"b":1})", R"({"a":2,"b":1})", R"({"a":1,"b":3})");
  in.policy = Policy{};
  in.remote.observed_at_us = kT0 + kSec;
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "three_way_merge");
}

// ---------------------------------------------------------------- decide: source priority

TEST(ConflictDecide, SourceRanks) {
  const Policy p;
  EXPECT_EQ(conflict::source_rank(p, "shopify"), 0);
  EXPECT_EQ(conflict::source_rank(p, "amazon"), 1);
  EXPECT_EQ(conflict::source_rank(p, "tiktok"), 2);
  EXPECT_EQ(conflict::source_rank(p, "meta"), 3);
  EXPECT_EQ(conflict::source_rank(p, "instagram"), 4);
  EXPECT_EQ(conflict::source_rank(p, "sequencer"), 5);
  EXPECT_EQ(conflict::source_rank(p, "ebay"), 6);
  EXPECT_EQ(conflict::source_rank(p, "etsy"), 6);
  EXPECT_EQ(conflict::source_rank(p, "manual"), 7);

  Policy q;
  q.source_priority = V({"manual", "amazon"});
  EXPECT_EQ(conflict::source_rank(q, "manual"), 0);
  EXPECT_EQ(conflict::source_rank(q, "amazon"), 1);
  EXPECT_EQ(conflict::source_rank(q, "shopify"), 2);

  // external_sources_win off: "manual" ranks with the unlisted platforms ...
  Policy r;
  r.external_sources_win = false;
  EXPECT_EQ(conflict::source_rank(r, "ebay"), 6);
  EXPECT_EQ(conflict::source_rank(r, "manual"), 6);
  EXPECT_EQ(conflict::source_rank(r, "shopify"), 0);
  // ... which, with no list at all, is every source.
  r.source_priority.clear();
  for (const char *s : {"shopify", "amazon", "ebay", "manual"})
    EXPECT_EQ(conflict::source_rank(r, s), 0) << s;
  // A listed "manual" keeps its place either way.
  q.external_sources_win = false;
  EXPECT_EQ(conflict::source_rank(q, "manual"), 0);
  EXPECT_EQ(conflict::source_rank(q, "shopify"), 2);
  // With the default on and an empty list, platforms rank 0 and "manual" 1.
  Policy e;
  e.source_priority.clear();
  EXPECT_EQ(conflict::source_rank(e, "shopify"), 0);
  EXPECT_EQ(conflict::source_rank(e, "manual"), 1);

  EXPECT_TRUE(conflict::is_external("shopify"));
  EXPECT_TRUE(conflict::is_external("ebay"));
  EXPECT_FALSE(conflict::is_external("manual"));
}

TEST(ConflictDecide, HigherRankedSourceWinsConflictingFields) {
  struct Case {
    const char *local;
    const char *remote;
    const char *title;  // the winner's title
  };
  // local says "L", remote says "R".
  for (const Case &c :
       {Case{"manual", "shopify", "R"}, Case{"shopify", "manual", "L"},
        Case{"amazon", "shopify", "R"}, Case{"shopify", "amazon", "L"}, Case{"ebay", "amazon", "R"},
        Case{"amazon", "ebay", "L"}, Case{"manual", "ebay", "R"}, Case{"ebay", "manual", "L"}}) {
    SCOPED_TRACE(std::string(c.local) + " vs " + c.remote);
    Input in =
        stale_base(R"({"title":"A","n":1})", R"({"title":"L","n":1})", R"({"title":"R","n":2})");
    in.local.source = c.local;
    in.remote.source = c.remote;
    const Decision d = conflict::decide(in);  // strategy merge
    EXPECT_EQ(d.type, Type::version_mismatch);
    EXPECT_EQ(d.outcome, Outcome::resolved);
    EXPECT_EQ(d.rule, "source_priority");
    EXPECT_EQ(canon(d.state), canon(std::string(R"({"n":2,"title":")") + c.title + "\"}"));
    EXPECT_EQ(d.fields, V({"title"}));
    EXPECT_TRUE(d.changed);
  }
}

TEST(ConflictDecide, SourcePriorityComesBeforeTheStrategy) {
  // Current rule order: differently ranked sources are settled by rank, so
  // accept_remote and last_write_wins only decide between equal ranks.
  Input in = stale_base(R"({"t":"A"})", R"({"t":"B"})", R"({"t":"C"})");
  in.remote.source = "amazon";  // local is shopify, remote a minute later
  for (Strategy s : {Strategy::accept_remote, Strategy::last_write_wins, Strategy::merge}) {
    in.policy.strategy = s;
    const Decision d = conflict::decide(in);
    EXPECT_EQ(d.outcome, Outcome::resolved) << conflict::name(s);
    EXPECT_EQ(d.rule, "source_priority") << conflict::name(s);
    EXPECT_EQ(canon(d.state), canon(R"({"t":"B"})")) << conflict::name(s);
    EXPECT_FALSE(d.changed) << conflict::name(s);
  }
  in.policy.strategy = Strategy::manual;
  EXPECT_EQ(conflict::decide(in).outcome, Outcome::conflict);
}

// ---------------------------------------------------------------- decide: stock reductions

TEST(ConflictDecide, StockReductionsWin) {
  struct Case {
    int local, remote, expected;
  };
  // base on_hand is 10
  // One side reduced and the other increased: the reduction stands; both
  // reduced: the lower count.
  for (const Case &c :
       {Case{7, 12, 7}, Case{12, 7, 7}, Case{7, 4, 4}, Case{4, 7, 4}, Case{0, 30, 0}}) {
    SCOPED_TRACE(std::to_string(c.local) + " vs " + std::to_string(c.remote));
    Input in = stale_base(R"({"on_hand":10,"sku":"X"})",
                          R"({"on_hand":)" + std::to_string(c.local) + R"(,"sku":"X"})",
                          R"({"on_hand":)" + std::to_string(c.remote) + R"(,"sku":"Y"})");
    const Decision d = conflict::decide(in);  // strategy merge, same source
    EXPECT_EQ(d.type, Type::version_mismatch);
    EXPECT_EQ(d.outcome, Outcome::resolved);
    EXPECT_EQ(d.rule, "stock_reduction");
    EXPECT_EQ(canon(d.state),
              canon(R"({"on_hand":)" + std::to_string(c.expected) + R"(,"sku":"Y"})"));
    EXPECT_EQ(d.fields, V({"on_hand"}));
  }
}

TEST(ConflictDecide, StockReductionWinsOverSourcePriorityAndTheReviewWindow) {
  Input in = stale_base(R"({"quantity":10})", R"({"quantity":15})", R"({"quantity":8})");
  in.policy = Policy{};  // review window 30 s
  in.remote.source = "manual";
  in.remote.observed_at_us = kT0 + kSec;
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "stock_reduction");
  EXPECT_EQ(canon(d.state), canon(R"({"quantity":8})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, BothIncreasedIsNotAStockReduction) {
  Input in = stale_base(R"({"on_hand":10})", R"({"on_hand":12})", R"({"on_hand":15})");
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "merge");
  EXPECT_EQ(canon(d.state), canon(R"({"on_hand":12})"));
  EXPECT_EQ(d.fields, V({"on_hand"}));
}

TEST(ConflictDecide, StockReductionRuleNeedsItsConditions) {
  // Disabled by policy.
  Input in = stale_base(R"({"on_hand":10})", R"({"on_hand":7})", R"({"on_hand":12})");
  in.policy.stock_reductions_win = false;
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "merge");

  // A field that is not a stock field.
  in = stale_base(R"({"count":10})", R"({"count":7})", R"({"count":12})");
  EXPECT_EQ(conflict::decide(in).rule, "merge");
  in.policy.stock_fields = V({"count"});
  d = conflict::decide(in);
  EXPECT_EQ(d.rule, "stock_reduction");
  EXPECT_EQ(canon(d.state), canon(R"({"count":7})"));

  // No number in the base, or a non-number on one side.
  in = stale_base(R"({})", R"({"on_hand":7})", R"({"on_hand":12})");
  EXPECT_EQ(conflict::decide(in).rule, "merge");
  in = stale_base(R"({"on_hand":"10"})", R"({"on_hand":7})", R"({"on_hand":12})");
  EXPECT_EQ(conflict::decide(in).rule, "merge");
  in = stale_base(R"({"on_hand":10})", R"({"on_hand":7})", R"({"on_hand":"12"})");
  EXPECT_EQ(conflict::decide(in).rule, "merge");
  in = stale_base(R"({"on_hand":10})", R"({"on_hand":7})", R"({})");  // removed remotely
  EXPECT_EQ(conflict::decide(in).rule, "merge");
}

TEST(ConflictDecide, StockAndOtherFieldsTogether) {
  // on_hand settles by stock reduction, title by source priority; the rule
  // reported is the last one that decided.
  Input in = stale_base(R"({"on_hand":10,"title":"A"})", R"({"on_hand":12,"title":"B"})",
                        R"({"on_hand":9,"title":"C"})");
  in.remote.source = "amazon";
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "source_priority");
  EXPECT_EQ(canon(d.state), canon(R"({"on_hand":9,"title":"B"})"));
  EXPECT_EQ(d.fields, V({"on_hand", "title"}));

  // With an open field left for a person, the stock decision is already in
  // the proposed state.
  in.remote.source = "shopify";
  d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "merge");
  EXPECT_EQ(canon(d.state), canon(R"({"on_hand":9,"title":"B"})"));
  EXPECT_EQ(d.fields, V({"on_hand", "title"}));
}

// ---------------------------------------------------------------- decide: blind writes

TEST(ConflictDecide, BlindWriteFromTheLastWritersSourceIsMergedAgainstItsOwnBase) {
  // Being the last writer is not enough: the stored state (version 5) is a
  // merge amazon has not seen, so amazon's change is taken relative to what
  // it last wrote (version 3) and the other side's a=2 survives.
  Input in = blind(R"({"a":1,"b":1})", R"({"a":2,"b":1})", R"({"a":1,"b":5})", "amazon", "amazon");
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "three_way_merge");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":5})"));
  EXPECT_TRUE(d.changed);

  // Conflicting with a value it has not seen: equal ranks, so under the
  // merge strategy a person decides.
  in.remote.state = J(R"({"a":3,"b":1})");
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::cross_platform_mismatch);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "merge");
  EXPECT_EQ(d.fields, V({"a"}));
}

TEST(ConflictDecide, BlindWriteFromASourceThatSawTheCurrentVersionApplies) {
  Input in = blind(R"({"a":1})", R"({"a":2,"b":1})", R"({"a":3})", "shopify", "manual");
  in.facts.source_version = 5;
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"a":3})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, BlindDisjointChangesApplyMerged) {
  for (const char *source : {"amazon", "manual"}) {
    Input in = blind(R"({"a":1,"b":1,"x":0})", R"({"a":2,"b":1,"x":0})", R"({"a":1,"b":1,"c":3})",
                     "shopify", source);
    in.policy.strategy = Strategy::manual;  // not consulted
    const Decision d = conflict::decide(in);
    EXPECT_EQ(d.type, Type::none) << source;
    EXPECT_EQ(d.outcome, Outcome::applied) << source;
    EXPECT_EQ(d.rule, "three_way_merge") << source;
    EXPECT_EQ(canon(d.state), canon(R"({"a":2,"b":1,"c":3})")) << source;
    EXPECT_TRUE(d.fields.empty()) << source;
    EXPECT_TRUE(d.changed) << source;
  }
}

TEST(ConflictDecide, BlindConflictingWriteFromAnExternalSourceIsACrossPlatformMismatch) {
  Input in =
      blind(R"({"t":"A","n":1})", R"({"t":"B","n":1})", R"({"t":"C","n":2})", "shopify", "amazon");
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::cross_platform_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "source_priority");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"B","n":2})"));
  EXPECT_EQ(d.fields, V({"t"}));
  EXPECT_TRUE(d.changed);

  // Equally ranked platforms under the merge strategy: a person decides.
  in.local.source = "ebay";
  in.remote.source = "etsy";
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::cross_platform_mismatch);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "merge");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"B","n":2})"));
  EXPECT_EQ(d.fields, V({"t"}));

  in.policy.strategy = Strategy::accept_remote;
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::cross_platform_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "accept_remote");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C","n":2})"));
}

TEST(ConflictDecide, BlindManualEditWithinTheDetectionWindowIsAConcurrentEdit) {
  Input in = blind(R"({"t":"A"})", R"({"t":"B"})", R"({"t":"C"})", "shopify", "manual");
  in.policy = Policy{};  // detection 5 s, review 30 s
  in.remote.observed_at_us = kT0 + 2 * kSec;
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::concurrent_edit);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "review_window");
  EXPECT_EQ(d.fields, V({"t"}));
  EXPECT_FALSE(d.changed);

  // Without the review window, the next rule (source priority) decides.
  in.policy.review_window_us = 0;
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::concurrent_edit);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "source_priority");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"B"})"));
  EXPECT_FALSE(d.changed);

  // Just inside the window.
  in.remote.observed_at_us = kT0 + 5 * kSec - 1;
  EXPECT_EQ(conflict::decide(in).type, Type::concurrent_edit);
}

TEST(ConflictDecide, BlindManualEditBeyondTheDetectionWindowOverwrites) {
  Input in = blind(R"({"t":"A","n":1,"x":1})", R"({"t":"B","n":1,"x":1})", R"({"t":"C","n":2})",
                   "shopify", "manual");
  in.policy = Policy{};
  in.policy.strategy = Strategy::manual;  // not consulted
  in.remote.observed_at_us = kT0 + 5 * kSec;
  const Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "three_way_merge");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C","n":2})"));
  EXPECT_TRUE(d.fields.empty());
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, StaleObservationRuleOnlyForExternalBlindReportsOutsideLastWriteWins) {
  // The remote's source last reported at kT0; this report was observed a
  // second earlier. Its source saw the current version, so any rule other
  // than stale_observation would apply it as it is.
  const auto make = [](const char *remote_source) {
    Input in =
        blind(R"({"a":3,"b":1})", R"({"a":3,"b":1})", R"({"a":2})", "shopify", remote_source);
    in.facts.source_version = 5;
    in.facts.source_observed_at_us = kT0;
    in.remote.observed_at_us = kT0 - kSec;
    return in;
  };

  Decision d = conflict::decide(make("amazon"));
  EXPECT_EQ(d.rule, "stale_observation");
  EXPECT_EQ(canon(d.state), canon(R"({"a":3,"b":1})"));
  EXPECT_FALSE(d.changed);

  // A person's edit is the newest intent, whatever its observed_at says.
  d = conflict::decide(make("manual"));
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));
  EXPECT_TRUE(d.changed);

  // Under last_write_wins the per-field order settles out-of-order reports:
  // here every field was last set before this observation, so it wins them
  // all although it is older than amazon's latest report.
  Input in = make("amazon");
  in.policy.strategy = Strategy::last_write_wins;
  in.policy.source_priority.clear();
  in.stamps = J(
      stamps(stamp(kT0 - 10 * kSec, "shopify", true),
             {{"a", stamp(kT0 - 10 * kSec, "shopify")}, {"b", stamp(kT0 - 10 * kSec, "shopify")}}));
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));
  EXPECT_TRUE(d.changed);
}

TEST(ConflictDecide, BlindManualEditOlderThanTheLocalChangeIsAConcurrentEdit) {
  // Even with no detection window: an edit observed before the change it
  // would undo does not overwrite it.
  Input in =
      blind(R"({"t":"A","n":1})", R"({"t":"B","n":1})", R"({"t":"C","n":2})", "shopify", "manual");
  in.policy.detection_window_us = 0;
  in.remote.observed_at_us = kT0 - 10 * kSec;
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::concurrent_edit);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "source_priority");  // shopify outranks manual
  EXPECT_EQ(canon(d.state), canon(R"({"t":"B","n":2})"));
  EXPECT_EQ(d.fields, V({"t"}));

  in.policy.strategy = Strategy::manual;
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::concurrent_edit);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "manual");

  // Observed at the same moment: at least the (zero) window after, so it
  // overwrites.
  in.remote.observed_at_us = kT0;
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "three_way_merge");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C","n":2})"));

  // With a window, older is as concurrent as just inside it.
  in.policy.detection_window_us = 5 * kSec;
  in.policy.strategy = Strategy::merge;
  in.remote.observed_at_us = kT0 - 60 * kSec;
  EXPECT_EQ(conflict::decide(in).type, Type::concurrent_edit);
}

TEST(ConflictDecide, ChangedIgnoresMemberOrder) {
  Input in = stale_base(R"({"a":1,"b":2})", R"({"a":1,"b":2})", R"({"b":2,"a":1})");
  in.facts.base_version = 5;
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_FALSE(d.changed);

  // The same under last_write_wins, where the remote wins every field.
  in.facts.base_version = std::nullopt;
  in.policy.strategy = Strategy::last_write_wins;
  d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_FALSE(d.changed);

  // A different value is still a change, and so is an extra member.
  in.remote.state = J(R"({"b":3,"a":1})");
  EXPECT_TRUE(conflict::decide(in).changed);
  in.remote.state = J(R"({"b":2,"a":1,"c":null})");
  EXPECT_TRUE(conflict::decide(in).changed);
}

// ---------------------------------------------------------------- stamps

TEST(ConflictStamps, CreateStampsEveryFieldAndSetsTheFloor) {
  Input in;
  in.facts.exists = false;
  in.base = J("{}");
  in.local = {J("{}"), "", 0};
  in.remote = {J(R"({"title":"A","on_hand":3})"), "amazon", kT0};
  for (const char *given : {"null", "{}"}) {  // decide() before and after the SQL layer's default
    in.stamps = J(given);
    const Decision d = conflict::decide(in);
    EXPECT_EQ(canon(d.stamps),
              canon(stamps(stamp(kT0, "amazon", true),
                           {{"on_hand", stamp(kT0, "amazon")}, {"title", stamp(kT0, "amazon")}})))
        << given;
  }
}

TEST(ConflictStamps, ApplyStampsWhatTheChangeAlteredAndRaisesTheFloor) {
  // A change against the current version: b changes, c goes, d arrives, a
  // stays as it was and keeps its stamp.
  Input in = stale_base("{}", R"({"a":1,"b":2,"c":3})", R"({"a":1,"b":5,"d":4})");
  in.facts.base_version = 5;
  const std::int64_t t1 = kT0 - 10 * kSec, t2 = kT0 + 60 * kSec;
  in.stamps = J(stamps(
      stamp(t1, "shopify", true),
      {{"a", stamp(t1, "shopify")}, {"b", stamp(kT0, "shopify")}, {"c", stamp(kT0, "shopify")}}));
  Decision d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(t2, "shopify", true), {{"a", stamp(t1, "shopify")},
                                                      {"b", stamp(t2, "shopify")},
                                                      {"c", stamp(t2, "shopify", true)},
                                                      {"d", stamp(t2, "shopify")}})));

  // A lower-ranked source's change still stamps what it altered, but does
  // not raise the floor above the higher-ranked one's.
  in.remote.source = "amazon";
  d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(t1, "shopify", true), {{"a", stamp(t1, "shopify")},
                                                      {"b", stamp(t2, "amazon")},
                                                      {"c", stamp(t2, "amazon", true)},
                                                      {"d", stamp(t2, "amazon")}})));

  // An equal state changes no field stamp; the floor still rises.
  in.remote = {J(R"({"c":3,"b":2,"a":1})"), "shopify", t2};
  d = conflict::decide(in);
  EXPECT_FALSE(d.changed);
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(t2, "shopify", true), {{"a", stamp(t1, "shopify")},
                                                      {"b", stamp(kT0, "shopify")},
                                                      {"c", stamp(kT0, "shopify")}})));
}

TEST(ConflictStamps, ResolvedMergeStampsOnlyTheFieldsTheRemoteWon) {
  // t changed on both sides and stays shopify's (source priority); n and x
  // are the remote's one-sided changes.
  Input in =
      stale_base(R"({"t":"A","n":1,"x":1})", R"({"t":"B","n":1,"x":1})", R"({"t":"C","n":2})");
  in.remote.source = "amazon";
  const std::int64_t t2 = kT0 + 60 * kSec;
  in.stamps = J(stamps(
      stamp(kT0, "shopify", true),
      {{"t", stamp(kT0, "shopify")}, {"n", stamp(kT0, "shopify")}, {"x", stamp(kT0, "shopify")}}));
  Decision d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "source_priority");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"B","n":2})"));
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(kT0, "shopify", true), {{"t", stamp(kT0, "shopify")},
                                                       {"n", stamp(t2, "amazon")},
                                                       {"x", stamp(t2, "amazon", true)}})));

  // Decided the other way (accept_remote between equal ranks), t is stamped too.
  in.local.source = "ebay";
  in.remote.source = "etsy";
  in.policy.strategy = Strategy::accept_remote;
  d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "accept_remote");
  EXPECT_EQ(canon(d.state), canon(R"({"t":"C","n":2})"));
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(kT0, "shopify", true), {{"t", stamp(t2, "etsy")},
                                                       {"n", stamp(t2, "etsy")},
                                                       {"x", stamp(t2, "etsy", true)}})));
}

TEST(ConflictStamps, AConflictLeavesTheStampsAsTheyWere) {
  const std::string given =
      stamps(stamp(kT0 - kSec, "shopify", true),
             {{"title", stamp(kT0, "shopify")}, {"price", stamp(kT0 - kSec, "amazon")}});

  // merge strategy, same source on both sides
  Input in = stale_base(R"({"title":"A","price":1})", R"({"title":"B","price":1})",
                        R"({"title":"C","price":2})");
  in.stamps = J(given);
  Decision d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "merge");
  EXPECT_EQ(canon(d.stamps), canon(given));

  // the review window
  in.policy = Policy{};
  in.remote.observed_at_us = kT0 + kSec;
  d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.rule, "review_window");
  EXPECT_EQ(canon(d.stamps), canon(given));

  // the manual strategy, even for disjoint changes
  in = stale_base(R"({"title":"A","price":1})", R"({"title":"B","price":1})",
                  R"({"title":"A","price":2})");
  in.policy.strategy = Strategy::manual;
  in.stamps = J(given);
  d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(canon(d.stamps), canon(given));

  // a deleted entity under merge
  in.policy.strategy = Strategy::merge;
  in.facts.deleted = true;
  d = conflict::decide(in);
  ASSERT_EQ(d.outcome, Outcome::conflict);
  EXPECT_EQ(d.type, Type::deleted_reference);
  EXPECT_EQ(canon(d.stamps), canon(given));
}

// ---------------------------------------------------------------- decide: last_write_wins per
// field

namespace {

struct Change {
  json::Value state;
  std::string source;
  std::int64_t observed_at_us;
};

// Equal as jsonb values: the same members, in any order.
bool same_members(const json::Value &a, const json::Value &b) {
  if (a.kind() != json::Kind::object || b.kind() != json::Kind::object) return a == b;
  if (a.as_object().size() != b.as_object().size()) return false;
  for (const auto &[key, value] : a.as_object()) {
    const json::Value *other = b.find(key);
    if (other == nullptr || !same_members(value, *other)) return false;
  }
  return true;
}

// One replica of an entity, kept the way ves.upsert (src/sql/75_state.sql)
// keeps it: the state and version, the last writer, the field stamps decide()
// returned, and per source the state it last reported (the base of its next
// change that names no base version) and its latest observed_at. Every change
// names no base version.
class Replica {
 public:
  explicit Replica(Policy policy, bool logged = true)
      : policy_(std::move(policy)), logged_(logged) {}

  Decision apply(const Change &c) {
    Input in;
    in.policy = policy_;
    in.facts.exists = exists_;
    in.facts.current_version = version_;
    const auto seen = seen_.find(c.source);
    in.base = seen != seen_.end() ? seen->second.state : json::Value(json::Value::Object{});
    if (exists_ && same_members(in.base, state_)) in.facts.source_version = version_;
    if (seen != seen_.end()) in.facts.source_observed_at_us = seen->second.observed_at_us;
    in.local = {state_, last_source_, last_observed_at_us_};
    in.remote = {c.state, c.source, c.observed_at_us};
    in.stamps = stamps_;
    const Decision d = conflict::decide(in);
    if (logged_)
      log_ << "  " << c.source << "@" << (c.observed_at_us - kT0) / kSec << "s " << canon(c.state)
           << " -> " << conflict::name(d.outcome) << "/" << d.rule
           << (d.changed ? " changed " : " unchanged ") << canon(d.state) << " stamps "
           << canon(d.stamps) << "\n";
    if (d.outcome == Outcome::conflict) {
      ++conflicts_;
      return d;
    }
    const bool stored = d.changed || !exists_;  // ves.upsert writes a new version
    if (stored) {
      ++version_;
      state_ = d.state;  // (member order, which jsonb does not keep, plays no part)
      exists_ = true;
      last_source_ = c.source;
      last_observed_at_us_ = c.observed_at_us;
    }
    if (stored || d.rule != "stale_observation") {
      stamps_ = d.stamps;
      auto &s = seen_[c.source];
      s.observed_at_us =
          seen == seen_.end() ? c.observed_at_us : std::max(s.observed_at_us, c.observed_at_us);
      s.state = c.state;
    }
    return d;
  }

  std::string state() const { return canon(state_); }
  std::string floor() const {
    const json::Value *f = stamps_.find("floor");
    return f ? canon(*f) : "none";
  }
  std::string stamps() const { return canon(stamps_); }
  int conflicts() const { return conflicts_; }
  std::string log() const { return log_.str(); }

 private:
  struct Seen {
    json::Value state;
    std::int64_t observed_at_us = 0;
  };
  Policy policy_;
  bool logged_;
  bool exists_ = false;
  json::Value state_ = json::Value(json::Value::Object{});
  std::int64_t version_ = 0;
  std::string last_source_;
  std::int64_t last_observed_at_us_ = 0;
  json::Value stamps_ = json::Value(json::Value::Object{});
  std::map<std::string, Seen> seen_;
  int conflicts_ = 0;
  std::ostringstream log_;
};

Policy lww_policy() {
  Policy p;
  p.strategy = Strategy::last_write_wins;
  p.review_window_us = 0;
  return p;
}

// A blind change under last_write_wins against an entity shopify wrote at kT0.
Input lww(std::string_view local, const std::string &given_stamps, std::string_view remote,
          const char *source, std::int64_t observed_at_us) {
  Input in = blind("{}", local, remote, "shopify", source);
  in.remote.observed_at_us = observed_at_us;
  in.stamps = J(given_stamps);
  in.policy = lww_policy();
  return in;
}

}  // namespace

TEST(ConflictLastWriterWinsMap, AHigherRankedSourceBeatsANewerLowerRankedOneFieldByField) {
  // title and sku were last set by shopify at kT0, price by amazon 10 s later.
  const std::string given =
      stamps(stamp(kT0, "shopify", true), {{"title", stamp(kT0, "shopify")},
                                           {"price", stamp(kT0 + 10 * kSec, "amazon")},
                                           {"sku", stamp(kT0, "shopify")}});
  const char *local = R"({"title":"A","price":1,"sku":"X"})";

  // amazon, newer than everything: it takes price (its own older value)
  // but not title (shopify outranks it, however old).
  Input in = lww(local, given, R"({"title":"B","price":2,"sku":"X"})", "amazon", kT0 + 20 * kSec);
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::cross_platform_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"A","price":2,"sku":"X"})"));
  EXPECT_EQ(d.fields, V({"title"}));
  EXPECT_TRUE(d.changed);
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(kT0, "shopify", true), {{"title", stamp(kT0, "shopify")},
                                                       {"price", stamp(kT0 + 20 * kSec, "amazon")},
                                                       {"sku", stamp(kT0, "shopify")}})));

  // shopify, older than everything: it loses its own newer title and sku
  // but takes price from the lower-ranked amazon.
  in = lww(local, given, R"({"title":"C","price":3})", "shopify", kT0 - 100 * kSec);
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::cross_platform_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"A","price":3,"sku":"X"})"));
  EXPECT_EQ(d.fields, V({"sku", "title"}));
  EXPECT_EQ(canon(d.stamps), canon(stamps(stamp(kT0, "shopify", true),
                                          {{"title", stamp(kT0, "shopify")},
                                           {"price", stamp(kT0 - 100 * kSec, "shopify")},
                                           {"sku", stamp(kT0, "shopify")}})));

  // A person's newer edit loses every field to the platforms by default ...
  in = lww(local, given, R"({"title":"M","price":9,"sku":"X"})", "manual", kT0 + 60 * kSec);
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::concurrent_edit);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(canon(d.state), canon(local));
  EXPECT_EQ(d.fields, V({"price", "title"}));
  EXPECT_FALSE(d.changed);
  EXPECT_EQ(canon(d.stamps), canon(given));

  // ... but not when "manual" is listed first.
  in.policy.source_priority = V({"manual", "shopify", "amazon"});
  d = conflict::decide(in);
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"M","price":9,"sku":"X"})"));
}

TEST(ConflictLastWriterWinsMap, WithoutRanksTheLaterObservationWins) {
  const std::string given =
      stamps(stamp(kT0, "shopify", true), {{"title", stamp(kT0, "shopify")},
                                           {"price", stamp(kT0 + 10 * kSec, "manual")},
                                           {"sku", stamp(kT0, "shopify")}});
  const char *local = R"({"title":"A","price":1,"sku":"X"})";
  const auto make = [&](std::string_view remote, const char *source, std::int64_t at) {
    Input in = lww(local, given, remote, source, at);
    in.policy.source_priority.clear();
    in.policy.external_sources_win = false;
    return in;
  };

  // A person after everything: every field, and the removal of sku.
  Decision d = conflict::decide(make(R"({"title":"M","price":9})", "manual", kT0 + 20 * kSec));
  EXPECT_EQ(d.type, Type::none);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"M","price":9})"));
  EXPECT_TRUE(d.fields.empty());
  EXPECT_EQ(canon(d.stamps), canon(stamps(stamp(kT0 + 20 * kSec, "manual", true),
                                          {{"title", stamp(kT0 + 20 * kSec, "manual")},
                                           {"price", stamp(kT0 + 20 * kSec, "manual")},
                                           {"sku", stamp(kT0 + 20 * kSec, "manual", true)}})));

  // shopify between the two: title and sku (older) are its to take, price
  // (set later by a person) is not.
  d = conflict::decide(make(R"({"title":"S","price":5})", "shopify", kT0 + 5 * kSec));
  EXPECT_EQ(d.type, Type::cross_platform_mismatch);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"title":"S","price":1})"));
  EXPECT_EQ(d.fields, V({"price"}));
  EXPECT_EQ(canon(d.stamps), canon(stamps(stamp(kT0 + 5 * kSec, "shopify", true),
                                          {{"title", stamp(kT0 + 5 * kSec, "shopify")},
                                           {"price", stamp(kT0 + 10 * kSec, "manual")},
                                           {"sku", stamp(kT0 + 5 * kSec, "shopify", true)}})));

  // A person's edit older than the fields it touches: a concurrent edit
  // that changes nothing.
  d = conflict::decide(make(R"({"title":"M","price":9,"sku":"X"})", "manual", kT0 - kSec));
  EXPECT_EQ(d.type, Type::concurrent_edit);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(canon(d.state), canon(local));
  EXPECT_EQ(d.fields, V({"price", "title"}));
  EXPECT_FALSE(d.changed);
  EXPECT_EQ(canon(d.stamps), canon(given));
}

TEST(ConflictLastWriterWinsMap, TiesAreBrokenTheSameWayOnEveryReplica) {
  // local holds t as stamped by `by` at kT0; remote comes from `source`, also at kT0.
  const auto run = [](const char *local, const char *by, bool gone, const char *remote,
                      const char *source) {
    Input in = lww(local, stamps("", {{"t", stamp(kT0, by, gone)}}), remote, source, kT0);
    in.policy.source_priority.clear();
    return canon(conflict::decide(in).state);
  };
  const std::string A = canon(R"({"t":"A"})"), B = canon(R"({"t":"B"})");
  // Same rank and time: the larger source name.
  EXPECT_EQ(run(R"({"t":"A"})", "ebay", false, R"({"t":"B"})", "etsy"), B);
  EXPECT_EQ(run(R"({"t":"B"})", "etsy", false, R"({"t":"A"})", "ebay"), B);
  // Same source and time: the larger canonical value; absent is smallest.
  EXPECT_EQ(run(R"({"t":"A"})", "ebay", false, R"({"t":"B"})", "ebay"), B);
  EXPECT_EQ(run(R"({"t":"B"})", "ebay", false, R"({"t":"A"})", "ebay"), B);
  EXPECT_EQ(run(R"({"t":"A"})", "ebay", false, "{}", "ebay"), A);
  EXPECT_EQ(run("{}", "ebay", true, R"({"t":"A"})", "ebay"), A);
}

TEST(ConflictLastWriterWinsMap, FieldsWithoutAStampTakeTheLocalSideOrTheFloor) {
  // Written before stamps: a present field counts as the local side's
  // (shopify at kT0), an absent one as nobody's.
  Input in = lww(R"({"a":1})", "{}", R"({"a":2,"b":3})", "amazon", kT0 + 60 * kSec);
  Decision d = conflict::decide(in);
  EXPECT_EQ(canon(d.state), canon(R"({"a":1,"b":3})"));
  EXPECT_EQ(d.fields, V({"a"}));
  EXPECT_EQ(canon(d.stamps), canon(stamps(stamp(kT0 + 60 * kSec, "amazon", true),
                                          {{"b", stamp(kT0 + 60 * kSec, "amazon")}})));
  // shopify itself, later: a goes, and is stamped gone.
  in = lww(R"({"a":1})", "{}", R"({})", "shopify", kT0 + 60 * kSec);
  d = conflict::decide(in);
  EXPECT_EQ(canon(d.state), "{}");
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.stamps), canon(stamps(stamp(kT0 + 60 * kSec, "shopify", true),
                                          {{"a", stamp(kT0 + 60 * kSec, "shopify", true)}})));

  // With a floor, an absent field without a stamp is the floor's.
  in = lww(R"({"a":1})",
           stamps(stamp(kT0 + 30 * kSec, "shopify", true), {{"a", stamp(kT0, "shopify")}}),
           R"({"a":1,"b":3})", "shopify", kT0 + 20 * kSec);
  d = conflict::decide(in);
  EXPECT_EQ(canon(d.state), canon(R"({"a":1})"));
  EXPECT_EQ(d.fields, V({"b"}));
  in.remote.observed_at_us = kT0 + 40 * kSec;
  d = conflict::decide(in);
  EXPECT_EQ(canon(d.state), canon(R"({"a":1,"b":3})"));
  EXPECT_TRUE(d.fields.empty());
}

TEST(ConflictLastWriterWinsMap, TombstonesKeepAnOlderChangeFromBringingAFieldBack) {
  Replica r(lww_policy());
  r.apply({J(R"({"a":1,"k":5})"), "shopify", kT0 + 10 * kSec});
  Decision d = r.apply({J(R"({"a":1})"), "shopify", kT0 + 20 * kSec});  // k removed
  EXPECT_EQ(d.outcome, Outcome::applied);
  ASSERT_EQ(r.state(), canon(R"({"a":1})"));
  EXPECT_EQ(r.stamps(), canon(stamps(stamp(kT0 + 20 * kSec, "shopify", true),
                                     {{"a", stamp(kT0 + 20 * kSec, "shopify")},
                                      {"k", stamp(kT0 + 20 * kSec, "shopify", true)}})));

  // The report from 15 s, delivered late, does not bring k back, nor add z
  // (the whole state at 20 s had no z).
  d = r.apply({J(R"({"a":1,"k":5,"z":0})"), "shopify", kT0 + 15 * kSec});
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(d.fields, V({"k", "z"}));
  EXPECT_FALSE(d.changed);
  EXPECT_EQ(r.state(), canon(R"({"a":1})"));

  // Nor does a newer report from a lower-ranked source.
  d = r.apply({J(R"({"a":1,"k":7})"), "amazon", kT0 + 100 * kSec});
  EXPECT_EQ(d.fields, V({"k"}));
  EXPECT_EQ(r.state(), canon(R"({"a":1})"));

  // A newer report from shopify does.
  d = r.apply({J(R"({"a":1,"k":6})"), "shopify", kT0 + 30 * kSec});
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(r.state(), canon(R"({"a":1,"k":6})"));
  EXPECT_EQ(r.conflicts(), 0);
}

TEST(ConflictLastWriterWinsMap, OnlyBlindChangesUnderLastWriteWinsUseIt) {
  // amazon last reported a=1; shopify has set a=1 since, at kT0. amazon's
  // a=2 was observed before that.
  Input in = lww(R"({"a":1})", stamps(stamp(kT0, "shopify", true), {{"a", stamp(kT0, "shopify")}}),
                 R"({"a":2})", "amazon", kT0 - kSec);
  in.base = J(R"({"a":1})");
  Decision d = conflict::decide(in);
  EXPECT_EQ(d.rule, "last_write_wins");
  EXPECT_EQ(canon(d.state), canon(R"({"a":1})"));
  EXPECT_EQ(d.fields, V({"a"}));

  // A change that names the current version applies whatever its stamp.
  in.facts.base_version = 5;
  d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "none");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(kT0, "shopify", true), {{"a", stamp(kT0 - kSec, "amazon")}})));

  // Other strategies keep the three-way merge for blind changes: a changed
  // only on amazon's side, so it applies.
  in.facts.base_version = std::nullopt;
  in.policy.strategy = Strategy::merge;
  d = conflict::decide(in);
  EXPECT_EQ(d.outcome, Outcome::applied);
  EXPECT_EQ(d.rule, "three_way_merge");
  EXPECT_EQ(canon(d.state), canon(R"({"a":2})"));
  EXPECT_EQ(canon(d.stamps),
            canon(stamps(stamp(kT0, "shopify", true), {{"a", stamp(kT0 - kSec, "amazon")}})));
}

// ---------------------------------------------------------------- names and policy

TEST(ConflictPolicy, Names) {
  EXPECT_STREQ(conflict::name(Type::none), "none");
  EXPECT_STREQ(conflict::name(Type::version_mismatch), "version_mismatch");
  EXPECT_STREQ(conflict::name(Type::concurrent_edit), "concurrent_edit");
  EXPECT_STREQ(conflict::name(Type::deleted_reference), "deleted_reference");
  EXPECT_STREQ(conflict::name(Type::cross_platform_mismatch), "cross_platform_mismatch");
  EXPECT_STREQ(conflict::name(Type::reservation_conflict), "reservation_conflict");
  EXPECT_STREQ(conflict::name(Outcome::applied), "applied");
  EXPECT_STREQ(conflict::name(Outcome::resolved), "resolved");
  EXPECT_STREQ(conflict::name(Outcome::conflict), "conflict");
  for (Strategy s : {Strategy::accept_local, Strategy::accept_remote, Strategy::merge,
                     Strategy::manual, Strategy::last_write_wins})
    EXPECT_EQ(conflict::parse_strategy(conflict::name(s)), s);
  EXPECT_STREQ(conflict::name(Strategy::last_write_wins), "last_write_wins");
}

TEST(ConflictPolicy, ParseStrategyRejectsUnknownNames) {
  for (const char *s : {"", "Merge", "merge ", "lww", "accept-local", "none"})
    EXPECT_EQ(error_code([&] { conflict::parse_strategy(s); }), "invalid_strategy")
        << '"' << s << '"';
}

TEST(ConflictPolicy, Defaults) {
  const Policy p = conflict::parse_policy(J("{}"));
  EXPECT_EQ(p.strategy, Strategy::merge);
  EXPECT_EQ(p.detection_window_us, 5'000'000);
  EXPECT_EQ(p.review_window_us, 30'000'000);
  EXPECT_TRUE(p.stock_reductions_win);
  EXPECT_TRUE(p.reservations_win);
  EXPECT_EQ(p.source_priority,
            V({"shopify", "amazon", "tiktok", "meta", "instagram", "sequencer"}));
  EXPECT_EQ(p.stock_fields, V({"on_hand", "quantity", "inventory_quantity", "available", "stock"}));
  EXPECT_TRUE(p.external_sources_win);
  EXPECT_EQ(canon(conflict::policy_json(p)),
            canon(R"({"strategy":"merge","detection_window_ms":5000,"review_window_ms":30000,
                        "stock_reductions_win":true,"reservations_win":true,"external_sources_win":true,
                        "source_priority":["shopify","amazon","tiktok","meta","instagram","sequencer"],
                        "stock_fields":["on_hand","quantity","inventory_quantity","available","stock"]})"));
}

TEST(ConflictPolicy, EveryKey) {
  const Policy p = conflict::parse_policy(J(R"({
        "strategy": "last_write_wins",
        "detection_window_ms": 1500,
        "review_window_ms": 0,
        "stock_reductions_win": false,
        "reservations_win": false,
        "external_sources_win": false,
        "source_priority": ["amazon", "manual"],
        "stock_fields": [],
        "references": {"customer_id": "customer", "sku": "product"}
    })"));
  EXPECT_EQ(p.strategy, Strategy::last_write_wins);
  EXPECT_EQ(p.detection_window_us, 1'500'000);
  EXPECT_EQ(p.review_window_us, 0);
  EXPECT_FALSE(p.stock_reductions_win);
  EXPECT_FALSE(p.reservations_win);
  EXPECT_FALSE(p.external_sources_win);
  EXPECT_EQ(p.source_priority, V({"amazon", "manual"}));
  EXPECT_TRUE(p.stock_fields.empty());

  EXPECT_EQ(conflict::parse_policy(J(R"({"detection_window_ms":86400000})")).detection_window_us,
            86'400'000'000);
  EXPECT_EQ(conflict::parse_policy(J(R"({"review_window_ms":2.0})")).review_window_us, 2000);
  EXPECT_EQ(conflict::parse_policy(J(R"({"references":{}})")).strategy, Strategy::merge);
}

TEST(ConflictPolicy, RejectsUnknownKeysAndWrongTypes) {
  for (const char *text : {"null",
                           "[]",
                           R"("merge")",
                           "1",
                           R"({"strategy":"merge","extra":1})",
                           R"({"Strategy":"merge"})",
                           R"({"detection_window":5})",
                           R"({"strategy":1})",
                           R"({"strategy":null})",
                           R"({"strategy":["merge"]})",
                           R"({"detection_window_ms":"5000"})",
                           R"({"detection_window_ms":-1})",
                           R"({"detection_window_ms":86400001})",
                           R"({"detection_window_ms":1.5})",
                           R"({"review_window_ms":null})",
                           R"({"review_window_ms":true})",
                           R"({"review_window_ms":1e300})",
                           R"({"stock_reductions_win":1})",
                           R"({"stock_reductions_win":"true"})",
                           R"({"reservations_win":null})",
                           R"({"external_sources_win":0})",
                           R"({"external_sources_win":"false"})",
                           R"({"external_sources_win":null})",
                           R"({"source_priority":"shopify"})",
                           R"({"source_priority":[1]})",
                           R"({"source_priority":[""]})",
                           R"({"source_priority":["shopify",null]})",
                           R"({"stock_fields":{}})",
                           R"({"stock_fields":[""]})",
                           R"({"references":[]})",
                           R"({"references":{"sku":1}})",
                           R"({"references":{"sku":""}})",
                           R"({"references":"product"})"}) {
    EXPECT_EQ(policy_error(text), "invalid_policy") << text;
  }
}

TEST(ConflictPolicy, UnknownStrategyNameIsInvalidStrategy) {
  EXPECT_EQ(policy_error(R"({"strategy":"newest"})"), "invalid_strategy");
}

TEST(ConflictPolicy, PolicyJsonRoundTrips) {
  Policy p;
  p.strategy = Strategy::accept_remote;
  p.detection_window_us = 1'234'000;
  p.review_window_us = 0;
  p.stock_reductions_win = false;
  p.reservations_win = false;
  p.external_sources_win = false;
  p.source_priority = V({"tiktok", "manual", "shopify"});
  p.stock_fields = V({"units"});
  const json::Value j = conflict::policy_json(p);
  EXPECT_EQ(canon(j),
            canon(R"({"strategy":"accept_remote","detection_window_ms":1234,"review_window_ms":0,
                                  "stock_reductions_win":false,"reservations_win":false,"external_sources_win":false,
                                  "source_priority":["tiktok","manual","shopify"],"stock_fields":["units"]})"));
  const Policy q = conflict::parse_policy(j);
  EXPECT_EQ(q.strategy, p.strategy);
  EXPECT_EQ(q.detection_window_us, p.detection_window_us);
  EXPECT_EQ(q.review_window_us, p.review_window_us);
  EXPECT_EQ(q.stock_reductions_win, p.stock_reductions_win);
  EXPECT_EQ(q.reservations_win, p.reservations_win);
  EXPECT_EQ(q.external_sources_win, p.external_sources_win);
  EXPECT_EQ(q.source_priority, p.source_priority);
  EXPECT_EQ(q.stock_fields, p.stock_fields);
  EXPECT_EQ(canon(conflict::policy_json(q)), canon(j));

  for (Strategy s :
       {Strategy::accept_local, Strategy::merge, Strategy::manual, Strategy::last_write_wins}) {
    p.strategy = s;
    EXPECT_EQ(conflict::parse_policy(conflict::policy_json(p)).strategy, s);
  }
}

// ---------------------------------------------------------------- convergence

namespace {

// What a last-writer-wins map over all the changes holds, computed directly:
// per field, the assertion (a value, or absence for a change that lacks the
// field) that comes first in the order of conflict.cpp's beats(): the
// higher-ranked source, the later observation, the larger source name, the
// larger canonical value (absence smallest).
struct Oracle {
  std::string state;
  std::string floor;
};

Oracle expected(const std::vector<Change> &changes, const Policy &p) {
  using Key = std::tuple<int, std::int64_t, std::string, std::string>;  // larger wins
  const auto key = [&](const Change &c, const json::Value *v) {
    return Key(-conflict::source_rank(p, c.source), c.observed_at_us, c.source,
               v ? canon(*v) : std::string());
  };
  std::vector<std::string> fields;
  for (const Change &c : changes)
    for (const auto &m : c.state.as_object()) fields.push_back(m.first);
  std::sort(fields.begin(), fields.end());
  fields.erase(std::unique(fields.begin(), fields.end()), fields.end());
  json::Value::Object state;
  for (const auto &f : fields) {
    const json::Value *value = nullptr;
    Key best;
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const json::Value *v = changes[i].state.find(f);
      Key k = key(changes[i], v);
      if (i == 0 || k > best) best = std::move(k), value = v;
    }
    if (value) state.emplace_back(f, *value);
  }
  std::size_t strongest = 0;
  for (std::size_t i = 1; i < changes.size(); ++i)
    if (key(changes[i], nullptr) > key(changes[strongest], nullptr)) strongest = i;
  const Change &s = changes[strongest];
  return {canon(json::Value(std::move(state))),
          canon(stamp(s.observed_at_us, s.source.c_str(), true))};
}

std::string describe(const std::vector<Change> &changes) {
  std::ostringstream out;
  for (const Change &c : changes)
    out << "  " << c.source << "@" << (c.observed_at_us - kT0) / kSec << "s " << canon(c.state)
        << "\n";
  return out.str();
}

// Two replicas that receive the same blind changes in random orders, under
// last_write_wins without a review window. Returns how many cases ended
// anywhere but in the expected state (and reports the first).
int diverging_cases(const Policy &policy, std::uint32_t seed, int cases) {
  const char *const fields[] = {"a", "b", "c", "on_hand"};
  const char *const sources[] = {"shopify", "amazon", "ebay", "manual"};
  std::mt19937 rng(seed);
  const auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int diverged = 0;
  for (int k = 0; k < cases; ++k) {
    const int n = pick(2, 6);
    std::vector<Change> changes;
    for (int i = 0; i < n; ++i) {
      std::vector<int> f = {0, 1, 2, 3};
      std::shuffle(f.begin(), f.end(), rng);
      const int m = pick(0, 4);
      std::sort(f.begin(), f.begin() + m);
      json::Value::Object o;
      for (int j = 0; j < m; ++j) {
        const int v = pick(0, 4);  // 4: null, which is not absence
        o.emplace_back(fields[f[j]],
                       v == 4 ? json::Value(nullptr) : json::Value(static_cast<double>(v)));
      }
      // Few distinct times, so that equal observations (even from one
      // source) exercise the tie breaks.
      changes.push_back({json::Value(std::move(o)), sources[pick(0, 3)], kT0 + pick(0, 3) * kSec});
    }
    const Oracle want = expected(changes, policy);
    std::vector<std::vector<int>> orders(2, std::vector<int>(n));
    bool ok = true;
    for (auto &order : orders) {
      for (int i = 0; i < n; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);
      Replica r(policy, false);
      for (int i : order) r.apply(changes[i]);
      if (r.state() != want.state || r.floor() != want.floor || r.conflicts() != 0) ok = false;
    }
    if (!ok && ++diverged == 1) {
      std::string logs;
      for (const auto &order : orders) {  // again, with the decisions logged
        Replica r(policy);
        for (int i : order) r.apply(changes[i]);
        logs += "order:\n" + r.log();
      }
      ADD_FAILURE() << "case " << k << " ends elsewhere than " << want.state << " (floor "
                    << want.floor << ")\nchanges:\n"
                    << describe(changes) << logs;
    }
  }
  return diverged;
}

}  // namespace

TEST(ConflictConvergence, ReplicasApplyingTheSameChangesInAnyOrderConvergeWithSourcePriority) {
  const int cases = 2000;
  EXPECT_EQ(diverging_cases(lww_policy(), 20240611, cases), 0) << "of " << cases << " cases";
}

TEST(ConflictConvergence, ReplicasApplyingTheSameChangesInAnyOrderConvergeOnObservationTimes) {
  Policy policy = lww_policy();
  policy.source_priority.clear();
  policy.external_sources_win = false;
  const int cases = 2000;
  EXPECT_EQ(diverging_cases(policy, 20240612, cases), 0) << "of " << cases << " cases";
}

// The counterexamples to convergence of the earlier last_write_wins (a whole
// three-way merge per change), replayed: each now ends the same in any order.
TEST(ConflictConvergence, FormerCounterexamples) {
  Policy without_ranks = lww_policy();
  without_ranks.source_priority.clear();
  without_ranks.external_sources_win = false;
  for (const Policy &policy : {lww_policy(), without_ranks}) {
    SCOPED_TRACE(policy.source_priority.empty() ? "no ranks" : "default ranks");
    const auto run = [&](const std::vector<Change> &changes) {
      Replica r(policy);
      for (const Change &c : changes) r.apply(c);
      EXPECT_EQ(r.conflicts(), 0);
      return r.state();
    };
    const Change shopify{J(R"({"c":2})"), "shopify", kT0 + 1 * kSec};
    const Change manual{J(R"({"c":0})"), "manual", kT0 + 2 * kSec};
    EXPECT_EQ(run({manual, shopify}), run({shopify, manual}));
    EXPECT_EQ(run({manual, shopify}),
              policy.source_priority.empty() ? canon(R"({"c":0})") : canon(R"({"c":2})"));

    const Change s1{J(R"({"on_hand":3})"), "shopify", kT0 + 1 * kSec};
    const Change a2{J(R"({"b":3})"), "amazon", kT0 + 2 * kSec};
    const Change a3{J(R"({"on_hand":0})"), "amazon", kT0 + 3 * kSec};
    const std::string first = run({s1, a2, a3});
    for (const auto &order : std::vector<std::vector<Change>>{
             {s1, a3, a2}, {a2, s1, a3}, {a2, a3, s1}, {a3, s1, a2}, {a3, a2, s1}})
      EXPECT_EQ(run(order), first);
  }
}

// ---------------------------------------------------------------------------
// Rules served to SQL: vocabularies, last_write_wins between whole changes
// (ves.resolve_conflict), and reservations win over adjustments.

namespace {

conflict::Side side(std::string_view state, const char *source, std::int64_t at) {
  return {J(state), source, at};
}

template <typename T>
std::vector<std::string> names_of(const std::vector<T> &list) {
  std::vector<std::string> out;
  for (T x : list) out.push_back(conflict::name(x));
  return out;
}

}  // namespace

TEST(ConflictVocabulary, ListsEveryNameOnceAndParsesItBack) {
  EXPECT_EQ(names_of(conflict::conflict_types()),
            V({"version_mismatch", "concurrent_edit", "deleted_reference",
               "cross_platform_mismatch", "reservation_conflict"}));
  EXPECT_EQ(names_of(conflict::strategies()),
            V({"accept_local", "accept_remote", "merge", "manual", "last_write_wins"}));
  for (Strategy s : conflict::strategies())
    EXPECT_EQ(conflict::parse_strategy(conflict::name(s)), s);
  // A person resolving a conflict does what "manual" leaves to them.
  EXPECT_EQ(names_of(conflict::resolutions()),
            V({"accept_local", "accept_remote", "merge", "last_write_wins"}));
  for (Strategy s : conflict::resolutions())
    EXPECT_EQ(conflict::parse_resolution(conflict::name(s)), s);
  EXPECT_FALSE(conflict::parse_resolution("manual"));
  EXPECT_FALSE(conflict::parse_resolution("newest"));
  EXPECT_FALSE(conflict::parse_resolution(""));
  std::vector<std::string> rules = names_of(conflict::rules());
  std::vector<std::string> sorted = rules;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end())
      << "a rule listed twice";
  EXPECT_NE(std::find(rules.begin(), rules.end(), "reservations_win"), rules.end());
}

TEST(ConflictVocabulary, EveryRuleDecideReportsIsListed) {
  // Inputs that reach every rule decide() names (see the tests above).
  std::vector<std::string> listed = names_of(conflict::rules());
  Input merge_in = stale_base(R"({"a":1,"b":1})", R"({"a":2,"b":1})", R"({"a":1,"b":2})");
  Input conflict_in = stale_base(R"({"a":1})", R"({"a":2})", R"({"a":3})");
  std::vector<Input> inputs = {merge_in, conflict_in};
  for (Strategy s : conflict::strategies()) {
    Input in = conflict_in;
    in.policy.strategy = s;
    inputs.push_back(in);
    in.facts.deleted = true;
    inputs.push_back(in);
  }
  Input review = conflict_in;
  review.policy.review_window_us = 120 * kSec;
  inputs.push_back(review);
  Input stock = stale_base(R"({"on_hand":10})", R"({"on_hand":8})", R"({"on_hand":12})");
  inputs.push_back(stock);
  for (const Input &in : inputs) {
    Decision d = conflict::decide(in);
    EXPECT_NE(std::find(listed.begin(), listed.end(), d.rule), listed.end()) << d.rule;
  }
}

TEST(ConflictLastWriteWins, HigherRankedSourceWinsBeforeTheLaterObservation) {
  Policy p;  // shopify, amazon, ... ; platforms before "manual"
  conflict::Side shopify = side(R"({"price":1})", "shopify", kT0);
  conflict::Side later_manual = side(R"({"price":2})", "manual", kT0 + 60 * kSec);
  EXPECT_FALSE(conflict::remote_wins(p, &shopify, later_manual));
  EXPECT_TRUE(conflict::remote_wins(p, &later_manual, shopify));
  conflict::Side later_amazon = side(R"({"price":3})", "amazon", kT0 + 60 * kSec);
  EXPECT_FALSE(conflict::remote_wins(p, &shopify, later_amazon));
  p.source_priority = {"amazon", "shopify"};
  EXPECT_TRUE(conflict::remote_wins(p, &shopify, later_amazon));
}

TEST(ConflictLastWriteWins, SameRankTheLaterObservationWins) {
  Policy p;
  conflict::Side erp = side(R"({"price":1})", "erp", kT0);
  conflict::Side pos = side(R"({"price":2})", "pos", kT0 + 1);
  EXPECT_TRUE(conflict::remote_wins(p, &erp, pos));
  EXPECT_FALSE(conflict::remote_wins(p, &pos, erp));
  // Without source priority every source ranks the same, manual included.
  p.source_priority.clear();
  p.external_sources_win = false;
  conflict::Side shopify = side(R"({"price":1})", "shopify", kT0);
  conflict::Side manual = side(R"({"price":2})", "manual", kT0 + 1);
  EXPECT_TRUE(conflict::remote_wins(p, &shopify, manual));
  EXPECT_FALSE(conflict::remote_wins(p, &manual, shopify));
}

TEST(ConflictLastWriteWins, TiesBreakBySourceNameThenStateTheSameFromEitherSide) {
  Policy p;
  // Same rank, same time: the greater source name.
  conflict::Side erp = side(R"({"price":1})", "erp", kT0);
  conflict::Side pos = side(R"({"price":1})", "pos", kT0);
  EXPECT_TRUE(conflict::remote_wins(p, &erp, pos));
  EXPECT_FALSE(conflict::remote_wins(p, &pos, erp));
  // Same source too: the greater canonical state, whichever side it is on.
  conflict::Side low = side(R"({"price":2})", "erp", kT0);
  conflict::Side high = side(R"({"price":3})", "erp", kT0);
  EXPECT_TRUE(conflict::remote_wins(p, &low, high));
  EXPECT_FALSE(conflict::remote_wins(p, &high, low));
  // Identical changes: the local one stays.
  EXPECT_FALSE(conflict::remote_wins(p, &low, low));
}

TEST(ConflictLastWriteWins, NobodyLosesToAnyChange) {
  Policy p;
  conflict::Side early_manual = side(R"({})", "manual", 0);
  EXPECT_TRUE(conflict::remote_wins(p, nullptr, early_manual));
}

TEST(ConflictLastWriteWins, ResolutionPicksTheSideDecideWouldKeep) {
  Policy p;
  conflict::Side shopify = side(R"({"price":1})", "shopify", kT0);
  conflict::Side later_manual = side(R"({"price":2})", "manual", kT0 + 60 * kSec);
  EXPECT_EQ(conflict::resolution_effect(Strategy::last_write_wins, p, &shopify, later_manual),
            Strategy::accept_local);
  EXPECT_EQ(conflict::resolution_effect(Strategy::last_write_wins, p, &later_manual, shopify),
            Strategy::accept_remote);
  for (Strategy s : {Strategy::accept_local, Strategy::accept_remote, Strategy::merge})
    EXPECT_EQ(conflict::resolution_effect(s, p, &shopify, later_manual), s);

  // decide() on a deleted entity compares whole changes by the same order.
  for (bool remote_first : {false, true}) {
    Input in;
    in.facts.deleted = true;
    in.local = remote_first ? later_manual : shopify;
    in.remote = remote_first ? shopify : later_manual;
    in.policy.strategy = Strategy::last_write_wins;
    Decision d = conflict::decide(in);
    bool took_remote = canon(d.state) == canon(in.remote.state);
    EXPECT_EQ(took_remote, conflict::remote_wins(in.policy, &in.local, in.remote));
    EXPECT_EQ(canon(d.state), canon(R"({"price":1})"));  // shopify either way
  }
}

TEST(ConflictReservations, ACountAtOrAboveTheReservedUnitsApplies) {
  Policy p;
  for (std::int64_t wanted : {6, 7, 100}) {
    conflict::StockDecision d = conflict::decide_stock(p, 10, 6, wanted);
    EXPECT_EQ(d.type, Type::none);
    EXPECT_EQ(d.outcome, Outcome::applied);
    EXPECT_EQ(d.rule, conflict::Rule::none);
    EXPECT_EQ(d.on_hand, wanted);
  }
}

TEST(ConflictReservations, ReservationsWinStopTheCountAtTheReservedUnits) {
  Policy p;
  ASSERT_TRUE(p.reservations_win);
  conflict::StockDecision d = conflict::decide_stock(p, 10, 6, 2);
  EXPECT_EQ(d.type, Type::reservation_conflict);
  EXPECT_EQ(d.outcome, Outcome::resolved);
  EXPECT_STREQ(conflict::name(d.rule), "reservations_win");
  EXPECT_EQ(d.on_hand, 6);
}

TEST(ConflictReservations, WithoutReservationsWinAPersonDecides) {
  Policy p = conflict::parse_policy(J(R"({"reservations_win": false})"));
  conflict::StockDecision d = conflict::decide_stock(p, 10, 6, 5);
  EXPECT_EQ(d.type, Type::reservation_conflict);
  EXPECT_EQ(d.outcome, Outcome::conflict);
  EXPECT_STREQ(conflict::name(d.rule), "manual");
  EXPECT_EQ(d.on_hand, 10);  // unchanged until then
}
