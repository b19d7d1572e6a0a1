// The destination kinds, as SQL sees them: the registry of src/core/platforms
// is the only list. ves.destination_kinds() shows it; the CHECK on
// ves.destinations.kind and ves.create_destination ask
// ves._destination_kind_known().
#include "core/platforms/adapter.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace pgves::pg;
namespace core = pgves::core;

namespace {

// Returns rows of two text columns as the result of the set-returning
// function called through fcinfo.
void materialize_text_pairs(
    FunctionCallInfo fcinfo,
    const std::vector<std::pair<std::string_view, std::string_view>> &rows) {
  pg_call_void([&] {
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (const auto &[first, second] : rows) {
      Datum values[2] = {
          PointerGetDatum(cstring_to_text_with_len(first.data(), static_cast<int>(first.size()))),
          PointerGetDatum(
              cstring_to_text_with_len(second.data(), static_cast<int>(second.size())))};
      bool nulls[2] = {false, false};
      tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
  });
}

}  // namespace

// ves.destination_kinds(OUT kind text, OUT description text): every kind
// ves.create_destination accepts, in the order hints list them.
PGVES_FUNCTION(ves_destination_kinds) {
  std::vector<std::pair<std::string_view, std::string_view>> rows;
  for (std::string_view kind : core::adapter_kinds())
    rows.emplace_back(kind, core::find_adapter(kind)->description());
  materialize_text_pairs(fcinfo, rows);
  return (Datum)0;
}

// ves._destination_kind_known(kind text) -> boolean, STRICT: the CHECK on
// ves.destinations.kind.
PGVES_FUNCTION(ves_destination_kind_known) {
  PG_RETURN_BOOL(core::find_adapter(safe::text_string(PG_GETARG_DATUM(0))) != nullptr);
}
