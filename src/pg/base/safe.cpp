#include "pg/base/safe.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/tenant.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
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

Datum uuid_datum(const pg_uuid_t &id) {
  return pg_call([&] {
    auto *copy = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
    *copy = id;
    return UUIDPGetDatum(copy);
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

std::string jsonb_text(const Jsonb *value) {
  char *text = pg_call([&] {
    return JsonbToCString(nullptr, const_cast<JsonbContainer *>(&value->root), VARSIZE(value));
  });
  std::string out(text);
  pfree(text);
  return out;
}

Jsonb *jsonb_from_text(const std::string &text) {
  return pg_call(
      [&] { return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text.c_str()))); });
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

Portal cursor_open(const std::string &sql, int nargs, Oid *types, Datum *values,
                   const char *nulls) {
  return pg_call([&] {
    return SPI_cursor_open_with_args(nullptr, sql.c_str(), nargs, types, values, nulls, true, 0);
  });
}

uint64 cursor_fetch(Portal portal, long count) {
  return pg_call([&] {
    CHECK_FOR_INTERRUPTS();
    SPI_cursor_fetch(portal, true, count);
    return SPI_processed;
  });
}

void free_tuptable(SPITupleTable *batch) {
  pg_call_void([&] { SPI_freetuptable(batch); });
}

void cursor_close(Portal portal) {
  pg_call_void([&] { SPI_cursor_close(portal); });
}

void check_tenant_access(const pg_uuid_t &tenant) {
  pg_call_void([&] { tenant::check_access(&tenant); });
}

bool session_tenant(pg_uuid_t *out) {
  return pg_call([&] { return tenant::session_tenant(out); });
}

void init_materialized_srf(FunctionCallInfo fcinfo) {
  pg_call_void([&] { InitMaterializedSRF(fcinfo, 0); });
}

void put_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls) {
  pg_call_void([&] {
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  });
}

Datum composite_result(FunctionCallInfo fcinfo, Datum *values, bool *nulls) {
  return pg_call([&] {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
      elog(ERROR, "pg_ves: a function returning a row was declared without one");
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
  });
}

void check_for_interrupts() {
  pg_call_void([] { CHECK_FOR_INTERRUPTS(); });
}

// --- Arguments.

const Jsonb *jsonb_detoast(Datum jsonb) {
  return pg_call([&] { return DatumGetJsonbP(jsonb); });
}

std::vector<std::string> text_array_strings(Datum array) {
  std::vector<std::string> out;
  pg_call_void([&] {
    ArrayType *a = DatumGetArrayTypeP(array);
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    for (int i = 0; i < n; ++i) {
      if (nulls[i]) continue;
      text *t = DatumGetTextPP(elems[i]);
      out.emplace_back(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    }
  });
  return out;
}

}  // namespace pgves::pg::safe
