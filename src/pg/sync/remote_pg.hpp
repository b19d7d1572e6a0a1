// Calls to another PostgreSQL (a pg_ves database) over libpq, for the
// ves_postgres destination kind (pushes: ves.sequence_events) and pulls.
//
// A connection is kept per destination in this process and opened again
// when it failed or its conninfo changed. Calls are synchronous, bounded by
// the destination's timeout_ms: connect_timeout (whole seconds, at least 2,
// as libpq allows) and statement_timeout on the remote. They run outside
// any transaction of this backend. Nothing here raises a PostgreSQL error:
// failures come back as a Failure, whose message never holds the password
// (libpq's own words, with any occurrence of the password masked).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pgves::pg::remote_pg {

struct Target {
  int destination_id = 0;       // the key of the kept connection
  const std::string &conninfo;  // libpq keyword/value string or URI, secret
  long timeout_ms = 30000;
};

struct Failure {
  // Worth trying again later: the connection failed or broke, a timeout,
  // the remote shutting down, out of resources, a serialization failure.
  // Otherwise permanent: authentication refused, the remote's own refusal
  // (pg_ves SQLSTATEs VE..., class 42, ...).
  bool retryable = false;
  std::string sqlstate;  // the remote's SQLSTATE, "" when none (connection level)
  std::string message;   // what went wrong, without the password
};

struct Result {
  std::optional<std::string> text;  // the value of the single column of the single row
  std::optional<Failure> failure;
};

// Runs sql (one statement, parameters $1..$n as text) on the target and
// returns the text of its single result value (e.g. a jsonb).
Result call_json(const Target &target, const std::string &sql,
                 const std::vector<std::string> &params);

// Closes the kept connection of a destination (it was dropped or changed),
// or every one when destination_id is 0.
void forget(int destination_id);

}  // namespace pgves::pg::remote_pg
