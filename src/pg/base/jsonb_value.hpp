// jsonb <-> the core's JSON values without a text round trip.
//
// jsonb_value gives the value json::parse would give for the jsonb's text
// form (numbers through the same conversion, members in jsonb's order), and
// raises the same errors: a string that is not UTF-8 or a value nested deeper
// than json::max_depth goes the text way, which reports it. jsonb_from_value
// gives the jsonb of jcs::canonicalize(value), as jsonb_from_text would.
#pragma once

#include "core/json/json.hpp"
#include "pg/base/postgres.hpp"

extern "C" {
#include "utils/jsonb.h"
}

namespace pgves::pg {

core::json::Value jsonb_value(const Jsonb *value);
Jsonb *jsonb_from_value(const core::json::Value &value);

// Building a jsonb object as jsonb_build_object does (keys sorted and unique
// when the object ends). Plain PostgreSQL calls: C++ callers make them
// inside pg_call.
void jsonb_push_key(JsonbParseState **ps, const char *key);
// A value of type uuid, text, name, int8, timestamptz (written in the
// session's time zone), jsonb or text[], or NULL, as jsonb_build_object
// writes it; `as` is WJB_VALUE in an object, WJB_ELEM in an array.
void jsonb_push_datum(JsonbParseState **ps, JsonbIteratorToken as, Oid type, Datum value,
                      bool isnull);

}  // namespace pgves::pg
