#include "pg/sync/remote_pg.hpp"

#include <libpq-fe.h>
#include <sodium.h>

#include <map>
#include <memory>
#include <string>

namespace pgves::pg::remote_pg {

namespace {

struct Kept {
  PGconn *conn = nullptr;
  std::string conninfo_hash;  // to notice a changed conninfo without keeping it
  long timeout_ms = 0;
  ~Kept() {
    if (conn) PQfinish(conn);
  }
};

std::map<int, std::unique_ptr<Kept>> &kept() {
  static std::map<int, std::unique_ptr<Kept>> connections;
  return connections;
}

std::string hash_of(const std::string &s) {
  unsigned char h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char *>(s.data()), s.size(),
                     nullptr, 0);
  return std::string(reinterpret_cast<const char *>(h), sizeof h);
}

// The password of a conninfo, or "" when it has none or does not parse.
std::string password_of(const std::string &conninfo) {
  std::string out;
  char *err = nullptr;
  PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err) PQfreemem(err);
  if (!opts) return out;
  for (PQconninfoOption *o = opts; o->keyword; ++o)
    if (std::string(o->keyword) == "password" && o->val) out = o->val;
  PQconninfoFree(opts);
  return out;
}

std::string masked(std::string message, const std::string &conninfo) {
  const std::string password = password_of(conninfo);
  if (!password.empty())
    for (std::size_t at = message.find(password); at != std::string::npos;
         at = message.find(password, at))
      message.replace(at, password.size(), "********");
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  for (char &c : message)
    if (c == '\n') c = ' ';
  return message;
}

// A connection that never came up: retried unless the server refused who
// we are (authentication, a database or role that does not exist), which
// only an operator can mend.
Failure connect_failure(const std::string &message) {
  Failure f;
  f.message = message;
  static const char *permanent[] = {
      "authentication failed", "no pg_hba.conf entry",      "does not exist", "permission denied",
      "password is required",  "invalid connection option", "missing \"=\"",  "invalid URI"};
  f.retryable = true;
  for (const char *p : permanent)
    if (message.find(p) != std::string::npos) f.retryable = false;
  return f;
}

bool retryable_state(const std::string &state) {
  const std::string cls = state.substr(0, 2);
  return cls == "08" || cls == "53" || cls == "57" || cls == "40" || state == "55P03" ||
         state == "58000" || state == "58030";
}

}  // namespace

void forget(int destination_id) {
  if (destination_id == 0)
    kept().clear();
  else
    kept().erase(destination_id);
}

Result call_json(const Target &target, const std::string &sql,
                 const std::vector<std::string> &params) {
  Result out;
  auto &map = kept();
  const std::string h = hash_of(target.conninfo);
  auto it = map.find(target.destination_id);
  if (it != map.end() &&
      (it->second->conninfo_hash != h || it->second->timeout_ms != target.timeout_ms ||
       !it->second->conn || PQstatus(it->second->conn) != CONNECTION_OK)) {
    map.erase(it);
    it = map.end();
  }
  if (it == map.end()) {
    // A password given in conninfo is never sent anywhere else; the
    // connection's own settings follow it, so they win over the string's.
    const long seconds = std::max<long>(2, (target.timeout_ms + 999) / 1000);
    const std::string connect_timeout = std::to_string(seconds);
    const char *keywords[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char *values[] = {target.conninfo.c_str(), connect_timeout.c_str(), "pg_ves sync",
                            nullptr};
    auto k = std::make_unique<Kept>();
    k->conn = PQconnectdbParams(keywords, values, 1);
    if (!k->conn || PQstatus(k->conn) != CONNECTION_OK) {
      std::string message = k->conn ? PQerrorMessage(k->conn) : "out of memory";
      if (message.find("invalid connection option") != std::string::npos ||
          message.find("missing \"=\"") != std::string::npos ||
          message.find("invalid URI") != std::string::npos)
        message = "the conninfo option is not a valid libpq connection string";
      out.failure = connect_failure(masked(message, target.conninfo));
      return out;
    }
    const std::string set_timeout =
        "SET statement_timeout = " + std::to_string(std::max<long>(1, target.timeout_ms));
    PGresult *r = PQexec(k->conn, set_timeout.c_str());
    const bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (r) PQclear(r);
    if (!ok) {
      Failure f;
      f.retryable = true;
      f.message = masked(PQerrorMessage(k->conn), target.conninfo);
      out.failure = f;
      return out;
    }
    k->conninfo_hash = h;
    k->timeout_ms = target.timeout_ms;
    it = map.emplace(target.destination_id, std::move(k)).first;
  }
  PGconn *conn = it->second->conn;
  std::vector<const char *> values;
  for (const std::string &p : params) values.push_back(p.c_str());
  PGresult *r = PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  const ExecStatusType status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1 &&
      !PQgetisnull(r, 0, 0)) {
    out.text = std::string(PQgetvalue(r, 0, 0), PQgetlength(r, 0, 0));
    PQclear(r);
    return out;
  }
  Failure f;
  if (r && status == PGRES_FATAL_ERROR) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    f.sqlstate = state ? state : "";
    f.message = masked(primary ? primary : PQerrorMessage(conn), target.conninfo);
    f.retryable = f.sqlstate.empty() || retryable_state(f.sqlstate);
  } else if (r) {
    f.message = "the remote answered " + std::to_string(PQntuples(r)) + " rows of " +
                std::to_string(PQnfields(r)) + " columns, not one value";
  } else {
    f.message = masked(PQerrorMessage(conn), target.conninfo);
    f.retryable = true;
  }
  if (r) PQclear(r);
  if (PQstatus(conn) != CONNECTION_OK) {
    f.retryable = true;
    map.erase(it);
  }
  out.failure = f;
  return out;
}

}  // namespace pgves::pg::remote_pg
