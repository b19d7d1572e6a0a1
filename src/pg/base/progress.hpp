// Progress of long pg_ves commands (verification), visible from any session
// in ves.progress, like pg_stat_progress_* for built-in commands.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::progress {
void request_shmem();
void start(const char *command, int64 total);
void update(int64 done, int64 failed);
void finish();
}  // namespace pgves::pg::progress
