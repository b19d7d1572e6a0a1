// The C++/Postgres boundary.
//
// Postgres reports errors with longjmp; C++ with exceptions. Neither may cross
// the other: a longjmp through a C++ frame skips destructors, and an exception
// through a Postgres frame corrupts its error stack. Two tools keep them apart:
//
//  * guarded(fcinfo, body) runs the body of every SQL-callable function. It
//    catches everything the body throws, copies what it needs into plain
//    storage, and raises the Postgres error only after the catch block has
//    ended, when every C++ destructor of the body has already run.
//  * pg_call(fn) runs one Postgres call from a frame that holds live C++
//    objects. A Postgres error inside it is caught with PG_TRY, copied, and
//    rethrown as PgError, so it unwinds the C++ frames properly and is raised
//    again, unchanged, by guarded(). C++ objects belong outside the lambda
//    passed to pg_call: an error inside it jumps to pg_call's own frame.
//
// Code that holds only trivially destructible locals may call Postgres
// directly (the SQL entry points in append.cpp do): a longjmp through such
// frames skips nothing.
#pragma once

#include "pg/base/postgres.hpp"
#include "pg/base/sqlstate.hpp"

#include <exception>
#include <optional>
#include <type_traits>
#include <string>
#include <utility>

namespace pgves::pg {

// A Postgres error caught by pg_call, carried through C++ frames.
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData *data) : data_(data) {}
  const char *what() const noexcept override { return data_->message ? data_->message : "error"; }
  ErrorData *data() const { return data_; }

 private:
  ErrorData *data_;
};

// An error raised by pg_ves itself, with its own SQLSTATE.
class VesError : public std::exception {
 public:
  VesError(int sqlstate, std::string message, std::string detail = {}, std::string hint = {})
      : sqlstate_(sqlstate),
        message_(std::move(message)),
        detail_(std::move(detail)),
        hint_(std::move(hint)) {}
  const char *what() const noexcept override { return message_.c_str(); }
  int sqlstate() const { return sqlstate_; }
  const std::string &detail() const { return detail_; }
  const std::string &hint() const { return hint_; }

 private:
  int sqlstate_;
  std::string message_, detail_, hint_;
};

template <typename Fn>
void pg_call_void(Fn &&fn) {
  MemoryContext caller_context = CurrentMemoryContext;
  ErrorData *volatile caught = nullptr;
  // A C++ exception from fn must not leave the PG_TRY block either: it would
  // skip restoring Postgres' error stack. Hold it until after PG_END_TRY.
  std::exception_ptr cpp_error;
  PG_TRY();
  {
    try {
      fn();
    } catch (...) {
      cpp_error = std::current_exception();
    }
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_context);
    caught = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  // Thrown only after PG_END_TRY has restored Postgres' error stack.
  if (caught) throw PgError(caught);
  if (cpp_error) std::rethrow_exception(cpp_error);
}

template <typename Fn>
auto pg_call(Fn &&fn) -> decltype(fn()) {
  if constexpr (std::is_void_v<decltype(fn())>) {
    pg_call_void(fn);
  } else {
    std::optional<decltype(fn())> result;
    pg_call_void([&] { result.emplace(fn()); });
    return *result;
  }
}

// What guarded() keeps of an exception once the catch block has ended.
struct PendingError {
  ErrorData *pg = nullptr;
  int sqlstate = 0;
  char message[1024] = {0};
  char detail[1024] = {0};
  char hint[512] = {0};
};

void capture(PendingError &out, const std::exception *e, bool unknown) noexcept;
// The SQLSTATE for a core::Error code.
int sqlstate_for_core(const std::string &code) noexcept;
[[noreturn]] void raise(const PendingError &err);

template <typename Body>
Datum guarded(FunctionCallInfo fcinfo, Body &&body) {
  PendingError err;
  bool failed = false;
  try {
    return body(fcinfo);
  } catch (const std::exception &e) {
    capture(err, &e, false);
    failed = true;
  } catch (...) {
    capture(err, nullptr, true);
    failed = true;
  }
  if (failed) raise(err);
  pg_unreachable();
}

}  // namespace pgves::pg

// Declares a SQL-callable function whose body runs inside guarded().
#define PGVES_FUNCTION(name)                                                       \
  static Datum name##_body(FunctionCallInfo fcinfo);                               \
  extern "C" {                                                                     \
  PG_FUNCTION_INFO_V1(name);                                                       \
  Datum name(PG_FUNCTION_ARGS) { return pgves::pg::guarded(fcinfo, name##_body); } \
  }                                                                                \
  static Datum name##_body(FunctionCallInfo fcinfo)
