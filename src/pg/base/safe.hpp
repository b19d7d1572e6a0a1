// PostgreSQL calls for code that holds live C++ objects.
//
// Each function here makes one PostgreSQL call inside pg_call, so an error it
// raises unwinds the caller's C++ frames as a PgError (boundary.hpp) instead of
// jumping over them. Logic calls these; pg_call lambdas belong in wrappers,
// not spread through the logic. A layer adds the wrappers it needs to its own
// file (src/pg/sync/outbox_sql.hpp for the deliverer's statements, for one);
// conversions and SPI that several layers use live here.
#pragma once

#include "pg/base/postgres.hpp"
#include "pg/base/spi_plan.hpp"

extern "C" {
#include "utils/jsonb.h"
}

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgves::pg::safe {

// text <-> std::string. text_datum allocates in CurrentMemoryContext.
std::string text_string(Datum text);
Datum text_datum(std::string_view s);

// A uuid Datum pointing at a palloc'd copy.
Datum uuid_datum(const pg_uuid_t &id);

// bytea <-> bytes.
std::vector<uint8_t> bytea_bytes(Datum bytea);
Datum bytea_datum(const void *data, size_t len);

// jsonb's text form, and jsonb from text (raises on invalid JSON).
std::string jsonb_text(const Jsonb *value);
Jsonb *jsonb_from_text(const std::string &text);

// SPI, with the error handling of spi_plan.hpp.
void spi_connect();
void spi_finish();
int spi_run(SavedPlan &plan, Datum *values, const char *nulls, bool read_only, int expect,
            long limit = 0);
// Column `column` (1-based) of row `row` of the last SPI result.
bool spi_isnull(uint64 row, int column);
int64 spi_int64(uint64 row, int column, int64 if_null);
std::string spi_text(uint64 row, int column);  // text or varchar; "" when NULL
Datum spi_datum(uint64 row, int column, bool *isnull);

// SPI cursors: open a read-only cursor over `sql` with parameters; fetch up
// to `count` rows forward (checking for interrupts first) into SPI_tuptable
// and return how many; free a fetched batch; close.
Portal cursor_open(const std::string &sql, int nargs, Oid *types, Datum *values, const char *nulls);
uint64 cursor_fetch(Portal portal, long count);
void free_tuptable(SPITupleTable *batch);
void cursor_close(Portal portal);

// Tenant scope (tenant.hpp) for C++ frames.
void check_tenant_access(const pg_uuid_t &tenant);
bool session_tenant(pg_uuid_t *out);

// Set-returning and composite results.
void init_materialized_srf(FunctionCallInfo fcinfo);
void put_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls);
Datum composite_result(FunctionCallInfo fcinfo, Datum *values, bool *nulls);

// CHECK_FOR_INTERRUPTS() from C++ frames: a cancel or terminate request
// unwinds them as a PgError.
void check_for_interrupts();

// --- Arguments (added for the conflict rules, src/pg/state/conflict.cpp).

// A jsonb argument detoasted (for jsonb_text).
const Jsonb *jsonb_detoast(Datum jsonb);
// The elements of a one-dimensional text[]; NULL elements are skipped.
std::vector<std::string> text_array_strings(Datum array);

}  // namespace pgves::pg::safe
