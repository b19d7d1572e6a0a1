// Calls to another PostgreSQL (a pg_ves database) over libpq, for the
// ves_postgres destination kind (pushes: ves.sequence_events) and pulls.
//
// A connection is kept per destination in this process and opened again
// when it failed or its conninfo changed. Calls use libpq's non-blocking
// interface on an HttpEngine: the sync worker goes on delivering while one
// connects or waits for its answer. Calls to one destination run one at a
// time on its connection, in the order started. Each is bounded by the
// destination's timeout_ms: a connection must be up within it (at least
// 2 s), the remote runs the statement under that statement_timeout, and a
// remote that stays silent a second longer loses the connection. They run
// outside any transaction of this backend. Nothing here raises a
// PostgreSQL error: failures come back in the answer, whose text never
// holds the password (libpq's own words, with any occurrence of the
// password masked).
#pragma once

#include "pg/sync/http_engine.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace pgves::pg::remote_pg {

struct Target {
  int destination_id = 0;       // the key of the kept connection
  const std::string &conninfo;  // libpq keyword/value string or URI, secret
  long timeout_ms = 30000;
};

// Starts running sql (one statement, parameters $1..$n as text) on the
// target. The text of its single result value (e.g. a jsonb) comes out of
// engine.take_completed() under tag, as an HttpResult:
// - status 200, excerpt the value: the call succeeded;
// - transport_error, error "remote pg_ves: [SQLSTATE: ]message": worth
//   trying again later (the connection failed or broke, a timeout, the
//   remote shutting down or out of resources, a serialization failure);
// - status core::ves_postgres_refused, excerpt "[SQLSTATE: ]message":
//   permanent (authentication refused, the remote's own refusal: pg_ves
//   SQLSTATEs VE..., class 42, ...).
void start(HttpEngine &engine, std::uint64_t tag, const Target &target, const std::string &sql,
           const std::vector<std::string> &params);

// The same call, waited for in this backend (checking for interrupts).
HttpResult call(const Target &target, const std::string &sql,
                const std::vector<std::string> &params);

// Why pg_ves will not use a conninfo (message and hint; both empty when it
// will): one naming a service (service=...), whose host a service file sets
// out of the worker's sight, or one making libpq read the server's files
// (passfile, sslcert, sslkey, sslpassword). Checked when a destination is
// written and before each connection.
struct Refusal {
  std::string message, hint;
};
Refusal conninfo_refusal(const std::string &conninfo);

// Closes the kept connection of a destination (it was dropped or changed),
// or every one when destination_id is 0; one in use is closed when its
// call ends.
void forget(int destination_id);

}  // namespace pgves::pg::remote_pg
