// The one place that pulls the server headers into pg_ves' C++ layer.
// Server headers are C; they are wrapped once here so every src/pg file sees
// the same declarations.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}

// Postgres defines these as macros, and they break the standard headers.
#undef snprintf
#undef vsnprintf
#undef printf
#undef sprintf
#undef fprintf
#undef vfprintf
#undef gettext
#undef dgettext
#undef ngettext
#undef dngettext
