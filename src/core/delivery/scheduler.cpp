#include "core/delivery/scheduler.hpp"

#include <algorithm>

#include "core/delivery/send_window.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

const char *to_string(RowDecision::Status status) {
  switch (status) {
    case RowDecision::Status::synced:
      return "synced";
    case RowDecision::Status::failed:
      return "failed";
    case RowDecision::Status::dead:
      return "dead";
  }
  return "failed";
}

void Scheduler::configure(int destination, const SendLimits &limits) {
  Lane &l = lane(destination);
  l.limits = limits;
  l.bucket.reconfigure(limits.rate_per_s, limits.burst);
  l.breaker.reconfigure(limits.breaker_threshold, limits.breaker_cooldown_ms);
}

void Scheduler::remove(int destination) { lanes_.erase(destination); }

bool Scheduler::ready(const Lane &l, std::int64_t now_ms) {
  return !l.limits.paused && now_ms >= l.throttled_until_ms &&
         l.breaker.state(now_ms) != CircuitBreaker::State::open;
}

bool Scheduler::ready(int destination, std::int64_t now_ms) const {
  auto it = lanes_.find(destination);
  return it != lanes_.end() && ready(it->second, now_ms);
}

Scheduler::ClaimPlan Scheduler::plan_claim(int window, int claim_batch, std::int64_t max_rows,
                                           int only, std::int64_t now_ms) const {
  std::vector<DestinationLoad> loads;
  std::vector<int> ids;
  for (const auto &entry : lanes_) {
    if (only && entry.first != only) continue;
    const Lane &l = entry.second;
    DestinationLoad load;
    load.concurrency = l.limits.concurrency;
    load.rows_per_request = l.limits.rows_per_request;
    load.held = l.in_flight + static_cast<int>(l.queue.size());
    load.ready = ready(l, now_ms);
    load.has_work = l.has_work;
    loads.push_back(load);
    ids.push_back(entry.first);
  }
  int batch =
      static_cast<int>(std::min<std::int64_t>(claim_batch, std::max<std::int64_t>(0, max_rows)));
  std::vector<int> quotas = claim_quotas(loads, window, batch);
  ClaimPlan plan;
  plan.worthwhile = claim_worthwhile(loads, quotas);
  for (size_t i = 0; i < ids.size(); ++i)
    if (quotas[i] > 0) plan.quotas.emplace_back(ids[i], quotas[i]);
  return plan;
}

void Scheduler::claimed(int destination, int asked, int got) {
  lane(destination).has_work = got >= asked;
}

void Scheduler::enqueue(int destination, std::int64_t row) {
  lane(destination).queue.push_back(row);
}

void Scheduler::expect_work() {
  for (auto &entry : lanes_) entry.second.has_work = true;
}

bool Scheduler::take_retry_due(std::int64_t now_ms) {
  if (next_retry_ms_ > now_ms) return false;
  next_retry_ms_ = INT64_MAX;
  return true;
}

bool Scheduler::more_work(int only, std::int64_t now_ms) const {
  for (const auto &entry : lanes_)
    if (entry.second.has_work && ready(entry.second, now_ms) && (!only || entry.first == only))
      return true;
  return false;
}

std::optional<Scheduler::Next> Scheduler::next(std::int64_t now_ms) {
  std::int64_t now_us = now_ms * 1000;
  for (auto &entry : lanes_) {
    Lane &l = entry.second;
    if (!l.queue.empty() && !l.held && l.in_flight < l.limits.concurrency &&
        now_ms >= l.throttled_until_ms && l.bucket.wait_us(now_us) == 0 &&
        l.breaker.allow(now_ms)) {
      l.bucket.try_take(now_us);
      std::int64_t row = l.queue.front();
      l.queue.pop_front();
      return Next{entry.first, row};
    }
  }
  return std::nullopt;
}

std::vector<std::int64_t> Scheduler::take_more(int destination, std::size_t max) {
  Lane &l = lane(destination);
  std::vector<std::int64_t> rows;
  while (rows.size() < max && !l.queue.empty()) {
    rows.push_back(l.queue.front());
    l.queue.pop_front();
  }
  return rows;
}

void Scheduler::started(int destination) { ++lane(destination).in_flight; }

void Scheduler::finished(int destination) { --lane(destination).in_flight; }

void Scheduler::requeue_front(int destination, std::int64_t row) {
  lane(destination).queue.push_front(row);
}

void Scheduler::hold(int destination, bool held) { lane(destination).held = held; }

RowDecision Scheduler::retry_or_dead(Lane &l, const Classified &classified, int attempts,
                                     std::int64_t now_ms, double random01) {
  RowDecision d;
  d.attempts = attempts;
  if (attempts >= l.limits.retry.max_attempts) {
    d.status = RowDecision::Status::dead;
    d.why = RowDecision::Why::exhausted;
  } else {
    d.status = RowDecision::Status::failed;
    d.delay_ms = next_delay_ms(l.limits.retry, attempts, classified, random01);
    next_retry_ms_ = std::min(next_retry_ms_, now_ms + d.delay_ms);
  }
  return d;
}

RowDecision Scheduler::on_answer(int destination, const Classified &classified, long http_status,
                                 int attempts_before, std::int64_t now_ms, double random01) {
  // The destination's health; what becomes of the row is the same for
  // every row of a request (on_shared_answer).
  Lane &l = lane(destination);
  switch (classified.outcome) {
    case Outcome::synced:
    case Outcome::permanent:  // it answered
      l.breaker.on_success();
      break;
    case Outcome::retry:
      if (http_status == 429 || (http_status == 503 && classified.retry_after_ms >= 0)) {
        // Throttled: the endpoint is alive; hold the whole destination back
        // as long as it asked. A bare 503 is a failure like any 5xx.
        if (classified.retry_after_ms > 0)
          l.throttled_until_ms = std::max(l.throttled_until_ms, now_ms + classified.retry_after_ms);
      } else {
        l.breaker.on_failure(now_ms);
      }
      break;
    case Outcome::gone:
      break;
  }
  return on_shared_answer(destination, classified, attempts_before, now_ms, random01);
}

RowDecision Scheduler::on_shared_answer(int destination, const Classified &classified,
                                        int attempts_before, std::int64_t now_ms, double random01) {
  Lane &l = lane(destination);
  RowDecision d;
  d.attempts = attempts_before + 1;
  switch (classified.outcome) {
    case Outcome::synced:
      l.has_work = true;
      d.status = RowDecision::Status::synced;
      break;
    case Outcome::retry:
      d = retry_or_dead(l, classified, d.attempts, now_ms, random01);
      if (d.status == RowDecision::Status::dead) l.has_work = true;
      break;
    case Outcome::permanent:
      l.has_work = true;
      d.status = RowDecision::Status::dead;
      d.why = RowDecision::Why::permanent;
      break;
    case Outcome::gone:
      l.limits.paused = true;
      l.has_work = true;
      d.status = RowDecision::Status::dead;
      d.why = RowDecision::Why::gone;
      break;
  }
  return d;
}

RowDecision Scheduler::on_local_failure(int destination, int attempts_before, std::int64_t now_ms,
                                        double random01) {
  return retry_or_dead(lane(destination), Classified{Outcome::retry, -1}, attempts_before + 1,
                       now_ms, random01);
}

std::vector<std::int64_t> Scheduler::drain(int destination) {
  Lane &l = lane(destination);
  std::vector<std::int64_t> rows(l.queue.begin(), l.queue.end());
  l.queue.clear();
  return rows;
}

CircuitBreaker::State Scheduler::breaker_state(int destination, std::int64_t now_ms) const {
  auto it = lanes_.find(destination);
  return it == lanes_.end() ? CircuitBreaker::State::closed : it->second.breaker.state(now_ms);
}

int Scheduler::in_flight(int destination) const {
  auto it = lanes_.find(destination);
  return it == lanes_.end() ? 0 : it->second.in_flight;
}

int Scheduler::queued() const {
  int n = 0;
  for (const auto &entry : lanes_) n += static_cast<int>(entry.second.queue.size());
  return n;
}

long Scheduler::idle_timeout_ms(long poll_ms, std::int64_t now_ms) const {
  std::int64_t until = now_ms + poll_ms;
  if (next_retry_ms_ < until) until = next_retry_ms_;
  for (const auto &entry : lanes_) {
    const Lane &l = entry.second;
    // A held lane waits for its release, which an answer brings.
    if (l.queue.empty() || l.held) continue;
    if (l.throttled_until_ms > now_ms)
      until = std::min(until, l.throttled_until_ms);
    else if (l.breaker.state(now_ms) == CircuitBreaker::State::open)
      until = std::min(until, l.breaker.open_until_ms());
    else
      until = std::min(until,
                       now_ms + std::max<std::int64_t>(1, l.bucket.wait_us(now_ms * 1000) / 1000));
  }
  return static_cast<long>(std::max<std::int64_t>(0, until - now_ms));
}

}  // namespace pgves::core
