#include "pg/sync/remote_pg.hpp"

#include "core/delivery/address_filter.hpp"
#include "core/delivery/host_lookup.hpp"
#include "core/platforms/ves_postgres.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/settings.hpp"
#include "pg/sync/clock.hpp"

extern "C" {
#include "storage/latch.h"
}

#include <libpq-fe.h>
#include <sodium.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <system_error>

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

// forget() calls so far: a connection in use goes back to kept() when its
// call ends only if none came meanwhile.
std::uint64_t forgotten = 0;

struct Failure {
  bool retryable = false;
  std::string sqlstate;  // the remote's SQLSTATE, "" when none (connection level)
  std::string message;   // what went wrong, without the password
};

std::string hash_of(const std::string &s) {
  unsigned char h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char *>(s.data()), s.size(),
                     nullptr, 0);
  return std::string(reinterpret_cast<const char *>(h), sizeof h);
}

// A path that cannot exist (/dev/null is no directory), for libpq's file
// options.
constexpr const char *kNoFile = "/dev/null/pg_ves-no-file";

// The options a conninfo sets, by keyword; false when it does not parse.
bool conninfo_options(const std::string &conninfo, std::map<std::string, std::string> *out) {
  char *err = nullptr;
  PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err) PQfreemem(err);
  if (!opts) return false;
  for (PQconninfoOption *o = opts; o->keyword; ++o)
    if (o->val) (*out)[o->keyword] = o->val;
  PQconninfoFree(opts);
  return true;
}

// The password of a conninfo, or "" when it has none or does not parse.
std::string password_of(const std::string &conninfo) {
  std::map<std::string, std::string> options;
  conninfo_options(conninfo, &options);
  std::string &password = options["password"];
  std::string out = password;
  sodium_memzero(password.data(), password.size());
  return out;
}

bool has_password(const std::string &conninfo) {
  std::string password = password_of(conninfo);
  const bool has = !password.empty();
  sodium_memzero(password.data(), password.size());
  return has;
}

// One host of a conninfo (libpq takes lists: host=a,b port=1,2).
struct Entry {
  std::string host, hostaddr, port;
  bool look_up = false;  // host is a name that the worker looks up itself
};

std::vector<std::string> comma_list(const std::string &s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  std::size_t from = 0;
  for (;;) {
    const std::size_t comma = s.find(',', from);
    out.push_back(s.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
    if (comma == std::string::npos) return out;
    from = comma + 1;
  }
}

std::string joined(const std::vector<std::string> &items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out;
}

// What libpq would take from the server's environment for host, hostaddr
// and port when a conninfo does not set them (PGHOST, PGHOSTADDR, PGPORT,
// the PGSERVICE entry of a service file), put into options; the worker then
// plans, looks up and checks those hosts like the conninfo's own.
void add_defaults(std::map<std::string, std::string> *options) {
  PQconninfoOption *defaults = PQconndefaults();
  if (!defaults) return;
  for (PQconninfoOption *o = defaults; o->keyword; ++o) {
    const std::string keyword = o->keyword;
    if (o->val && (keyword == "host" || keyword == "hostaddr" || keyword == "port") &&
        (*options)[keyword].empty())
      (*options)[keyword] = o->val;
  }
  PQconninfoFree(defaults);
}

// The hosts of a conninfo, each with its hostaddr and port; false when it
// does not parse or its lists do not match (libpq then says what is wrong).
// The worker looks host names up itself, on a thread (HostLookup): libpq
// would look them up on the worker's thread, which would wait meanwhile.
// And every address is checked against ves.destination_address_reject
// before libpq connects to it.
bool entries_of(const std::string &conninfo, std::vector<Entry> *out, bool *has_port) {
  std::map<std::string, std::string> options;
  if (!conninfo_options(conninfo, &options)) return false;
  sodium_memzero(options["password"].data(), options["password"].size());
  add_defaults(&options);
  const std::vector<std::string> hosts = comma_list(options["host"]),
                                 addrs = comma_list(options["hostaddr"]),
                                 ports = comma_list(options["port"]);
  const std::size_t k = std::max<std::size_t>({hosts.size(), addrs.size(), 1});
  if ((!hosts.empty() && hosts.size() != k) || (!addrs.empty() && addrs.size() != k) ||
      (ports.size() > 1 && ports.size() != k))
    return false;
  out->clear();
  for (std::size_t i = 0; i < k; ++i) {
    Entry e;
    e.host = hosts.empty() ? "" : hosts[i];
    e.hostaddr = addrs.empty() ? "" : addrs[i];
    e.port = ports.empty() ? "" : ports[ports.size() == 1 ? 0 : i];
    e.look_up = e.hostaddr.empty() && core::host_needs_lookup(e.host);
    out->push_back(std::move(e));
  }
  *has_port = !ports.empty();
  return true;
}

// Why ves.destination_address_reject refuses `address`, or "" when it does
// not (or `address` is not numeric: then libpq refuses it).
std::string refusal_of(const std::string &address) {
  const core::Cidr *hit = core::find_cidr_numeric(settings::address_reject(), address);
  if (!hit) return "";
  return "connection to " + address + " refused by ves.destination_address_reject (" +
         core::cidr_text(*hit) + ")";
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

HttpResult failed(std::uint64_t tag, const Failure &f) {
  HttpResult r;
  r.tag = tag;
  const std::string what = (f.sqlstate.empty() ? "" : f.sqlstate + ": ") + f.message;
  if (f.retryable) {
    r.transport_error = true;
    r.error = "remote pg_ves: " + what;
  } else {
    r.status = core::ves_postgres_refused;
    r.excerpt = what;
  }
  return r;
}

enum class Stage { resolving, connecting, setting, calling };

struct Call {
  std::uint64_t tag = 0;
  int destination = 0;
  std::string conninfo;  // secret: wiped with the call
  long timeout_ms = 0;
  std::string sql;
  std::vector<std::string> params;
  std::unique_ptr<Kept> kept;
  std::vector<Entry> entries;                // the conninfo's hosts, if planned
  bool planned = false;                      // entries_of read the conninfo
  bool has_port = false;                     // it gives ports
  std::unique_ptr<core::HostLookup> lookup;  // while resolving
  Stage stage = Stage::connecting;
  int fd = -1;            // the socket watched on the engine, -1 none
  bool flushing = false;  // the statement is not all sent yet
  std::int64_t started_ms = 0;
  std::int64_t deadline_ms = -1;
  PGresult *result = nullptr;  // the statement's, until its end
  std::uint64_t forgotten_at = 0;
  bool ended = false;  // its answer went to the engine

  ~Call() {
    if (result) PQclear(result);
    sodium_memzero(conninfo.data(), conninfo.size());
  }
};

// The calls of one engine.
class Calls final : public SideCalls {
 public:
  void add(HttpEngine &engine, std::unique_ptr<Call> call) {
    for (const auto &c : running_)
      if (c->destination == call->destination) {
        waiting_.push_back(std::move(call));
        return;
      }
    begin(engine, std::move(call));
  }

  void progress(HttpEngine &engine, const std::vector<int> &ready) override {
    const std::int64_t now = steady_ms();
    for (std::size_t i = 0; i < running_.size();) {
      Call &c = *running_[i];
      const bool due = (c.deadline_ms >= 0 && now >= c.deadline_ms) ||
                       std::find(ready.begin(), ready.end(), c.fd) != ready.end();
      if (due) step(engine, c);
      if (c.ended) {
        running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      ++i;
    }
    // Calls that waited for their destination's connection.
    for (std::size_t i = 0; i < waiting_.size();) {
      const int destination = waiting_[i]->destination;
      if (std::any_of(running_.begin(), running_.end(),
                      [&](const auto &c) { return c->destination == destination; })) {
        ++i;
        continue;
      }
      std::unique_ptr<Call> call = std::move(waiting_[i]);
      waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
      begin(engine, std::move(call));
    }
  }

  std::int64_t deadline_ms() const override {
    std::int64_t out = -1;
    for (const auto &c : running_)
      if (c->deadline_ms >= 0 && (out < 0 || c->deadline_ms < out)) out = c->deadline_ms;
    return out;
  }

  int in_flight() const override { return static_cast<int>(running_.size() + waiting_.size()); }

 private:
  std::vector<std::unique_ptr<Call>> running_;
  std::vector<std::unique_ptr<Call>> waiting_;

  void begin(HttpEngine &engine, std::unique_ptr<Call> call) {
    Call &c = *call;
    c.started_ms = steady_ms();
    c.forgotten_at = forgotten;
    auto &map = kept();
    const std::string h = hash_of(c.conninfo);
    auto it = map.find(c.destination);
    if (it != map.end() &&
        (it->second->conninfo_hash != h || it->second->timeout_ms != c.timeout_ms ||
         !it->second->conn || PQstatus(it->second->conn) != CONNECTION_OK ||
         // ves.destination_address_reject may have been reloaded since, and
         // ves.remote_password_required turned on.
         !refusal_of(PQhostaddr(it->second->conn)).empty() ||
         (settings::remote_password_required && !PQconnectionUsedPassword(it->second->conn)))) {
      map.erase(it);
      it = map.end();
    }
    if (it != map.end()) {
      c.kept = std::move(it->second);
      map.erase(it);
      c.stage = Stage::calling;
      send(engine, c);
      if (!c.ended) running_.push_back(std::move(call));
      return;
    }
    c.kept = std::make_unique<Kept>();
    c.kept->conninfo_hash = h;
    c.kept->timeout_ms = c.timeout_ms;
    // The lookup and the connection together get the connection's time.
    c.deadline_ms = c.started_ms + std::max<long>(2000, c.timeout_ms);
    if (Refusal refused = conninfo_refusal(c.conninfo); !refused.message.empty()) {
      Failure f;
      f.message = refused.message;
      f.retryable = false;
      c.kept.reset();
      finish(engine, c, failed(c.tag, f));
      return;
    }
    c.planned = entries_of(c.conninfo, &c.entries, &c.has_port);
    std::vector<std::string> names;
    for (const Entry &e : c.entries)
      if (e.look_up) names.push_back(e.host);
    if (!names.empty()) {
      try {
        c.lookup = std::make_unique<core::HostLookup>(std::move(names));
      } catch (const std::system_error &e) {
        Failure f;
        f.retryable = true;
        f.message = std::string("cannot look up host names: ") + e.what();
        c.kept.reset();
        finish(engine, c, failed(c.tag, f));
        return;
      }
      c.stage = Stage::resolving;
      c.fd = c.lookup->fd();
      engine.watch(c.fd, false);
      running_.push_back(std::move(call));
      return;
    }
    connect(engine, c);
    if (!c.ended) running_.push_back(std::move(call));
  }

  // Starts connecting: to every address of every host that
  // ves.destination_address_reject allows, in the conninfo's order (libpq
  // tries them in turn, as after its own lookups; a name stays the host, for
  // TLS and the remote's pg_hba rules). A Unix socket directory goes as it
  // is. With none left, fails as libpq would have (retried).
  void connect(HttpEngine &engine, Call &c) {
    std::vector<std::string> hosts, addrs, ports;
    std::string refusal, lookup_error;
    std::size_t looked_up = 0;
    for (const Entry &e : c.entries) {
      std::vector<std::string> candidates;
      if (!e.hostaddr.empty()) {
        candidates.push_back(e.hostaddr);
      } else if (core::is_numeric_address(e.host)) {
        candidates.push_back(e.host);
      } else if (e.look_up) {
        const core::HostLookup::Found &f = c.lookup->found().at(looked_up++);
        if (f.addresses.empty() && lookup_error.empty())
          lookup_error = "could not translate host name \"" + e.host + "\" to address: " + f.error;
        candidates = f.addresses;
      } else {
        hosts.push_back(e.host);
        addrs.emplace_back();
        ports.push_back(e.port);
        continue;
      }
      for (const std::string &a : candidates) {
        const std::string refused = refusal_of(a);
        if (!refused.empty()) {
          if (refusal.empty()) refusal = refused;
          continue;
        }
        hosts.push_back(e.host);
        addrs.push_back(a);
        ports.push_back(e.port);
      }
    }
    c.lookup.reset();
    if (c.planned && hosts.empty()) {
      Failure f = connect_failure(refusal.empty() ? lookup_error : refusal);
      c.kept.reset();
      finish(engine, c, failed(c.tag, f));
      return;
    }
    const std::string host_list = joined(hosts), addr_list = joined(addrs),
                      port_list = joined(ports);
    const bool any_addr =
        std::any_of(addrs.begin(), addrs.end(), [](const std::string &a) { return !a.empty(); });
    // A password given in conninfo is never sent anywhere else. A conninfo
    // that entries_of could not read goes alone: libpq says what is wrong.
    // Nor does libpq read a password or a client certificate from the
    // server's files (a .pgpass or PGPASSFILE, ~/.postgresql/postgresql.crt
    // and its key, or PGSSLCERT): these name a path that cannot exist, and
    // come after the conninfo, so they win over it and the environment.
    const char *keywords[8] = {"dbname", "application_name", "passfile", "sslcert"};
    const char *values[8] = {c.conninfo.c_str(), "pg_ves sync", kNoFile, kNoFile};
    int n = 4;
    if (c.planned) {
      keywords[n] = "host";
      values[n++] = host_list.c_str();
      if (any_addr) {
        keywords[n] = "hostaddr";
        values[n++] = addr_list.c_str();
      }
      if (c.has_port) {
        keywords[n] = "port";
        values[n++] = port_list.c_str();
      }
    }
    keywords[n] = nullptr;
    values[n] = nullptr;
    c.kept->conn = PQconnectStartParams(keywords, values, 1);
    c.stage = Stage::connecting;
    if (!c.kept->conn || PQstatus(c.kept->conn) == CONNECTION_BAD) {
      fail_connect(engine, c);
      return;
    }
    // Before the first PQconnectPoll, libpq waits for the socket to be
    // writable (the connect under way).
    rewatch(engine, c, true);
  }

  // The lookups have ended: connect to what they found.
  void resolved(HttpEngine &engine, Call &c) {
    engine.unwatch(c.fd);
    c.fd = -1;
    connect(engine, c);
  }

  void rewatch(HttpEngine &engine, Call &c, bool write) {
    const int fd = PQsocket(c.kept->conn);
    // While connecting, libpq may close its socket and open another (for the
    // next address), perhaps under the same number: registered afresh.
    if (c.fd >= 0 && (fd != c.fd || c.stage == Stage::connecting)) engine.unwatch(c.fd);
    c.fd = fd;
    if (fd >= 0) engine.watch(fd, write);
  }

  // Ends a call: its answer to the engine, its connection kept for the next
  // call when it is healthy. An ended call leaves running_ in progress().
  void finish(HttpEngine &engine, Call &c, HttpResult r) {
    c.ended = true;
    if (c.fd >= 0) engine.unwatch(c.fd);
    c.fd = -1;
    c.deadline_ms = -1;
    r.elapsed_ms = static_cast<double>(steady_ms() - c.started_ms);
    if (c.kept && c.kept->conn && PQstatus(c.kept->conn) == CONNECTION_OK &&
        PQtransactionStatus(c.kept->conn) == PQTRANS_IDLE && c.forgotten_at == forgotten)
      kept()[c.destination] = std::move(c.kept);
    c.kept.reset();
    engine.complete(std::move(r));
  }

  // The connection broke or cannot go on: retried later on a new one.
  void fail_connection(HttpEngine &engine, Call &c, const std::string &message,
                       bool retryable = true) {
    Failure f;
    f.retryable = retryable;
    f.message = masked(message, c.conninfo);
    if (c.fd >= 0) engine.unwatch(c.fd);
    c.fd = -1;
    c.kept.reset();
    finish(engine, c, failed(c.tag, f));
  }

  void fail_connect(HttpEngine &engine, Call &c) {
    std::string message = c.kept->conn ? PQerrorMessage(c.kept->conn) : "out of memory";
    if (message.find("invalid connection option") != std::string::npos ||
        message.find("missing \"=\"") != std::string::npos ||
        message.find("invalid URI") != std::string::npos)
      message = "the conninfo option is not a valid libpq connection string";
    Failure f = connect_failure(masked(message, c.conninfo));
    if (c.fd >= 0) engine.unwatch(c.fd);
    c.fd = -1;
    c.kept.reset();
    finish(engine, c, failed(c.tag, f));
  }

  // Sends the stage's statement.
  void send(HttpEngine &engine, Call &c) {
    PGconn *conn = c.kept->conn;
    int sent;
    if (c.stage == Stage::setting) {
      const std::string set_timeout =
          "SET statement_timeout = " + std::to_string(std::max<long>(1, c.timeout_ms));
      sent = PQsendQuery(conn, set_timeout.c_str());
    } else {
      std::vector<const char *> values;
      for (const std::string &p : c.params) values.push_back(p.c_str());
      sent = PQsendQueryParams(conn, c.sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
    }
    if (!sent) {
      fail_connection(engine, c, PQerrorMessage(conn));
      return;
    }
    // The remote's statement_timeout ends a slow statement first; a remote
    // that stays silent a second longer is given up.
    c.deadline_ms = steady_ms() + std::max<long>(1, c.timeout_ms) + 1000;
    c.flushing = true;
    flush(engine, c);
  }

  // Returns false when the call ended.
  bool flush(HttpEngine &engine, Call &c) {
    const int r = PQflush(c.kept->conn);
    if (r < 0) {
      fail_connection(engine, c, PQerrorMessage(c.kept->conn));
      return false;
    }
    c.flushing = r == 1;
    rewatch(engine, c, c.flushing);
    return true;
  }

  // Moves a call on (it may end).
  void step(HttpEngine &engine, Call &c) {
    if (c.deadline_ms >= 0 && steady_ms() >= c.deadline_ms) {
      const std::string connect_ms = std::to_string(std::max<long>(2000, c.timeout_ms));
      fail_connection(engine, c,
                      c.stage == Stage::resolving
                          ? "host names not looked up within " + connect_ms + " ms"
                      : c.stage == Stage::connecting
                          ? "no connection within " + connect_ms + " ms"
                          : "no answer within " + std::to_string(c.timeout_ms) + " ms");
      return;
    }
    if (c.stage == Stage::resolving) {
      if (c.lookup->done()) resolved(engine, c);
      return;
    }
    PGconn *conn = c.kept->conn;
    if (c.stage == Stage::connecting) {
      switch (PQconnectPoll(conn)) {
        case PGRES_POLLING_READING:
          rewatch(engine, c, false);
          return;
        case PGRES_POLLING_WRITING:
          rewatch(engine, c, true);
          return;
        case PGRES_POLLING_OK:
          // The worker (and a backend pulling) runs as the server's
          // operating-system account, which a remote using peer or trust
          // authentication, such as this server's own socket, would let in
          // as any role: unless a superuser said otherwise, the remote must
          // have asked for the conninfo's own password.
          if (settings::remote_password_required &&
              (!has_password(c.conninfo) || !PQconnectionUsedPassword(conn))) {
            fail_connection(engine, c,
                            "the remote did not ask for the conninfo's password "
                            "(ves.remote_password_required is on)",
                            false);
            return;
          }
          if (PQsetnonblocking(conn, 1) != 0) {
            fail_connection(engine, c, PQerrorMessage(conn));
            return;
          }
          c.stage = Stage::setting;
          send(engine, c);
          return;
        default:
          fail_connect(engine, c);
          return;
      }
    }
    if (c.flushing && !flush(engine, c)) return;
    if (!PQconsumeInput(conn)) {
      fail_connection(engine, c, PQerrorMessage(conn));
      return;
    }
    while (!PQisBusy(conn)) {
      PGresult *r = PQgetResult(conn);
      if (r) {
        if (c.result) PQclear(c.result);
        c.result = r;
        continue;
      }
      // The statement has ended.
      PGresult *result = c.result;
      c.result = nullptr;
      if (c.stage == Stage::setting) {
        const bool ok = result && PQresultStatus(result) == PGRES_COMMAND_OK;
        if (result) PQclear(result);
        if (!ok) {
          fail_connection(engine, c, PQerrorMessage(conn));
          return;
        }
        c.stage = Stage::calling;
        send(engine, c);
        return;
      }
      answered(engine, c, result);
      return;
    }
    return;
  }

  void answered(HttpEngine &engine, Call &c, PGresult *r) {
    PGconn *conn = c.kept->conn;
    const ExecStatusType status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1 &&
        !PQgetisnull(r, 0, 0)) {
      HttpResult ok;
      ok.tag = c.tag;
      ok.status = 200;
      ok.excerpt = std::string(PQgetvalue(r, 0, 0), PQgetlength(r, 0, 0));
      PQclear(r);
      finish(engine, c, std::move(ok));
      return;
    }
    Failure f;
    if (r && status == PGRES_FATAL_ERROR) {
      const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
      f.sqlstate = state ? state : "";
      f.message = masked(primary ? primary : PQerrorMessage(conn), c.conninfo);
      f.retryable = f.sqlstate.empty() || retryable_state(f.sqlstate);
    } else if (r) {
      f.message = "the remote answered " + std::to_string(PQntuples(r)) + " rows of " +
                  std::to_string(PQnfields(r)) + " columns, not one value";
    } else {
      f.message = masked(PQerrorMessage(conn), c.conninfo);
      f.retryable = true;
    }
    if (r) PQclear(r);
    if (PQstatus(conn) != CONNECTION_OK) f.retryable = true;
    finish(engine, c, failed(c.tag, f));
  }
};

}  // namespace

Refusal conninfo_refusal(const std::string &conninfo) {
  std::map<std::string, std::string> options;
  Refusal r;
  if (!conninfo_options(conninfo, &options)) return r;
  sodium_memzero(options["password"].data(), options["password"].size());
  if (!options["service"].empty()) {
    r.message = "conninfo names a service (service=" + options["service"] +
                "), whose hosts ves.destination_address_reject cannot check";
    r.hint = "Name the remote's host (and port) in the conninfo itself.";
    return r;
  }
  for (const char *file : {"passfile", "sslcert", "sslkey", "sslpassword"})
    if (!options[file].empty()) {
      r.message = std::string("conninfo sets ") + file +
                  ": a destination does not make the sync worker use the server's files";
      r.hint =
          "Put the remote role's password in the conninfo itself (it is sealed); a client "
          "certificate cannot be used.";
      return r;
    }
  return r;
}

void forget(int destination_id) {
  ++forgotten;
  if (destination_id == 0)
    kept().clear();
  else
    kept().erase(destination_id);
}

void start(HttpEngine &engine, std::uint64_t tag, const Target &target, const std::string &sql,
           const std::vector<std::string> &params) {
  if (!engine.side_calls()) engine.set_side_calls(std::make_unique<Calls>());
  auto call = std::make_unique<Call>();
  call->tag = tag;
  call->destination = target.destination_id;
  call->conninfo = target.conninfo;
  call->timeout_ms = target.timeout_ms;
  call->sql = sql;
  call->params = params;
  static_cast<Calls *>(engine.side_calls())->add(engine, std::move(call));
}

HttpResult call(const Target &target, const std::string &sql,
                const std::vector<std::string> &params) {
  HttpEngine engine;
  start(engine, 0, target, sql, params);
  bool latch = false;
  std::vector<HttpResult> got = engine.take_completed();
  while (got.empty()) {
    latch |= engine.wait(1000);
    safe::check_for_interrupts();
    got = engine.take_completed();
  }
  // A wake-up meant for the caller's own wait is passed on.
  if (latch) pg_call_void([] { SetLatch(MyLatch); });
  return std::move(got.at(0));
}

}  // namespace pgves::pg::remote_pg
