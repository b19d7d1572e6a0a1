// Progress of long pg_ves commands (verification), visible from any session
// in ves.progress, like pg_stat_progress_* for built-in commands.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::progress {
void request_shmem();
// across: the command goes on across transactions until finish() (by
// default, the transaction's end ends it, failed or not).
void start(const char *command, int64 total, bool across = false);
void update(int64 done, int64 failed);
void finish();
}  // namespace pgves::pg::progress
