// The read fence: what makes ves.read_all gap-safe without serialising
// appenders.
//
// Positions come from a sequence, so a transaction can take position 11 and
// commit before another that took 10. A reader that returned 11 and moved its
// cursor past it would never see 10. Every appending transaction therefore
// publishes, in shared memory and *before* it takes a position, a lower bound
// of the positions it may hold; the bound is released only after its commit is
// visible. A reader computes the fence — the smallest published bound, or one
// past every position handed out so far — and only then takes its snapshot,
// returning positions below the fence. See README "Gap-safe reads".
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::fence {

void request_shmem();
void register_callbacks();
// Raises unless pg_ves was preloaded and its shared memory exists.
void require_shmem();
// Whether pg_ves was loaded by shared_preload_libraries (set in the postmaster
// and inherited by every backend it forks).
bool preloaded();

// Bumped whenever an agent key is created, rotated or revoked, so backends
// know their cached signing keys are stale. Lives beside the fence because
// both are per-server state that every backend reads on the append path.
uint64 key_epoch();
void bump_key_epoch();

// Called by an appender before its first position in a transaction.
void before_position();
// Called by an appender with every position it took.
void after_position(int64 position);

// The exclusive upper bound of positions a reader may return now.
int64 current();

}  // namespace pgves::pg::fence
