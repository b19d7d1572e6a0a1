// Which tenants a session may act for.
//
// Two models (README "Tenancy"):
//  * unbound roles (one application role serving every tenant) choose a
//    tenant per session or transaction with ves.tenant_id; resetting it means
//    "every tenant", unless ves.require_tenant is on;
//  * bound roles (ves.bind_role) act only for the tenants bound to them, or to
//    a role they are a member of, whatever they set or reset: ves.tenant_id
//    can only narrow their scope to one of those tenants.
// The bindings are read with a plain heap scan (no SPI, no permission check,
// no search_path) and cached per backend until ves.tenant_bindings or role
// membership changes.
#include "pg/base/tenant.hpp"

#include "pg/base/boundary.hpp"
#include "pg/base/settings.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

#include <cstring>

namespace pgves::pg::tenant {
namespace {

// The bindings that apply to (session user, current role), in TopMemoryContext.
struct Bindings {
  bool valid = false;
  Oid session_user = InvalidOid;
  Oid outer_user = InvalidOid;
  int count = 0;  // 0: unbound
  int capacity = 0;
  pg_uuid_t *tenants = nullptr;
};
Bindings cache;
Oid bindings_relid = InvalidOid;
bool callbacks_registered = false;

void invalidate_relcache(Datum, Oid relid) {
  if (relid == InvalidOid || relid == bindings_relid) {
    cache.valid = false;
    bindings_relid = InvalidOid;
  }
}

void invalidate_syscache(Datum, int, uint32) { cache.valid = false; }

Oid find_bindings_table() {
  Oid nsp = get_namespace_oid("ves", true);
  return OidIsValid(nsp) ? get_relname_relid("tenant_bindings", nsp) : InvalidOid;
}

bool contains(const pg_uuid_t *tenants, int n, const pg_uuid_t *t) {
  for (int i = 0; i < n; ++i)
    if (std::memcmp(tenants[i].data, t->data, UUID_LEN) == 0) return true;
  return false;
}

void add_tenant(const pg_uuid_t *t) {
  if (contains(cache.tenants, cache.count, t)) return;
  if (cache.count == cache.capacity) {
    int capacity = cache.capacity ? cache.capacity * 2 : 4;
    auto *grown = static_cast<pg_uuid_t *>(
        MemoryContextAlloc(TopMemoryContext, capacity * sizeof(pg_uuid_t)));
    if (cache.count) std::memcpy(grown, cache.tenants, cache.count * sizeof(pg_uuid_t));
    if (cache.tenants) pfree(cache.tenants);
    cache.tenants = grown;
    cache.capacity = capacity;
  }
  cache.tenants[cache.count++] = *t;
}

const Bindings &bindings() {
  Oid session = GetSessionUserId();
  Oid outer = GetOuterUserId();
  if (cache.valid && cache.session_user == session && cache.outer_user == outer) return cache;
  if (!callbacks_registered) {
    CacheRegisterRelcacheCallback(invalidate_relcache, (Datum)0);
    CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, invalidate_syscache, (Datum)0);
    CacheRegisterSyscacheCallback(AUTHOID, invalidate_syscache, (Datum)0);
    callbacks_registered = true;
  }
  cache.valid = false;
  cache.count = 0;
  if (!OidIsValid(bindings_relid)) bindings_relid = find_bindings_table();
  if (OidIsValid(bindings_relid)) {
    Relation rel = table_open(bindings_relid, AccessShareLock);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    TableScanDesc scan = table_beginscan(rel, snapshot, 0, nullptr);
    TupleDesc desc = RelationGetDescr(rel);
    HeapTuple tuple;
    while ((tuple = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
      bool role_null, tenant_null;
      Oid role = DatumGetObjectId(heap_getattr(tuple, 1, desc, &role_null));
      Datum tenant = heap_getattr(tuple, 2, desc, &tenant_null);
      if (role_null || tenant_null) continue;
      if (is_member_of_role_nosuper(session, role) || is_member_of_role_nosuper(outer, role))
        add_tenant(DatumGetUUIDP(tenant));
    }
    table_endscan(scan);
    UnregisterSnapshot(snapshot);
    table_close(rel, AccessShareLock);
  }
  cache.session_user = session;
  cache.outer_user = outer;
  cache.valid = true;
  return cache;
}

// ves.tenant_id, parsed; false when unset.
bool setting(pg_uuid_t *out) {
  const char *text = settings::tenant_id;
  if (text == nullptr || text[0] == '\0') return false;
  Datum uuid = DirectFunctionCall1(uuid_in, CStringGetDatum(text));
  std::memcpy(out, DatumGetUUIDP(uuid), sizeof(pg_uuid_t));
  return true;
}

char *uuid_text(const pg_uuid_t *u) {
  return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(u))));
}

[[noreturn]] void deny_bound(const pg_uuid_t *tenant) {
  ereport(ERROR, (errcode(sqlstate::tenant_denied),
                  errmsg("role \"%s\" may not act for tenant %s",
                         GetUserNameFromId(GetOuterUserId(), false), uuid_text(tenant)),
                  errdetail("The role is bound to other tenants with ves.bind_role."),
                  errhint("Act only for the tenants listed for this role in ves.role_bindings.")));
  pg_unreachable();
}

}  // namespace

bool bound() { return bindings().count > 0; }

bool session_tenant(pg_uuid_t *out) {
  bool set = setting(out);
  const Bindings &b = bindings();
  if (b.count > 0) {
    if (set) {
      if (!contains(b.tenants, b.count, out)) deny_bound(out);
      return true;
    }
    if (b.count == 1) {
      *out = b.tenants[0];
      return true;
    }
    ereport(ERROR,
            (errcode(sqlstate::tenant_denied),
             errmsg("role \"%s\" acts for %d tenants and this session chose none",
                    GetUserNameFromId(GetOuterUserId(), false), b.count),
             errhint("SET ves.tenant_id to one of this role's tenants (see ves.role_bindings).")));
  }
  if (!set && settings::require_tenant)
    ereport(ERROR, (errcode(sqlstate::tenant_denied),
                    errmsg("this session must set ves.tenant_id before using pg_ves"),
                    errhint("SET ves.tenant_id = '<tenant uuid>' at the start of each "
                            "request or transaction.")));
  return set;
}

void check_access(const pg_uuid_t *tenant) {
  pg_uuid_t mine;
  bool set = setting(&mine);
  const Bindings &b = bindings();
  if (b.count > 0 && !contains(b.tenants, b.count, tenant)) deny_bound(tenant);
  if (!set) {
    if (b.count == 0 && settings::require_tenant) session_tenant(&mine);  // raises
    return;
  }
  if (std::memcmp(mine.data, tenant->data, UUID_LEN) != 0) {
    ereport(ERROR, (errcode(sqlstate::tenant_denied),
                    errmsg("tenant %s is not this session's tenant", uuid_text(tenant)),
                    errdetail("ves.tenant_id is %s.", settings::tenant_id),
                    errhint("Act for one tenant per session, or reset ves.tenant_id as a role "
                            "that may see every tenant.")));
  }
}

bool visible(const pg_uuid_t *tenant) {
  pg_uuid_t mine;
  bool set = setting(&mine);
  const Bindings &b = bindings();
  if (b.count > 0 && !contains(b.tenants, b.count, tenant)) return false;
  if (set) return std::memcmp(mine.data, tenant->data, UUID_LEN) == 0;
  if (b.count == 0 && settings::require_tenant) session_tenant(&mine);  // raises
  return true;
}

void bindings_changed() {
  cache.valid = false;
  if (!OidIsValid(bindings_relid)) bindings_relid = find_bindings_table();
  if (OidIsValid(bindings_relid)) CacheInvalidateRelcacheByRelid(bindings_relid);
}

}  // namespace pgves::pg::tenant

using namespace pgves::pg;

// ves.current_tenant(): the session's tenant or NULL.
PGVES_FUNCTION(ves_current_tenant) {
  pg_uuid_t *out = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
  if (!tenant::session_tenant(out)) PG_RETURN_NULL();
  PG_RETURN_UUID_P(out);
}

// ves.check_tenant(uuid): raises unless the session may act for the tenant.
PGVES_FUNCTION(ves_check_tenant) {
  if (PG_ARGISNULL(0))
    ereport(ERROR, (errcode(sqlstate::null_argument), errmsg("tenant_id must not be NULL"),
                    errhint("Pass the tenant's UUID.")));
  tenant::check_access(PG_GETARG_UUID_P(0));
  PG_RETURN_VOID();
}

// ves.tenant_visible(uuid), used by row-level security policies and views.
PGVES_FUNCTION(ves_tenant_visible) {
  if (PG_ARGISNULL(0)) PG_RETURN_BOOL(false);
  PG_RETURN_BOOL(tenant::visible(PG_GETARG_UUID_P(0)));
}

// ves._session_bound(): whether this session's roles are bound to tenants.
PGVES_FUNCTION(ves_session_bound) { PG_RETURN_BOOL(tenant::bound()); }

// ves._bindings_changed(): every backend re-reads the bindings once this
// transaction commits (this one at once).
PGVES_FUNCTION(ves_bindings_changed) {
  tenant::bindings_changed();
  PG_RETURN_VOID();
}
