// The destination kinds, as SQL sees them: the registry of src/core/platforms
// is the only list. ves.destination_kinds() shows it; the CHECK on
// ves.destinations.kind and ves.create_destination ask
// ves._destination_kind_known().
#include "core/platforms/adapter.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
}

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
  safe::init_materialized_srf(fcinfo);
  for (const auto &[first, second] : rows) {
    Datum values[2] = {safe::text_datum(first), safe::text_datum(second)};
    bool nulls[2] = {false, false};
    safe::put_row(fcinfo, values, nulls);
  }
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

namespace {

// A text[] of strings. The elements are made before the array, outside
// pg_call, so no C++ object lives in a frame a PostgreSQL error can skip.
Datum text_array(const std::vector<std::string_view> &items) {
  std::vector<Datum> datums;
  datums.reserve(items.size());
  for (std::string_view s : items) datums.push_back(safe::text_datum(s));
  return pg_call([&] {
    return PointerGetDatum(construct_array(datums.data(), static_cast<int>(datums.size()), TEXTOID,
                                           -1, false, TYPALIGN_INT));
  });
}

}  // namespace

// ves._destination_kind_options(kind text) -> text[], STRICT: the options a
// kind has beyond the common ones (core::Adapter::option_names()), which
// ves._destination_options accepts and keeps in ves.destinations.kind_options.
// An unknown kind has none.
PGVES_FUNCTION(ves_destination_kind_options) {
  const core::Adapter *adapter = core::find_adapter(safe::text_string(PG_GETARG_DATUM(0)));
  return text_array(adapter ? adapter->option_names() : std::vector<std::string_view>{});
}

// ves._destination_kind_secret_options(kind text) -> text[], STRICT: the
// options of a kind that are credentials (core::Adapter::secret_option_names()):
// sealed in ves.destination_secrets.credentials_box, never kept in kind_options.
PGVES_FUNCTION(ves_destination_kind_secret_options) {
  const core::Adapter *adapter = core::find_adapter(safe::text_string(PG_GETARG_DATUM(0)));
  return text_array(adapter ? adapter->secret_option_names() : std::vector<std::string_view>{});
}

// ves._destination_kind_platform(kind text) -> boolean, STRICT: whether a
// kind syncs mapped listings of one store (core::Adapter::is_platform()).
PGVES_FUNCTION(ves_destination_kind_platform) {
  const core::Adapter *adapter = core::find_adapter(safe::text_string(PG_GETARG_DATUM(0)));
  PG_RETURN_BOOL(adapter && adapter->is_platform());
}

// ves._destination_kind_one_location(kind text) -> boolean, STRICT: whether
// the platform holds one count per item (core::Adapter::one_location_per_sku()).
PGVES_FUNCTION(ves_destination_kind_one_location) {
  const core::Adapter *adapter = core::find_adapter(safe::text_string(PG_GETARG_DATUM(0)));
  PG_RETURN_BOOL(adapter && adapter->one_location_per_sku());
}

// ves._destination_kind_defaults(kind text, OUT rate_limit float8, OUT burst
// int, OUT concurrency int), STRICT: what a new destination of the kind sends
// at unless its options say otherwise (core::Adapter::defaults(): a
// platform's published limits).
PGVES_FUNCTION(ves_destination_kind_defaults) {
  const core::Adapter *adapter = core::find_adapter(safe::text_string(PG_GETARG_DATUM(0)));
  core::Adapter::KindDefaults d = adapter ? adapter->defaults() : core::Adapter::KindDefaults{};
  Datum values[3] = {Float8GetDatum(d.rate_limit), Int32GetDatum(d.burst),
                     Int32GetDatum(d.concurrency)};
  bool nulls[3] = {false, false, false};
  return safe::composite_result(fcinfo, values, nulls);
}
