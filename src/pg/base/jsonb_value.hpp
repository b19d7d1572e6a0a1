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

}  // namespace pgves::pg
