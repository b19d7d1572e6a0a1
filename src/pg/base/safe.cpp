#include "pg/base/safe.hpp"

#include "pg/base/boundary.hpp"

extern "C" {
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
}

#include <cstring>

namespace pgves::pg::safe {

std::string text_string(Datum text) {
  return pg_call([&] {
    struct varlena *t = PG_DETOAST_DATUM_PACKED(text);
    return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
  });
}

Datum text_datum(std::string_view s) {
  return pg_call([&] {
    return PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size())));
  });
}

std::vector<uint8_t> bytea_bytes(Datum bytea) {
  return pg_call([&] {
    struct varlena *b = PG_DETOAST_DATUM_PACKED(bytea);
    const auto *p = reinterpret_cast<const uint8_t *>(VARDATA_ANY(b));
    return std::vector<uint8_t>(p, p + VARSIZE_ANY_EXHDR(b));
  });
}

Datum bytea_datum(const void *data, size_t len) {
  return pg_call([&] {
    auto *b = static_cast<struct varlena *>(palloc(VARHDRSZ + len));
    SET_VARSIZE(b, VARHDRSZ + len);
    if (len) std::memcpy(VARDATA(b), data, len);
    return PointerGetDatum(b);
  });
}

std::string jsonb_string(Datum jsonb) {
  return pg_call([&] {
    Jsonb *j = DatumGetJsonbP(jsonb);
    char *out = JsonbToCString(nullptr, &j->root, VARSIZE(j));
    std::string copy(out);
    pfree(out);
    return copy;
  });
}

Datum jsonb_datum(std::string_view json) {
  return pg_call([&] {
    std::string copy(json);
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(copy.c_str()));
  });
}

void spi_connect() {
  pg_call_void([] { pg::spi_connect(); });
}

void spi_finish() {
  pg_call_void([] { SPI_finish(); });
}

int spi_run(SavedPlan &plan, Datum *values, const char *nulls, bool read_only, int expect,
            long limit) {
  return pg_call([&] { return pg::spi_run(plan, values, nulls, read_only, expect, limit); });
}

Datum spi_datum(uint64 row, int column, bool *isnull) {
  return pg_call([&] {
    return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, isnull);
  });
}

bool spi_isnull(uint64 row, int column) {
  bool isnull = false;
  spi_datum(row, column, &isnull);
  return isnull;
}

int64 spi_int64(uint64 row, int column, int64 if_null) {
  bool isnull = false;
  Datum d = spi_datum(row, column, &isnull);
  return isnull ? if_null : DatumGetInt64(d);
}

std::string spi_text(uint64 row, int column) {
  bool isnull = false;
  Datum d = spi_datum(row, column, &isnull);
  return isnull ? std::string() : text_string(d);
}

void check_for_interrupts() {
  pg_call_void([] { CHECK_FOR_INTERRUPTS(); });
}

}  // namespace pgves::pg::safe
