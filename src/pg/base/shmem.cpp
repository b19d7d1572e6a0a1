#include "pg/base/shmem.hpp"

#include "pg/base/sqlstate.hpp"

extern "C" {
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

namespace pgves::pg::shmem {
namespace {

struct Segment {
  const char *name;
  SizeFn size;
  InitFn init;
  AttachFn attach;
};

constexpr int kMaxSegments = 8;
Segment segments[kMaxSegments];
int nsegments = 0;
shmem_request_hook_type prev_request_hook = nullptr;
shmem_startup_hook_type prev_startup_hook = nullptr;

void on_request() {
  if (prev_request_hook) prev_request_hook();
  for (int i = 0; i < nsegments; ++i) RequestAddinShmemSpace(segments[i].size());
  RequestNamedLWLockTranche("pg_ves", 1);
}

void on_startup() {
  if (prev_startup_hook) prev_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  for (int i = 0; i < nsegments; ++i) {
    bool found = false;
    void *segment = ShmemInitStruct(segments[i].name, segments[i].size(), &found);
    if (!found) segments[i].init(segment);
    segments[i].attach(segment);
  }
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void register_segment(const char *name, SizeFn size, InitFn init, AttachFn attach) {
  if (nsegments == kMaxSegments) elog(ERROR, "pg_ves: too many shared memory segments");
  segments[nsegments++] = {name, size, init, attach};
}

void install_hooks() {
  prev_request_hook = shmem_request_hook;
  shmem_request_hook = on_request;
  prev_startup_hook = shmem_startup_hook;
  shmem_startup_hook = on_startup;
}

void require(const void *segment) {
  if (!segment)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("pg_ves must be loaded via shared_preload_libraries"),
                    errhint("Add pg_ves to shared_preload_libraries in postgresql.conf and "
                            "restart the server.")));
}

}  // namespace pgves::pg::shmem
