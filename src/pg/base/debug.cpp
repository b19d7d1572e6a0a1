// ves.debug_raise: proves the C++/Postgres boundary from SQL. Each kind
// fails in a different way while C++ objects with destructors are alive; the
// regression suite checks each becomes a clean ERROR and the backend goes on.
#include "pg/base/boundary.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace pgves::pg;

namespace {
int live_objects = 0;
struct Tracked {
  Tracked() { ++live_objects; }
  ~Tracked() { --live_objects; }
};
}  // namespace

PGVES_FUNCTION(ves_debug_raise) {
  if (PG_ARGISNULL(0))
    throw VesError(sqlstate::null_argument, "kind must not be NULL", {},
                   "Use one of: std, ves, unknown, postgres, none.");
  std::string kind = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
  Tracked guard;
  std::vector<std::string> held(16, std::string(64, 'x'));
  if (kind == "std") throw std::runtime_error("a C++ exception inside pg_ves");
  if (kind == "ves")
    throw VesError(sqlstate::invalid_argument, "a pg_ves error", "detail survives",
                   "hint survives");
  if (kind == "unknown") throw 42;
  if (kind == "postgres") {
    // A Postgres error raised while C++ objects are alive: pg_call turns it
    // into an exception, the objects are destroyed, and it is raised again.
    pg_call([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
  }
  if (kind == "none") PG_RETURN_INT32(live_objects - 1);
  throw VesError(sqlstate::invalid_argument, "unknown kind \"" + kind + "\"", {},
                 "Use one of: std, ves, unknown, postgres, none.");
}

// The number of Tracked objects alive: 0 after every failed call above.
PGVES_FUNCTION(ves_debug_live_objects) { PG_RETURN_INT32(live_objects); }
