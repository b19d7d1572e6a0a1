// The delivery worker's scheduling decisions, apart from PostgreSQL: which
// claimed row of which destination goes next, whether a destination may send
// now, how much each may claim, what an attempt's outcome means for the row
// and for its destination, and when the worker must look again.
//
// The scheduler composes the per-destination pieces (a concurrency cap,
// TokenBucket, CircuitBreaker, RetryPolicy, a Retry-After throttle) with the
// window's fair share (claim_quotas). Rows are outbox row ids; the caller
// keeps what it sends and records. Rows claimed for a destination are sent in
// the order they were queued: the claim queues them in event position order
// and never two open rows of one entity, so each entity's events go out in
// order. Times are the caller's monotonic clock in milliseconds; randomness
// (backoff jitter) is passed in.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "core/delivery/circuit_breaker.hpp"
#include "core/delivery/delivery_outcome.hpp"
#include "core/delivery/rate_limiter.hpp"
#include "core/delivery/retry_policy.hpp"

namespace pgves::core {

// A destination's sending limits, as configured.
struct SendLimits {
  int concurrency = 16;      // requests in flight at most
  int rows_per_request = 1;  // rows one request carries at most (a batching kind)
  double rate_per_s = 0;     // token bucket; <= 0: unlimited
  double burst = 1;
  int breaker_threshold = 5;
  std::int64_t breaker_cooldown_ms = 30000;
  RetryPolicy retry;
  bool paused = false;
};

// What becomes of a row after an attempt.
struct RowDecision {
  enum class Status { synced, failed, dead };
  enum class Why {
    none,       // synced, or failed with attempts left
    exhausted,  // dead: its last attempt failed
    permanent,  // dead: the destination rejected it
    gone,       // dead: the destination is gone (and now paused)
  };
  Status status = Status::synced;
  Why why = Why::none;
  int attempts = 0;           // made so far, this one included
  std::int64_t delay_ms = 0;  // failed: until the next attempt
};

const char *to_string(RowDecision::Status status);

class Scheduler {
 public:
  // Applies a destination's limits, keeping what it holds, its breaker and
  // its bucket's spent tokens; adds it when new.
  void configure(int destination, const SendLimits &limits);
  // Forgets a destination and its queued rows.
  void remove(int destination);
  bool knows(int destination) const { return lanes_.count(destination) != 0; }

  // --- claiming --------------------------------------------------------------

  struct ClaimPlan {
    std::vector<std::pair<int, int>> quotas;  // destination, rows; in destination order
    bool worthwhile = false;                  // see claim_worthwhile
  };
  // What each destination (or only `only`, when not 0) may claim now:
  // claim_quotas over the window, at most min(claim_batch, max_rows) rows.
  ClaimPlan plan_claim(int window, int claim_batch, std::int64_t max_rows, int only,
                       std::int64_t now_ms) const;
  // A claim for `destination` asked for `asked` rows and got `got`: fewer
  // means nothing more waits for it until something changes.
  void claimed(int destination, int asked, int got);
  // Queues a claimed row behind the destination's others.
  void enqueue(int destination, std::int64_t row);
  // Something may have queued rows for any destination (a commit, a poll).
  void expect_work();
  // Whether a scheduled retry is due (and forgets it): every destination may
  // have work again.
  bool take_retry_due(std::int64_t now_ms);
  // Whether claiming may find something for a destination that may send.
  bool more_work(int only, std::int64_t now_ms) const;

  // --- sending ---------------------------------------------------------------

  struct Next {
    int destination;
    std::int64_t row;
  };
  // The next row to send now, taken off its queue: the first destination in
  // order whose queue is not empty, with room under its concurrency cap, not
  // throttled, with a token in its bucket and its breaker allowing a request
  // (in half-open, this is the probe). Nothing when no destination may send.
  std::optional<Next> next(std::int64_t now_ms);
  // Up to `max` more queued rows of `destination`, taken off its queue in
  // order, to share the request of the row next() just returned (a kind
  // that sends many rows per request). They take no token of their own.
  std::vector<std::int64_t> take_more(int destination, std::size_t max);
  // The row returned by next() is in flight / has come back.
  void started(int destination);
  void finished(int destination);
  // Puts a row taken off the queue back at its head (it could not be sent
  // yet); its token is spent.
  void requeue_front(int destination, std::int64_t row);
  // A held destination sends nothing until it is released (its access token
  // is being renewed); it still claims.
  void hold(int destination, bool held);

  // --- outcomes --------------------------------------------------------------

  // An answer (or a transport error) for a row that had `attempts_before`
  // attempts. `http_status` is 0 without a response.
  RowDecision on_answer(int destination, const Classified &classified, long http_status,
                        int attempts_before, std::int64_t now_ms, double random01);
  // The same decision for another row of a request whose answer on_answer()
  // has already counted for the destination's health (its breaker and
  // throttle): a shared request is one success or failure, not one per row.
  RowDecision on_shared_answer(int destination, const Classified &classified, int attempts_before,
                               std::int64_t now_ms, double random01);
  // A row that failed in the worker itself (a configuration it cannot use, an
  // event it cannot export, a transfer it could not start): retried with the
  // destination's backoff, dead after its last attempt.
  RowDecision on_local_failure(int destination, int attempts_before, std::int64_t now_ms,
                               double random01);
  // Takes every queued row of a destination off its queue (it is paused now;
  // they go back unsent).
  std::vector<std::int64_t> drain(int destination);

  // --- state -----------------------------------------------------------------

  // May send now: not paused, throttled or with its circuit open.
  bool ready(int destination, std::int64_t now_ms) const;
  CircuitBreaker::State breaker_state(int destination, std::int64_t now_ms) const;
  int in_flight(int destination) const;
  int queued() const;
  // How long the caller may sleep before a queued row or a retry needs
  // attention; at most poll_ms.
  long idle_timeout_ms(long poll_ms, std::int64_t now_ms) const;

 private:
  struct Lane {
    SendLimits limits;
    TokenBucket bucket;
    CircuitBreaker breaker;
    int in_flight = 0;
    bool has_work =
        true;  // rows may be waiting: its last claim came back full, or something changed
    std::int64_t throttled_until_ms = 0;
    bool held = false;
    std::deque<std::int64_t> queue;
  };
  static bool ready(const Lane &lane, std::int64_t now_ms);
  Lane &lane(int destination) { return lanes_[destination]; }
  RowDecision retry_or_dead(Lane &l, const Classified &classified, int attempts,
                            std::int64_t now_ms, double random01);

  std::map<int, Lane> lanes_;
  std::int64_t next_retry_ms_ = INT64_MAX;
};

}  // namespace pgves::core
