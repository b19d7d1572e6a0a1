// pg_ves' shared memory: each part registers a named segment from _PG_init
// and gets a pointer to it once the postmaster has created it. One pair of
// hooks serves them all.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::shmem {

using SizeFn = Size (*)();
using InitFn = void (*)(void *segment);    // called once, when the segment is new
using AttachFn = void (*)(void *segment);  // called in every process that attaches

// Only while shared_preload_libraries are being processed.
void register_segment(const char *name, SizeFn size, InitFn init, AttachFn attach);
void install_hooks();

// Raises a clear error when pg_ves was not preloaded.
void require(const void *segment);

}  // namespace pgves::pg::shmem
