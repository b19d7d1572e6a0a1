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

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgves::pg::safe {

// text <-> std::string. text_datum allocates in CurrentMemoryContext.
std::string text_string(Datum text);
Datum text_datum(std::string_view s);

// bytea <-> bytes.
std::vector<uint8_t> bytea_bytes(Datum bytea);
Datum bytea_datum(const void *data, size_t len);

// jsonb's text form, and jsonb from text (raises on invalid JSON).
std::string jsonb_string(Datum jsonb);
Datum jsonb_datum(std::string_view json);

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

// CHECK_FOR_INTERRUPTS() from C++ frames: a cancel or terminate request
// unwinds them as a PgError.
void check_for_interrupts();

}  // namespace pgves::pg::safe
