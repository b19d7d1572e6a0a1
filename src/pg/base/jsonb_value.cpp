// jsonb <-> json::Value, as tokens: the jsonb is walked (or built) in one
// PostgreSQL call over a plain array of tokens, and the C++ side reads (or
// writes) that array, so no C++ object lives inside a PostgreSQL call.
#include "pg/base/jsonb_value.hpp"

#include "core/json/canonical_json.hpp"
#include "core/json/utf8.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/uuid.h"
#include "utils/numeric.h"
}

#include <string_view>
#include <vector>

namespace pgves::pg {

namespace json = core::json;

namespace {

enum class Tok : uint8 {
  null,
  no,
  yes,
  number,
  string,
  key,
  begin_array,
  end_array,
  begin_object,
  end_object
};

struct Token {
  Tok tok;
  const char *str;  // string, key: the bytes; number: its text (NUL-terminated)
  int len;
};

struct Tokens {
  Token *items;
  int count;
};

// A jsonb string over len bytes at s (not copied).
JsonbValue string_value(const char *s, std::size_t len) {
  JsonbValue v;
  v.type = jbvString;
  v.val.string.val = const_cast<char *>(s);
  v.val.string.len = static_cast<int>(len);
  return v;
}

void push(Tokens *t, int *capacity, Tok tok, const char *str, int len) {
  if (t->count == *capacity) {
    *capacity *= 2;
    t->items = static_cast<Token *>(repalloc(t->items, sizeof(Token) * *capacity));
  }
  t->items[t->count++] = Token{tok, str, len};
}

void push_scalar(Tokens *t, int *capacity, const JsonbValue &v) {
  switch (v.type) {
    case jbvNull:
      push(t, capacity, Tok::null, nullptr, 0);
      break;
    case jbvBool:
      push(t, capacity, v.val.boolean ? Tok::yes : Tok::no, nullptr, 0);
      break;
    case jbvNumeric: {
      char *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
      push(t, capacity, Tok::number, s, static_cast<int>(strlen(s)));
      break;
    }
    case jbvString:
      push(t, capacity, Tok::string, v.val.string.val, v.val.string.len);
      break;
    default:
      elog(ERROR, "pg_ves: unexpected jsonb value type %d", static_cast<int>(v.type));
  }
}

// The jsonb's tokens in iteration order (a raw scalar is just its token).
Tokens tokens_of(const Jsonb *value) {
  return pg_call([&] {
    int capacity = 32;
    Tokens t{static_cast<Token *>(palloc(sizeof(Token) * capacity)), 0};
    JsonbIterator *it = JsonbIteratorInit(const_cast<JsonbContainer *>(&value->root));
    JsonbValue v;
    JsonbIteratorToken r;
    bool raw_scalar = false;
    while ((r = JsonbIteratorNext(&it, &v, false)) != WJB_DONE) {
      switch (r) {
        case WJB_BEGIN_ARRAY:
          if (v.val.array.rawScalar)
            raw_scalar = true;
          else
            push(&t, &capacity, Tok::begin_array, nullptr, 0);
          break;
        case WJB_END_ARRAY:
          if (!raw_scalar) push(&t, &capacity, Tok::end_array, nullptr, 0);
          break;
        case WJB_BEGIN_OBJECT:
          push(&t, &capacity, Tok::begin_object, nullptr, 0);
          break;
        case WJB_END_OBJECT:
          push(&t, &capacity, Tok::end_object, nullptr, 0);
          break;
        case WJB_KEY:
          push(&t, &capacity, Tok::key, v.val.string.val, v.val.string.len);
          break;
        case WJB_VALUE:
        case WJB_ELEM:
          push_scalar(&t, &capacity, v);
          break;
        default:
          break;
      }
    }
    return t;
  });
}

// Reads tokens into values; false when a string is not UTF-8, a number is
// out of a double's range or the nesting is too deep (the text way then
// reports it).
class Reader {
 public:
  explicit Reader(const Tokens &t) : t_(t) {}

  bool read(json::Value *out, int depth) {
    if (pos_ >= t_.count || depth > json::max_depth) return false;
    const Token &k = t_.items[pos_++];
    switch (k.tok) {
      case Tok::null:
        *out = json::Value(nullptr);
        return true;
      case Tok::no:
      case Tok::yes:
        *out = json::Value(k.tok == Tok::yes);
        return true;
      case Tok::number:
        // Out of a double's range: the text way reports where.
        try {
          *out = json::parse(std::string_view(k.str, k.len));
        } catch (const std::exception &) {
          return false;
        }
        return true;
      case Tok::string:
        if (!valid(k)) return false;
        *out = json::Value(std::string(k.str, k.len));
        return true;
      case Tok::begin_array: {
        json::Value::Array a;
        while (pos_ < t_.count && t_.items[pos_].tok != Tok::end_array) {
          a.emplace_back();
          if (!read(&a.back(), depth + 1)) return false;
        }
        ++pos_;
        *out = json::Value(std::move(a));
        return true;
      }
      case Tok::begin_object: {
        json::Value::Object o;
        while (pos_ < t_.count && t_.items[pos_].tok == Tok::key) {
          const Token &key = t_.items[pos_++];
          if (!valid(key)) return false;
          o.emplace_back(std::string(key.str, key.len), json::Value());
          if (!read(&o.back().second, depth + 1)) return false;
        }
        ++pos_;
        *out = json::Value(std::move(o));
        return true;
      }
      default:
        return false;
    }
  }

 private:
  static bool valid(const Token &k) { return core::utf8::is_valid(std::string_view(k.str, k.len)); }

  const Tokens &t_;
  int pos_ = 0;
};

// Flattens a value into tokens whose strings point into it (numbers into
// `numbers`, reserved ahead so that they do not move).
void flatten(const json::Value &v, std::vector<Token> *out, std::vector<std::string> *numbers) {
  switch (v.kind()) {
    case json::Kind::null:
      out->push_back({Tok::null, nullptr, 0});
      break;
    case json::Kind::boolean:
      out->push_back({v.as_bool() ? Tok::yes : Tok::no, nullptr, 0});
      break;
    case json::Kind::number:
      numbers->push_back(core::jcs::canonicalize(v));
      out->push_back({Tok::number, numbers->back().c_str(), 0});
      break;
    case json::Kind::string:
      out->push_back({Tok::string, v.as_string().data(), static_cast<int>(v.as_string().size())});
      break;
    case json::Kind::array:
      out->push_back({Tok::begin_array, nullptr, 0});
      for (const auto &e : v.as_array()) flatten(e, out, numbers);
      out->push_back({Tok::end_array, nullptr, 0});
      break;
    case json::Kind::object:
      out->push_back({Tok::begin_object, nullptr, 0});
      for (const auto &[key, value] : v.as_object()) {
        out->push_back({Tok::key, key.data(), static_cast<int>(key.size())});
        flatten(value, out, numbers);
      }
      out->push_back({Tok::end_object, nullptr, 0});
      break;
  }
}

size_t count_numbers(const json::Value &v) {
  switch (v.kind()) {
    case json::Kind::number:
      return 1;
    case json::Kind::array: {
      size_t n = 0;
      for (const auto &e : v.as_array()) n += count_numbers(e);
      return n;
    }
    case json::Kind::object: {
      size_t n = 0;
      for (const auto &m : v.as_object()) n += count_numbers(m.second);
      return n;
    }
    default:
      return 0;
  }
}

// jsonb from tokens, as jsonb_in builds it (pushJsonbValue; a lone scalar is
// a raw-scalar array).
Jsonb *jsonb_of_tokens(const Token *items, int count) {
  return pg_call([&] {
    JsonbParseState *ps = nullptr;
    JsonbValue *res = nullptr;
    bool scalar = count == 1;
    if (scalar) {
      JsonbValue a;
      a.type = jbvArray;
      a.val.array.rawScalar = true;
      pushJsonbValue(&ps, WJB_BEGIN_ARRAY, &a);
    }
    // Whether each open container is an object (a scalar inside is a value)
    // or an array (an element); kept in a small palloc'd stack.
    int depth = 0, capacity = 16;
    bool *in_object = static_cast<bool *>(palloc(sizeof(bool) * capacity));
    for (int i = 0; i < count; ++i) {
      const Token &k = items[i];
      JsonbValue v;
      JsonbIteratorToken as = (depth > 0 && in_object[depth - 1]) ? WJB_VALUE : WJB_ELEM;
      if (scalar) as = WJB_ELEM;
      switch (k.tok) {
        case Tok::begin_array:
        case Tok::begin_object:
          if (depth == capacity) {
            capacity *= 2;
            in_object = static_cast<bool *>(repalloc(in_object, sizeof(bool) * capacity));
          }
          in_object[depth++] = k.tok == Tok::begin_object;
          res = pushJsonbValue(&ps, k.tok == Tok::begin_object ? WJB_BEGIN_OBJECT : WJB_BEGIN_ARRAY,
                               nullptr);
          continue;
        case Tok::end_array:
        case Tok::end_object:
          --depth;
          res = pushJsonbValue(&ps, k.tok == Tok::end_object ? WJB_END_OBJECT : WJB_END_ARRAY,
                               nullptr);
          continue;
        case Tok::key:
          v = string_value(pnstrdup(k.str, k.len), k.len);
          res = pushJsonbValue(&ps, WJB_KEY, &v);
          continue;
        case Tok::null:
          v.type = jbvNull;
          break;
        case Tok::no:
        case Tok::yes:
          v.type = jbvBool;
          v.val.boolean = k.tok == Tok::yes;
          break;
        case Tok::number:
          v.type = jbvNumeric;
          v.val.numeric = DatumGetNumeric(DirectFunctionCall3(
              numeric_in, CStringGetDatum(k.str), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
          break;
        case Tok::string:
          v = string_value(pnstrdup(k.str, k.len), k.len);
          break;
      }
      res = pushJsonbValue(&ps, as, &v);
    }
    if (scalar) res = pushJsonbValue(&ps, WJB_END_ARRAY, nullptr);
    return JsonbValueToJsonb(res);
  });
}

}  // namespace

json::Value jsonb_value(const Jsonb *value) {
  Tokens t = tokens_of(value);
  json::Value out;
  Reader r(t);
  if (!r.read(&out, 1)) return json::parse(safe::jsonb_text(value));
  return out;
}

Jsonb *jsonb_from_value(const json::Value &value) {
  std::vector<std::string> numbers;
  numbers.reserve(count_numbers(value));
  std::vector<Token> tokens;
  flatten(value, &tokens, &numbers);
  return jsonb_of_tokens(tokens.data(), static_cast<int>(tokens.size()));
}

void jsonb_push_key(JsonbParseState **ps, const char *key) {
  JsonbValue k = string_value(key, strlen(key));
  pushJsonbValue(ps, WJB_KEY, &k);
}

void jsonb_push_datum(JsonbParseState **ps, JsonbIteratorToken as, Oid type, Datum d, bool isnull) {
  JsonbValue v;
  if (isnull) {
    v.type = jbvNull;
    pushJsonbValue(ps, as, &v);
    return;
  }
  switch (type) {
    case UUIDOID: {
      char *s = DatumGetCString(DirectFunctionCall1(uuid_out, d));
      v = string_value(s, strlen(s));
      break;
    }
    case TEXTOID: {
      text *t = DatumGetTextPP(d);
      v = string_value(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
      break;
    }
    case NAMEOID: {
      char *s = NameStr(*DatumGetName(d));
      v = string_value(s, strlen(s));
      break;
    }
    case INT8OID:
      v.type = jbvNumeric;
      v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, d));
      break;
    case TIMESTAMPTZOID: {
      char *s = JsonEncodeDateTime(nullptr, d, TIMESTAMPTZOID, nullptr);
      v = string_value(s, strlen(s));
      break;
    }
    case JSONBOID: {
      Jsonb *j = DatumGetJsonbP(d);
      v.type = jbvBinary;
      v.val.binary.data = &j->root;
      v.val.binary.len = VARSIZE(j) - VARHDRSZ;
      break;
    }
    case TEXTARRAYOID: {
      ArrayType *a = DatumGetArrayTypeP(d);
      Datum *elems;
      bool *enulls;
      int n;
      deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
      pushJsonbValue(ps, WJB_BEGIN_ARRAY, nullptr);
      for (int i = 0; i < n; ++i) jsonb_push_datum(ps, WJB_ELEM, TEXTOID, elems[i], enulls[i]);
      pushJsonbValue(ps, WJB_END_ARRAY, nullptr);
      return;
    }
    default:
      elog(ERROR, "pg_ves: no jsonb form for type %u", type);
  }
  pushJsonbValue(ps, as, &v);
}

}  // namespace pgves::pg
