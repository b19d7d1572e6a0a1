#include "mcp/database.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <utility>

#include "core/base/error.hpp"

namespace pgves::mcp {

namespace {

std::string trimmed(const char *s) {
  std::string out = s ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string field(const PGresult *r, int code) { return trimmed(PQresultErrorField(r, code)); }

constexpr const char *kReconnectHint =
    "Check the connection string (--dbname or the PG* environment) and that the server is up; "
    "pg_ves_mcp connects again on the next call.";

}  // namespace

Database::Database(std::string conninfo, std::optional<std::string> tenant, bool read_only)
    : conninfo_(std::move(conninfo)), tenant_(std::move(tenant)), read_only_(read_only) {}

Database::~Database() { close(); }

void Database::close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
}

std::optional<SqlError> Database::connect() {
  close();
  const char *keys[] = {"dbname", "fallback_application_name", nullptr};
  const char *values[] = {conninfo_.c_str(), "pg_ves_mcp", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    SqlError e{"08001", "could not connect to the database: " + trimmed(PQerrorMessage(conn_)), "",
               kReconnectHint};
    close();
    return e;
  }
  // The session's own settings, through set_config so that nothing given on
  // the command line is spliced into SQL. Every statement names ves.* and
  // relies on pg_catalog for the rest.
  std::vector<Param> params = {"search_path", "pg_catalog, pg_temp"};
  if (read_only_) {
    params.push_back("default_transaction_read_only");
    params.push_back("on");
  }
  if (tenant_) {
    params.push_back("ves.tenant_id");
    params.push_back(*tenant_);
  }
  std::string sql = "SELECT NULL";
  for (std::size_t i = 0; i < params.size(); i += 2)
    sql += ", pg_catalog.set_config($" + std::to_string(i + 1) + ", $" + std::to_string(i + 2) +
           ", false)";
  Outcome o = run(sql, params);
  if (!o.ok) {
    close();
    o.error.message = "could not set up the session: " + o.error.message;
    return o.error;
  }
  return std::nullopt;
}

// A connection whose server went away (a restart, a terminated backend) has
// its socket readable at EOF or with a FATAL message: read it, so that libpq
// notices before a statement is sent on it.
bool Database::alive() {
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) return false;
  pollfd p{PQsocket(conn_), POLLIN, 0};
  if (poll(&p, 1, 0) > 0) {
    PQconsumeInput(conn_);
    while (PGnotify *n = PQnotifies(conn_)) PQfreemem(n);
  }
  return PQstatus(conn_) == CONNECTION_OK;
}

Outcome Database::run(const std::string &sql, const std::vector<Param> &params) {
  std::vector<const char *> values;
  values.reserve(params.size());
  for (const Param &p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult *r = nullptr;
  if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0)) {
    // Wait for the result on the connection's socket and, for a
    // cancellation, on the watched descriptor.
    bool watching = watch_fd_ >= 0 && check_;
    while (PQisBusy(conn_)) {
      pollfd fds[2] = {{PQsocket(conn_), POLLIN, 0}, {watch_fd_, POLLIN, 0}};
      if (poll(fds, watching ? 2 : 1, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      const Watch w = watching && fds[1].revents ? check_() : Watch::keep_watching;
      if (w != Watch::keep_watching) watching = false;
      if (w == Watch::cancel) {
        if (PGcancel *c = PQgetCancel(conn_)) {
          char err[256];
          PQcancel(c, err, sizeof err);
          PQfreeCancel(c);
        }
      }
      if (fds[0].revents && !PQconsumeInput(conn_)) break;
    }
    r = PQgetResult(conn_);
    while (PGresult *extra = PQgetResult(conn_)) PQclear(extra);
  }
  Outcome o;
  const ExecStatusType status = PQresultStatus(r);
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
    o.ok = true;
    if (status == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0 &&
        !PQgetisnull(r, 0, 0)) {
      try {
        o.value = core::json::parse(PQgetvalue(r, 0, 0));
      } catch (const core::Error &e) {
        o.ok = false;
        o.error = {"XX000", std::string("pg_ves_mcp could not read the result: ") + e.what(), "",
                   ""};
      }
    }
  } else if (r) {
    o.error = {field(r, PG_DIAG_SQLSTATE), field(r, PG_DIAG_MESSAGE_PRIMARY),
               field(r, PG_DIAG_MESSAGE_DETAIL), field(r, PG_DIAG_MESSAGE_HINT)};
    if (o.error.message.empty()) o.error.message = trimmed(PQresultErrorMessage(r));
  } else {
    o.error = {"", trimmed(PQerrorMessage(conn_)), "", ""};
  }
  if (!o.ok && PQstatus(conn_) == CONNECTION_BAD && o.error.sqlstate.empty())
    o.error.sqlstate = "08006";
  PQclear(r);
  return o;
}

Outcome Database::query(const std::string &sql, const std::vector<Param> &params,
                        bool retry_if_lost) {
  if (!alive()) {
    if (auto e = connect()) {
      Outcome o;
      o.error = *e;
      o.not_sent = true;
      return o;
    }
  }
  Outcome o = run(sql, params);
  if (o.ok || PQstatus(conn_) != CONNECTION_BAD) return o;
  close();
  if (retry_if_lost) {
    if (auto e = connect()) {
      o.error = *e;
      o.not_sent = true;
      return o;
    }
    return run(sql, params);
  }
  o.error.hint =
      "The connection was lost during the call, so it may or may not have taken effect; "
      "check with a read-only tool before calling it again (pg_ves_mcp reconnects on the next "
      "call).";
  return o;
}

}  // namespace pgves::mcp
