// jsonb built from picks: the conflict rules decide which input each member
// of a state comes from, and the state is assembled here from the original
// jsonb values, so numbers never pass through a double and come back
// rounded. Each function makes its PostgreSQL calls inside pg_call.
#pragma once

#include "pg/base/postgres.hpp"

#include <string>
#include <vector>

namespace pgves::pg::picks {

struct Pick {
  std::string key;
  bool from_remote;  // else from local
};

// {"key": the member of local or remote, as picked}. A NULL side is
// (Datum) 0; picking a member it lacks is an internal error.
Datum object(const std::vector<Pick> &list, Datum local, Datum remote);

// {"key": value} followed by every member of `object` (a jsonb object).
Datum with_first_member(const char *key, Datum value, Datum object);

}  // namespace pgves::pg::picks
