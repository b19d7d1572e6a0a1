#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/delivery/scheduler.hpp"

using pgves::core::CircuitBreaker;
using pgves::core::Classified;
using pgves::core::Outcome;
using pgves::core::RowDecision;
using pgves::core::Scheduler;
using pgves::core::SendLimits;

namespace {

SendLimits limits(int concurrency = 16) {
  SendLimits l;
  l.concurrency = concurrency;
  l.retry.jitter = 0;  // exact delays
  l.retry.base_ms = 500;
  l.retry.max_attempts = 5;
  return l;
}

const Classified kOk{Outcome::synced, -1};
const Classified kServerError{Outcome::retry, -1};

// Takes every row that may go now, marking each in flight.
std::vector<std::int64_t> send_all(Scheduler &s, std::int64_t now) {
  std::vector<std::int64_t> rows;
  while (auto n = s.next(now)) {
    s.started(n->destination);
    rows.push_back(n->row);
  }
  return rows;
}

}  // namespace

TEST(Scheduler, SendsEachDestinationsRowsInClaimOrder) {
  Scheduler s;
  s.configure(1, limits());
  s.configure(2, limits());
  for (std::int64_t row : {30, 10, 20}) s.enqueue(1, row);
  s.enqueue(2, 5);
  // Queued order, not row id order: the claim queues by event position.
  EXPECT_EQ(send_all(s, 0), (std::vector<std::int64_t>{30, 10, 20, 5}));
  EXPECT_FALSE(s.next(0).has_value());
  EXPECT_EQ(s.in_flight(1), 3);
}

TEST(Scheduler, ConcurrencyCapHoldsRowsUntilOneFinishes) {
  Scheduler s;
  s.configure(1, limits(2));
  for (std::int64_t row = 1; row <= 5; ++row) s.enqueue(1, row);
  EXPECT_EQ(send_all(s, 0), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(s.queued(), 3);
  s.finished(1);
  EXPECT_EQ(send_all(s, 0), (std::vector<std::int64_t>{3}));
}

TEST(Scheduler, RateLimitPacesRequests) {
  Scheduler s;
  SendLimits l = limits();
  l.rate_per_s = 10;  // one every 100 ms
  l.burst = 1;
  s.configure(1, l);
  for (std::int64_t row = 1; row <= 3; ++row) s.enqueue(1, row);
  EXPECT_EQ(send_all(s, 1000), (std::vector<std::int64_t>{1}));
  // The caller is told to come back when the next token is there.
  EXPECT_EQ(s.idle_timeout_ms(5000, 1000), 100);
  EXPECT_FALSE(s.next(1050).has_value());
  EXPECT_EQ(send_all(s, 1100), (std::vector<std::int64_t>{2}));
  EXPECT_EQ(send_all(s, 1200), (std::vector<std::int64_t>{3}));
}

TEST(Scheduler, BreakerOpensThenLetsOneProbeThrough) {
  Scheduler s;
  SendLimits l = limits();
  l.breaker_threshold = 2;
  l.breaker_cooldown_ms = 1000;
  s.configure(1, l);
  for (std::int64_t row = 1; row <= 6; ++row) s.enqueue(1, row);
  ASSERT_EQ(send_all(s, 0).size(), 6u);
  for (std::int64_t row = 3; row <= 6; ++row) s.enqueue(1, row + 10);
  for (int i = 0; i < 2; ++i) {
    s.finished(1);
    s.on_answer(1, kServerError, 500, 0, 10, 0.5);
  }
  EXPECT_EQ(s.breaker_state(1, 10), CircuitBreaker::State::open);
  EXPECT_FALSE(s.ready(1, 10));
  EXPECT_FALSE(s.next(10).has_value());
  // The retries fall due first (500 ms backoff); then the caller sleeps
  // until the cooldown ends.
  EXPECT_EQ(s.idle_timeout_ms(5000, 10), 500);
  EXPECT_TRUE(s.take_retry_due(600));
  EXPECT_EQ(s.idle_timeout_ms(5000, 600), 410);
  // Half-open: exactly one probe.
  EXPECT_EQ(s.breaker_state(1, 1010), CircuitBreaker::State::half_open);
  EXPECT_EQ(send_all(s, 1010), (std::vector<std::int64_t>{13}));
  // Its success closes the breaker; the rest flow.
  s.finished(1);
  EXPECT_EQ(s.on_answer(1, kOk, 200, 0, 1020, 0.5).status, RowDecision::Status::synced);
  EXPECT_EQ(s.breaker_state(1, 1020), CircuitBreaker::State::closed);
  EXPECT_EQ(send_all(s, 1020), (std::vector<std::int64_t>{14, 15, 16}));
}

TEST(Scheduler, FailuresBackOffAndDieAfterTheLastAttempt) {
  Scheduler s;
  s.configure(1, limits());
  RowDecision d = s.on_answer(1, kServerError, 500, 0, 0, 0.5);
  EXPECT_EQ(d.status, RowDecision::Status::failed);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.delay_ms, 500);
  EXPECT_EQ(s.on_answer(1, kServerError, 500, 2, 0, 0.5).delay_ms, 2000);
  // The retry wakes the caller, once.
  EXPECT_EQ(s.idle_timeout_ms(5000, 0), 500);
  EXPECT_FALSE(s.take_retry_due(499));
  EXPECT_TRUE(s.take_retry_due(500));
  EXPECT_FALSE(s.take_retry_due(600));
  d = s.on_answer(1, kServerError, 500, 4, 0, 0.5);
  EXPECT_EQ(d.status, RowDecision::Status::dead);
  EXPECT_EQ(d.why, RowDecision::Why::exhausted);
  // The worker's own failures back off the same way.
  d = s.on_local_failure(1, 1, 0, 0.5);
  EXPECT_EQ(d.status, RowDecision::Status::failed);
  EXPECT_EQ(d.delay_ms, 1000);
  EXPECT_EQ(s.on_local_failure(1, 4, 0, 0.5).why, RowDecision::Why::exhausted);
}

TEST(Scheduler, RetryAfterThrottlesTheDestinationWithoutTrippingTheBreaker) {
  Scheduler s;
  SendLimits l = limits();
  l.breaker_threshold = 1;
  s.configure(1, l);
  s.enqueue(1, 1);
  RowDecision d = s.on_answer(1, Classified{Outcome::retry, 3000}, 429, 0, 0, 0.5);
  EXPECT_EQ(d.status, RowDecision::Status::failed);
  EXPECT_EQ(d.delay_ms, 3000);
  EXPECT_EQ(s.breaker_state(1, 0), CircuitBreaker::State::closed);
  EXPECT_FALSE(s.ready(1, 2999));
  EXPECT_FALSE(s.next(2999).has_value());
  EXPECT_EQ(s.idle_timeout_ms(10000, 1000), 2000);
  EXPECT_TRUE(s.ready(1, 3000));
  EXPECT_EQ(send_all(s, 3000), (std::vector<std::int64_t>{1}));
}

TEST(Scheduler, GoneAndPermanentAnswers) {
  Scheduler s;
  s.configure(1, limits());
  EXPECT_EQ(s.on_answer(1, Classified{Outcome::permanent, -1}, 400, 0, 0, 0.5).why,
            RowDecision::Why::permanent);
  EXPECT_TRUE(s.ready(1, 0));
  s.enqueue(1, 7);
  s.enqueue(1, 8);
  RowDecision d = s.on_answer(1, Classified{Outcome::gone, -1}, 410, 0, 0, 0.5);
  EXPECT_EQ(d.status, RowDecision::Status::dead);
  EXPECT_EQ(d.why, RowDecision::Why::gone);
  // Paused: it claims nothing more, and its queue goes back.
  EXPECT_FALSE(s.ready(1, 0));
  EXPECT_FALSE(s.more_work(0, 0));
  EXPECT_EQ(s.drain(1), (std::vector<std::int64_t>{7, 8}));
  EXPECT_EQ(s.queued(), 0);
}

TEST(Scheduler, WindowIsSharedAmongDestinations) {
  Scheduler s;
  s.configure(1, limits(16));
  s.configure(2, limits(16));
  s.configure(3, limits(16));
  // Each asks for twice its concurrency; the window of 64 is shared.
  Scheduler::ClaimPlan plan = s.plan_claim(64, 256, 1000, 0, 0);
  EXPECT_TRUE(plan.worthwhile);
  EXPECT_EQ(plan.quotas, (std::vector<std::pair<int, int>>{{1, 22}, {2, 21}, {3, 21}}));
  // Only one destination (ves.push_events for one), and at most max_rows.
  plan = s.plan_claim(64, 256, 5, 2, 0);
  EXPECT_EQ(plan.quotas, (std::vector<std::pair<int, int>>{{2, 5}}));
  // A destination that holds rows gets less; a paused one gets none.
  for (std::int64_t row = 0; row < 20; ++row) s.enqueue(1, row);
  SendLimits paused = limits(16);
  paused.paused = true;
  s.configure(3, paused);
  plan = s.plan_claim(64, 256, 1000, 0, 0);
  EXPECT_EQ(plan.quotas, (std::vector<std::pair<int, int>>{{1, 12}, {2, 32}}));
}

TEST(Scheduler, ShortClaimMeansNoWorkUntilSomethingChanges) {
  Scheduler s;
  s.configure(1, limits());
  EXPECT_TRUE(s.more_work(0, 0));
  s.claimed(1, 32, 3);
  EXPECT_FALSE(s.more_work(0, 0));
  EXPECT_TRUE(s.plan_claim(64, 256, 1000, 0, 0).quotas.empty());
  s.expect_work();
  EXPECT_TRUE(s.more_work(0, 0));
  s.claimed(1, 32, 32);
  EXPECT_TRUE(s.more_work(0, 0));
  // A synced row lets its entity's next row go: there may be work again.
  s.claimed(1, 32, 0);
  s.on_answer(1, kOk, 200, 0, 0, 0.5);
  EXPECT_TRUE(s.more_work(0, 0));
}

TEST(Scheduler, ReconfiguringKeepsWhatADestinationHolds) {
  Scheduler s;
  s.configure(1, limits(1));
  s.enqueue(1, 1);
  s.enqueue(1, 2);
  EXPECT_EQ(send_all(s, 0), (std::vector<std::int64_t>{1}));
  s.configure(1, limits(4));
  EXPECT_EQ(s.in_flight(1), 1);
  EXPECT_EQ(send_all(s, 0), (std::vector<std::int64_t>{2}));
  s.remove(1);
  EXPECT_FALSE(s.knows(1));
  EXPECT_EQ(s.queued(), 0);
}

TEST(Scheduler, SharedRequestTakesQueuedRowsInOrderWithoutTokens) {
  Scheduler s;
  SendLimits l = limits();
  l.rate_per_s = 1;
  l.burst = 1;
  s.configure(1, l);
  for (std::int64_t row = 1; row <= 5; ++row) s.enqueue(1, row);
  auto first = s.next(0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->row, 1);
  // The rows behind it ride on the same request, in queue order.
  EXPECT_EQ(s.take_more(1, 3), (std::vector<std::int64_t>{2, 3, 4}));
  EXPECT_EQ(s.queued(), 1);
  // They took no token: the bucket is still empty for the next request.
  EXPECT_FALSE(s.next(0).has_value());
  EXPECT_EQ(s.take_more(1, 10), (std::vector<std::int64_t>{5}));
  EXPECT_TRUE(s.take_more(1, 10).empty());
}

TEST(Scheduler, SharedAnswerDecidesRowsButCountsOnceForTheBreaker) {
  Scheduler s;
  SendLimits l = limits();
  l.breaker_threshold = 2;
  s.configure(1, l);
  for (std::int64_t row = 1; row <= 3; ++row) s.enqueue(1, row);
  ASSERT_TRUE(s.next(0).has_value());
  s.take_more(1, 2);
  s.started(1);
  s.finished(1);
  // One failed request of three rows: every row is retried, the breaker
  // counts one failure and stays closed.
  EXPECT_EQ(s.on_answer(1, kServerError, 500, 0, 10, 0.5).status, RowDecision::Status::failed);
  for (int i = 0; i < 2; ++i) {
    RowDecision d = s.on_shared_answer(1, kServerError, 0, 10, 0.5);
    EXPECT_EQ(d.status, RowDecision::Status::failed);
    EXPECT_EQ(d.delay_ms, 500);
  }
  EXPECT_EQ(s.breaker_state(1, 10), CircuitBreaker::State::closed);
  // A row on its last attempt dies whatever the request's fate.
  EXPECT_EQ(s.on_shared_answer(1, kServerError, 4, 10, 0.5).status, RowDecision::Status::dead);
  EXPECT_EQ(s.on_shared_answer(1, kOk, 0, 10, 0.5).status, RowDecision::Status::synced);
}

TEST(Scheduler, HeldDestinationSendsNothingUntilReleasedAndKeepsItsOrder) {
  Scheduler s;
  s.configure(1, limits());
  s.configure(2, limits());
  for (std::int64_t row : {1, 2, 3}) s.enqueue(1, row);
  s.enqueue(2, 9);
  // Row 1 was taken, then found unsendable (its token is being renewed):
  // back at the head, and the destination held.
  auto first = s.next(0);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->row, 1);
  s.requeue_front(1, first->row);
  s.hold(1, true);
  // Another destination goes on; the held one waits without a wake-up of
  // its own (an answer releases it).
  EXPECT_EQ(send_all(s, 0), (std::vector<std::int64_t>{9}));
  EXPECT_EQ(s.queued(), 3);
  EXPECT_EQ(s.idle_timeout_ms(5000, 0), 5000);
  s.hold(1, false);
  EXPECT_EQ(send_all(s, 0), (std::vector<std::int64_t>{1, 2, 3}));
}
