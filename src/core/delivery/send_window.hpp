// How the delivery worker shares its window of claimed rows among
// destinations, so one that never answers cannot hold every slot while its
// requests wait for their timeout and starve the others.
#pragma once

#include <vector>

namespace pgves::core {

// One destination as the claim sees it.
struct DestinationLoad {
  int concurrency = 1;       // its cap on requests in flight (>= 1)
  int rows_per_request = 1;  // rows one request carries at most (>= 1)
  int held = 0;              // rows it holds: in flight plus queued
  bool ready = true;         // may send now: not paused, throttled or open-circuited
  bool has_work = true;      // rows may be waiting for it (unknown counts as yes)
};

// The rows each destination may claim now, index for index.
//
// Destinations that are ready and may have work share the window max-min
// fairly: each asks for twice its concurrency times the rows one of its
// requests carries (its requests in flight plus
// as many ready to follow) and none gets more than an equal share while
// another still wants some; what one cannot use goes to the others. Rows held
// by the rest (paused, throttled, idle) count against the window first. The
// total is further limited to claim_batch, shared the same way. A
// destination never gets rows when it already holds its share, and one that
// holds more (it claimed while it was alone) does not shrink the others'
// shares: the window is then exceeded until its rows finish, rather than
// the others waiting for its timeouts.
std::vector<int> claim_quotas(const std::vector<DestinationLoad> &loads, int window,
                              int claim_batch);

// Whether a claim is worth its transaction now: a destination that may send
// holds nothing and may claim, or the quotas add up to at least a quarter of
// what the claiming destinations may hold in all.
bool claim_worthwhile(const std::vector<DestinationLoad> &loads, const std::vector<int> &quotas);

// Max-min fair division of `capacity` among `demands` (negative counts as
// 0): the result never exceeds a demand, sums to min(capacity, total demand),
// and no share is raised above another's unless that other's demand is met.
std::vector<int> fair_shares(const std::vector<int> &demands, int capacity);

}  // namespace pgves::core
