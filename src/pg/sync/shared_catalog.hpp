// What the launcher reads from the shared catalogs (pg_authid,
// pg_auth_members, pg_database) before it starts a worker.
//
// The launcher is connected to no database. Until a normal backend has
// connected and written the shared relcache init file (after initdb, after a
// crash restart), the relcache cannot build a shared catalog's index: that
// needs a database's pg_class, and trying ends the process with FATAL. So
// nothing here uses an index or the syscache: each lookup is a heap scan of
// a small catalog, the way PostgreSQL's autovacuum launcher lists databases.
//
// Call these inside a transaction, under pg_call: they raise Postgres errors.
// They keep only trivially destructible locals.
#pragma once

#include "pg/base/postgres.hpp"

extern "C" {
#include "utils/acl.h"
}

namespace pgves::pg::shared_catalog {

struct Role {
  Oid oid;
  bool superuser;
  bool can_login;
  bool inherits;  // rolinherit: holds the privileges of the roles it is a member of
};

struct Database {
  Oid oid;
  Oid owner;
  // datacl, detoasted in the current memory context; nullptr for the default
  // ACL (the owner holds every privilege, PUBLIC holds CONNECT and TEMP).
  Acl *acl;
  // datacl is stored out of line: reading it needs the TOAST index, which the
  // launcher cannot open (see above), so it is left unread.
  bool acl_unreadable;
};

// The role named `name`; false if there is none.
bool find_role(const char *name, Role *out);

// The database named `name`; false if there is none.
bool find_database(const char *name, Database *out);

// Whether `role` holds CONNECT on `db` as PostgreSQL decides it for a role
// that is not a superuser: a grant in the ACL to PUBLIC, to the role, or to a
// role it is a member of through roles that inherit (pg_database_owner
// counting as the owner). An ACL or a membership graph too large to read here
// counts as allowed: the worker's own connection then decides.
bool may_connect(const Role &role, const Database &db);

}  // namespace pgves::pg::shared_catalog
