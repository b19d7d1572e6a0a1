// Prepared SPI statements kept for the life of the backend. The plan cache
// re-plans them when the tables they name change, so a re-created extension
// keeps working.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg {

struct SavedPlan {
  const char *sql;
  int nargs;
  Oid argtypes[32];
  SPIPlanPtr plan;
};

// SPI_connect that raises on failure.
void spi_connect();

// Runs a saved plan; `expect` is the SPI result code it must return.
// Only callable between SPI_connect and SPI_finish.
int spi_run(SavedPlan &p, Datum *values, const char *nulls, bool read_only, int expect,
            long limit = 0);

// First column of the first row as int64, or `missing` when there is no row.
int64 spi_int64(int column, int64 missing);

}  // namespace pgves::pg
