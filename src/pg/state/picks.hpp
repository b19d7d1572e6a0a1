// jsonb built from picks: the conflict rules decide which input each member
// of a state comes from, and the state is assembled here from the original
// jsonb values, so numbers never pass through a double and come back
// rounded. Each function makes its PostgreSQL calls inside pg_call.
#pragma once

#include "core/json/json.hpp"
#include "pg/base/postgres.hpp"

#include <string>
#include <vector>

namespace pgves::pg::picks {

struct Pick {
  std::string key;
  bool from_remote;  // else from local
};

// The picks that rebuild `state` from the two sides: a member equal to the
// remote's comes from the remote, every other from the local side.
std::vector<Pick> of(const pgves::core::json::Value &state, const pgves::core::json::Value &remote);

// {"key": the member of local or remote, as picked}. A NULL side is
// (Datum) 0; picking a member it lacks is an internal error.
Datum object(const std::vector<Pick> &list, Datum local, Datum remote);

// {"key": value} followed by every member of `object` (a jsonb object).
Datum with_first_member(const char *key, Datum value, Datum object);

}  // namespace pgves::pg::picks
