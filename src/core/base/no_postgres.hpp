// The core is shared by the extension, the unit tests and the fuzzers, and must
// build without a server tree; pulling in Postgres headers here would also drag
// their macros (printf, gettext, Max, ...) into code that never expects them.
//
// Every src/core source includes this header after all its other includes, so
// a PostgreSQL header reaching it through any of them stops the build (hence
// no include guard: it must test again wherever it is included).
// scripts/test.sh checks the placement and that it fires.
#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must not include PostgreSQL headers"
#endif
