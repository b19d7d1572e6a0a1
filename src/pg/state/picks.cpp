#include "pg/state/picks.hpp"

#include "pg/base/boundary.hpp"

extern "C" {
#include "utils/jsonb.h"
}

namespace pgves::pg::picks {

std::vector<Pick> of(const pgves::core::json::Value &state,
                     const pgves::core::json::Value &remote) {
  std::vector<Pick> list;
  for (const auto &[key, value] : state.as_object()) {
    const pgves::core::json::Value *rv = remote.find(key);
    list.push_back({key, rv && *rv == value});
  }
  return list;
}

Datum object(const std::vector<Pick> &list, Datum local, Datum remote) {
  // No C++ object is created inside: a Postgres error here unwinds only
  // through `list`, which outlives the call.
  return pg_call([&] {
    Jsonb *l = local ? DatumGetJsonbP(local) : nullptr;
    Jsonb *r = remote ? DatumGetJsonbP(remote) : nullptr;
    JsonbParseState *ps = nullptr;
    pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
    for (const Pick &p : list) {
      Jsonb *from = p.from_remote ? r : l;
      JsonbValue k;
      k.type = jbvString;
      k.val.string.val = pstrdup(p.key.c_str());
      k.val.string.len = static_cast<int>(p.key.size());
      JsonbValue *v = from ? getKeyJsonValueFromContainer(&from->root, k.val.string.val,
                                                          k.val.string.len, nullptr)
                           : nullptr;
      if (v == nullptr) elog(ERROR, "pg_ves: picked member \"%s\" is missing", k.val.string.val);
      pushJsonbValue(&ps, WJB_KEY, &k);
      pushJsonbValue(&ps, WJB_VALUE, v);
    }
    JsonbValue *res = pushJsonbValue(&ps, WJB_END_OBJECT, nullptr);
    return PointerGetDatum(JsonbValueToJsonb(res));
  });
}

Datum with_first_member(const char *key, Datum value, Datum object) {
  return pg_call([&] {
    Jsonb *first = DatumGetJsonbP(value);
    Jsonb *rest = DatumGetJsonbP(object);
    JsonbParseState *ps = nullptr;
    JsonbValue k;
    k.type = jbvString;
    k.val.string.val = pstrdup(key);
    k.val.string.len = static_cast<int>(strlen(key));
    pushJsonbValue(&ps, WJB_BEGIN_OBJECT, nullptr);
    pushJsonbValue(&ps, WJB_KEY, &k);
    JsonbValue sv;
    sv.type = jbvBinary;
    sv.val.binary.data = &first->root;
    sv.val.binary.len = VARSIZE(first) - VARHDRSZ;
    pushJsonbValue(&ps, WJB_VALUE, &sv);
    JsonbIterator *it = JsonbIteratorInit(&rest->root);
    JsonbValue v;
    JsonbIteratorToken tok;
    bool outer = true;
    while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
      if (outer) {  // skip the inner WJB_BEGIN_OBJECT
        outer = false;
        continue;
      }
      if (tok == WJB_END_OBJECT) break;
      pushJsonbValue(&ps, tok, tok == WJB_KEY || tok == WJB_VALUE ? &v : nullptr);
    }
    return PointerGetDatum(JsonbValueToJsonb(pushJsonbValue(&ps, WJB_END_OBJECT, nullptr)));
  });
}

}  // namespace pgves::pg::picks
