#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/json/json.hpp"

struct pg_conn;

namespace pgves::mcp {

// What PostgreSQL (or libpq) said when a statement failed: the fields a
// pg_ves error carries, so a tool error can show its SQLSTATE and hint.
struct SqlError {
  std::string sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
};

// The result of one statement: the JSON document it returned (null for no
// row or SQL NULL), or its error.
struct Outcome {
  bool ok = false;
  core::json::Value value;
  SqlError error;
  // The statement may not have reached the server: the connection was found
  // broken before it was sent or could not be opened.
  bool not_sent = false;
};

using Param = std::optional<std::string>;

// One libpq connection, opened on first use and again after it is lost (a
// server restart, a terminated backend). Each statement runs on its own,
// in autocommit, and returns one JSON value in its first column.
class Database {
 public:
  Database(std::string conninfo, std::optional<std::string> tenant, bool read_only);
  ~Database();
  Database(const Database &) = delete;
  Database &operator=(const Database &) = delete;

  // Runs sql with text parameters ($1, $2, ...); `retry_if_lost` runs it once
  // more on a new connection when the connection broke during the statement
  // (only for statements that change nothing).
  Outcome query(const std::string &sql, const std::vector<Param> &params, bool retry_if_lost);

  // Opens the connection now; returns the error when it cannot.
  std::optional<SqlError> connect();

  // What to do when the watched descriptor has something to read while a
  // statement runs.
  enum class Watch { keep_watching, cancel, stop_watching };

  // While a statement runs, `check` is called whenever fd is readable; on
  // cancel the statement is cancelled (its error, SQLSTATE 57014, is then its
  // result).
  void watch(int fd, std::function<Watch()> check) {
    watch_fd_ = fd;
    check_ = std::move(check);
  }

 private:
  bool alive();
  Outcome run(const std::string &sql, const std::vector<Param> &params);
  void close();

  std::string conninfo_;
  std::optional<std::string> tenant_;
  bool read_only_;
  pg_conn *conn_ = nullptr;
  int watch_fd_ = -1;
  std::function<Watch()> check_;
};

}  // namespace pgves::mcp
