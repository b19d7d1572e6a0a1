// Heap scans of the shared catalogs for the launcher (see shared_catalog.hpp).
#include "pg/sync/shared_catalog.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
}

namespace pgves::pg::shared_catalog {
namespace {

// The roles a worker role's memberships are followed through, at most. Far
// more than any real grant graph; beyond it may_connect says "allowed".
constexpr int kMaxRoles = 256;

// The first tuple of `catalog` where `attno` equals `value` (compared by
// `proc`), copied into the current memory context; nullptr if none. A heap
// scan: InvalidOid and indexOK = false keep systable_beginscan off the index.
HeapTuple first_match(Oid catalog, AttrNumber attno, RegProcedure proc, Datum value,
                      TupleDesc *desc) {
  ScanKeyData key;
  ScanKeyInit(&key, attno, BTEqualStrategyNumber, proc, value);
  Relation rel = table_open(catalog, AccessShareLock);
  SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 1, &key);
  HeapTuple tup = systable_getnext(scan);
  HeapTuple copy = HeapTupleIsValid(tup) ? heap_copytuple(tup) : nullptr;
  if (desc) *desc = CreateTupleDescCopy(RelationGetDescr(rel));
  systable_endscan(scan);
  table_close(rel, AccessShareLock);
  return copy;
}

void fill_role(HeapTuple tup, Role *out) {
  auto *form = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tup));
  out->oid = form->oid;
  out->superuser = form->rolsuper;
  out->can_login = form->rolcanlogin;
  out->inherits = form->rolinherit;
}

// Whether role `oid` exists and inherits the privileges of its roles.
bool role_inherits(Oid oid) {
  HeapTuple tup =
      first_match(AuthIdRelationId, Anum_pg_authid_oid, F_OIDEQ, ObjectIdGetDatum(oid), nullptr);
  if (!tup) return false;
  Role r;
  fill_role(tup, &r);
  heap_freetuple(tup);
  return r.inherits;
}

bool contains(const Oid *set, int n, Oid oid) {
  for (int i = 0; i < n; ++i)
    if (set[i] == oid) return true;
  return false;
}

// Adds to `roles` (which holds the worker role first) every role whose
// privileges it holds: the roles each inheriting member is directly a member
// of, from pg_auth_members, breadth first. False if the set overflowed.
bool collect_memberships(Oid *roles, int *n, bool first_inherits) {
  for (int i = 0; i < *n; ++i) {
    if (!(i == 0 ? first_inherits : role_inherits(roles[i]))) continue;
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_auth_members_member, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(roles[i]));
    Relation rel = table_open(AuthMemRelationId, AccessShareLock);
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 1, &key);
    bool overflow = false;
    HeapTuple tup;
    while (!overflow && HeapTupleIsValid(tup = systable_getnext(scan))) {
      Oid granted = reinterpret_cast<Form_pg_auth_members>(GETSTRUCT(tup))->roleid;
      if (!OidIsValid(granted) || contains(roles, *n, granted)) continue;
      if (*n == kMaxRoles)
        overflow = true;
      else
        roles[(*n)++] = granted;
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    if (overflow) return false;
  }
  return true;
}

bool grants_connect(const AclItem &item) { return (ACLITEM_GET_PRIVS(item) & ACL_CONNECT) != 0; }

}  // namespace

bool find_role(const char *name, Role *out) {
  HeapTuple tup = first_match(AuthIdRelationId, Anum_pg_authid_rolname, F_NAMEEQ,
                              CStringGetDatum(name), nullptr);
  if (!tup) return false;
  fill_role(tup, out);
  heap_freetuple(tup);
  return true;
}

bool find_database(const char *name, Database *out) {
  TupleDesc desc = nullptr;
  HeapTuple tup = first_match(DatabaseRelationId, Anum_pg_database_datname, F_NAMEEQ,
                              CStringGetDatum(name), &desc);
  if (!tup) return false;
  auto *form = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
  out->oid = form->oid;
  out->owner = form->datdba;
  out->acl = nullptr;
  out->acl_unreadable = false;
  bool isnull = true;
  Datum acl = heap_getattr(tup, Anum_pg_database_datacl, desc, &isnull);
  if (!isnull) {
    if (VARATT_IS_EXTERNAL(DatumGetPointer(acl)))
      out->acl_unreadable = true;
    else
      out->acl = DatumGetAclPCopy(acl);  // decompresses in memory if need be
  }
  heap_freetuple(tup);
  FreeTupleDesc(desc);
  return true;
}

bool may_connect(const Role &role, const Database &db) {
  if (db.acl_unreadable) return true;
  // The default ACL grants CONNECT to PUBLIC.
  if (!db.acl) return true;
  const AclItem *items = ACL_DAT(db.acl);
  int nitems = ACL_NUM(db.acl);
  bool others = false;  // CONNECT granted to some other role
  for (int i = 0; i < nitems; ++i) {
    if (!grants_connect(items[i])) continue;
    if (items[i].ai_grantee == ACL_ID_PUBLIC || items[i].ai_grantee == role.oid) return true;
    others = true;
  }
  if (!others) return false;
  Oid roles[kMaxRoles + 1];
  int n = 0;
  roles[n++] = role.oid;
  if (!collect_memberships(roles, &n, role.inherits)) return true;
  // Privileges granted to pg_database_owner are held by the owner's members,
  // as in a session connected to that database.
  if (contains(roles, n, db.owner)) roles[n++] = ROLE_PG_DATABASE_OWNER;
  for (int i = 0; i < nitems; ++i)
    if (grants_connect(items[i]) && contains(roles + 1, n - 1, items[i].ai_grantee)) return true;
  return false;
}

}  // namespace pgves::pg::shared_catalog
