#include "pg/base/spi_plan.hpp"

namespace pgves::pg {

void spi_connect() {
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_ves: SPI_connect failed");
}

int spi_run(SavedPlan &p, Datum *values, const char *nulls, bool read_only, int expect,
            long limit) {
  if (p.plan == nullptr) {
    SPIPlanPtr plan = SPI_prepare(p.sql, p.nargs, p.argtypes);
    if (plan == nullptr)
      elog(ERROR, "pg_ves: cannot prepare \"%s\": %s", p.sql, SPI_result_code_string(SPI_result));
    SPI_keepplan(plan);
    p.plan = plan;
  }
  int rc = SPI_execute_plan(p.plan, values, nulls, read_only, limit);
  if (rc != expect) elog(ERROR, "pg_ves: \"%s\" returned %s", p.sql, SPI_result_code_string(rc));
  return rc;
}

int64 spi_int64(int column, int64 missing) {
  if (SPI_processed == 0) return missing;
  bool isnull = false;
  Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);
  return isnull ? missing : DatumGetInt64(d);
}

}  // namespace pgves::pg
