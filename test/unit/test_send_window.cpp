#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "core/delivery/send_window.hpp"

using pgves::core::claim_quotas;
using pgves::core::claim_worthwhile;
using pgves::core::DestinationLoad;
using pgves::core::fair_shares;

namespace {
int sum(const std::vector<int> &v) { return std::accumulate(v.begin(), v.end(), 0); }
DestinationLoad load(int concurrency, int held, bool ready = true, bool has_work = true) {
  DestinationLoad l;
  l.concurrency = concurrency;
  l.held = held;
  l.ready = ready;
  l.has_work = has_work;
  return l;
}
}  // namespace

TEST(FairShares, EqualDemandsSplitEvenly) {
  EXPECT_EQ(fair_shares({32, 32}, 64), (std::vector<int>{32, 32}));
  EXPECT_EQ(fair_shares({100, 100}, 64), (std::vector<int>{32, 32}));
  EXPECT_EQ(fair_shares({100, 100, 100}, 64), (std::vector<int>{22, 21, 21}));
}

TEST(FairShares, WhatOneCannotUseGoesToTheOthers) {
  EXPECT_EQ(fair_shares({5, 100}, 64), (std::vector<int>{5, 59}));
  EXPECT_EQ(fair_shares({0, 10, 100, 3}, 50), (std::vector<int>{0, 10, 37, 3}));
}

TEST(FairShares, NeverAboveDemandNorCapacity) {
  EXPECT_EQ(fair_shares({1, 2, 3}, 1000), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(fair_shares({-4, 7}, 3), (std::vector<int>{0, 3}));
  EXPECT_EQ(fair_shares({10, 10}, 0), (std::vector<int>{0, 0}));
  EXPECT_EQ(fair_shares({10, 10}, -5), (std::vector<int>{0, 0}));
  EXPECT_TRUE(fair_shares({}, 10).empty());
  for (int cap = 0; cap < 200; cap += 7) {
    std::vector<int> demands{3, 50, 17, 0, 90};
    std::vector<int> s = fair_shares(demands, cap);
    EXPECT_EQ(sum(s), std::min(cap, sum(demands)));
    for (size_t i = 0; i < s.size(); ++i) EXPECT_LE(s[i], demands[i]);
  }
}

// A destination whose requests all hang holds its share and no more: the
// other one can still claim the rest of the window.
TEST(ClaimQuotas, AStuckDestinationKeepsOnlyItsShare) {
  // Both start empty: each may claim twice its concurrency.
  EXPECT_EQ(claim_quotas({load(16, 0), load(16, 0)}, 64, 256), (std::vector<int>{32, 32}));
  // The silent one holds its 32 (16 hanging, 16 queued): it gets nothing
  // more; the healthy one refills what it sent.
  EXPECT_EQ(claim_quotas({load(16, 32), load(16, 10)}, 64, 256), (std::vector<int>{0, 22}));
  // Even when the silent one holds the whole window (it was alone when it
  // claimed), the healthy one still gets its share.
  EXPECT_EQ(claim_quotas({load(16, 64), load(16, 0)}, 64, 256), (std::vector<int>{0, 32}));
}

TEST(ClaimQuotas, ConcurrencyCapsAShare) {
  // A destination with concurrency 2 wants 4 rows; the rest of the window
  // goes to the one that can use it.
  EXPECT_EQ(claim_quotas({load(2, 0), load(64, 0)}, 64, 256), (std::vector<int>{4, 60}));
  // One destination alone may fill the window up to twice its concurrency.
  EXPECT_EQ(claim_quotas({load(16, 0)}, 64, 256), (std::vector<int>{32}));
  EXPECT_EQ(claim_quotas({load(1024, 0)}, 64, 256), (std::vector<int>{64}));
}

TEST(ClaimQuotas, DestinationsThatCannotSendGetNothing) {
  // Paused, throttled or open-circuited: nothing new; what it holds still
  // counts against the window.
  EXPECT_EQ(claim_quotas({load(16, 40, false), load(64, 0)}, 64, 256), (std::vector<int>{0, 24}));
  // Known to have nothing waiting: its share goes to the others.
  EXPECT_EQ(claim_quotas({load(16, 0, true, false), load(64, 0)}, 64, 256),
            (std::vector<int>{0, 64}));
  EXPECT_EQ(claim_quotas({load(16, 0, false), load(16, 0, true, false)}, 64, 256),
            (std::vector<int>{0, 0}));
}

TEST(ClaimQuotas, ClaimBatchIsSharedToo) {
  EXPECT_EQ(claim_quotas({load(64, 0), load(64, 0)}, 1000, 10), (std::vector<int>{5, 5}));
  EXPECT_EQ(claim_quotas({load(2, 0), load(64, 0)}, 1000, 10), (std::vector<int>{4, 6}));
  EXPECT_EQ(claim_quotas({load(64, 0)}, 1000, 0), (std::vector<int>{0}));
}

TEST(ClaimQuotas, NeverExceedsTheWindow) {
  for (int a = 0; a <= 70; a += 5)
    for (int b = 0; b <= 70; b += 5) {
      std::vector<DestinationLoad> loads{load(16, a), load(8, b), load(32, 0, false)};
      std::vector<int> q = claim_quotas(loads, 64, 256);
      // Within their shares, claims never take the total past the window.
      if (a <= 32 && b <= 16) {
        EXPECT_LE(sum(q) + a + b, 64) << a << " " << b;
      }
      for (int x : q) EXPECT_GE(x, 0);
      EXPECT_LE(q[0] + a, std::max(a, 32));
      EXPECT_LE(q[1] + b, std::max(b, 16));
    }
}

TEST(ClaimWorthwhile, ClaimsForAnIdleDestinationAtOnce) {
  EXPECT_TRUE(claim_worthwhile({load(16, 32), load(16, 0)}, {0, 1}));
  EXPECT_FALSE(claim_worthwhile({load(16, 32), load(16, 31)}, {0, 1}));
  EXPECT_TRUE(claim_worthwhile({load(16, 32), load(16, 24)}, {0, 8}));
  EXPECT_FALSE(claim_worthwhile({load(16, 32), load(16, 0, false)}, {0, 0}));
  EXPECT_FALSE(claim_worthwhile({}, {}));
}

TEST(ClaimQuotas, BatchingKindsAskForTheRowsTheirRequestsCarry) {
  // Concurrency 4: one row per request asks for 8 rows; 25 rows per request
  // ask for 200, limited by the window and the claim batch as usual.
  DestinationLoad single = load(4, 0);
  DestinationLoad batching = load(4, 0);
  batching.rows_per_request = 25;
  EXPECT_EQ(claim_quotas({single}, 1000, 1000), (std::vector<int>{8}));
  EXPECT_EQ(claim_quotas({batching}, 1000, 1000), (std::vector<int>{200}));
  EXPECT_EQ(claim_quotas({batching}, 64, 256), (std::vector<int>{64}));
  EXPECT_EQ(claim_quotas({single, batching}, 64, 256), (std::vector<int>{8, 56}));
}
