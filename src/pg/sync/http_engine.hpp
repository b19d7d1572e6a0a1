// HTTP transfers for the sync worker: libcurl's multi interface driven from
// a Postgres WaitEventSet, so a latch (commit wake-up, signal), postmaster
// death and network readiness all end the same wait.
//
// curl's sockets are watched through one private epoll descriptor, which is
// itself a socket in the WaitEventSet: the wait always happens in Postgres.
// Transfers run outside any transaction; callers record results afterwards.
#pragma once

#include "core/delivery/http_request.hpp"
#include "core/delivery/rate_limiter.hpp"
#include "pg/base/postgres.hpp"
#include "pg/sync/clock.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pgves::pg {

struct HttpResult {
  std::uint64_t tag = 0;
  long status = 0;               // 0 when no HTTP response arrived
  bool transport_error = false;  // connection refused/reset, timeout, ...
  std::string error;             // curl's message for transport errors
  std::string retry_after;       // the Retry-After header, if any
  std::string rate_limit;        // the x-amzn-RateLimit-Limit header, if any
  std::string excerpt;           // the first bytes of the response body
  double elapsed_ms = 0;
};

class HttpEngine;

// Calls of another kind that share an engine's wait: libpq calls to a remote
// pg_ves (remote_pg.hpp). Their sockets are watched beside curl's, and they
// finish into the same take_completed(), under their own tags.
class SideCalls {
 public:
  virtual ~SideCalls() = default;
  // After every wait: moves on the calls whose sockets are in ready (or
  // whose deadline passed) and completes the finished ones.
  virtual void progress(HttpEngine &engine, const std::vector<int> &ready) = 0;
  // The steady-clock ms by which progress must run at the latest; -1: none.
  virtual std::int64_t deadline_ms() const = 0;
  virtual int in_flight() const = 0;
};

class HttpEngine {
 public:
  HttpEngine();
  ~HttpEngine();
  HttpEngine(const HttpEngine &) = delete;
  HttpEngine &operator=(const HttpEngine &) = delete;

  // max_body: keep up to that many bytes of the answer in excerpt (at
  // least the default 16 kB; a pulled page needs all of it).
  void submit(std::uint64_t tag, const core::HttpRequest &request, long timeout_ms,
              size_t max_body = 0);
  int in_flight() const;

  // Waits up to timeout_ms (or less, when curl needs to run sooner) and runs
  // whatever transfers are ready. Returns true when the process latch was set
  // (it is reset); the caller checks for interrupts and new work.
  bool wait(long timeout_ms);

  std::vector<HttpResult> take_completed();

  // The engine's side calls (created by their owner on first use; destroyed
  // with the engine, before its wait set).
  SideCalls *side_calls() const;
  void set_side_calls(std::unique_ptr<SideCalls> calls);
  // A side call's socket: watched for reading, and for writing too when
  // write; unwatch before the socket is closed.
  void watch(int fd, bool write);
  void unwatch(int fd);
  // A side call's answer, for take_completed().
  void complete(HttpResult result);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sends requests at once on a private engine and waits for all of them
// (checking for interrupts): results in the order of requests. For the rare
// calls made outside the deliverer's loop (a token renewal, a read of
// platform counts); a latch set meanwhile is set again for the caller.
std::vector<HttpResult> perform_all(const std::vector<core::HttpRequest> &requests, long timeout_ms,
                                    size_t max_body = 0);

// How perform_paced sends: no faster than `bucket` allows (nullptr: no
// limit; the caller keeps it across calls), at most concurrency in flight,
// and none started after deadline_us (steady clock; 0: none). Without
// wait_for_tokens it never waits for the bucket alone: once the bucket is
// empty and nothing is in flight, it stops (the sync worker's reads, whose
// waiting would hold up every destination's deliveries).
struct Pace {
  core::TokenBucket *bucket = nullptr;
  std::size_t concurrency = 0;  // 0: no limit
  std::int64_t deadline_us = 0;
  bool wait_for_tokens = true;
};

// perform_all within a destination's limits: requests start in order as
// the pace allows. Returns how many were sent (a prefix of `requests`);
// out[i] holds the result of each of those.
std::size_t perform_paced(const std::vector<core::HttpRequest> &requests, long timeout_ms,
                          const Pace &pace, std::vector<HttpResult> *out, size_t max_body = 0);

}  // namespace pgves::pg
