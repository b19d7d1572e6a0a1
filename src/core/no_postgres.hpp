#pragma once

// The core is shared by the extension, the unit tests and the fuzzers, and must
// build without a server tree; pulling in Postgres headers here would also drag
// their macros (printf, gettext, Max, ...) into code that never expects them.
#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must not include PostgreSQL headers"
#endif
