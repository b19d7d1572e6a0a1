#include "pg/tenant.hpp"

#include "pg/boundary.hpp"
#include "pg/settings.hpp"

#include <cstring>

namespace pgves::pg::tenant {

bool session_tenant(pg_uuid_t *out) {
  const char *text = settings::tenant_id;
  if (text == nullptr || text[0] == '\0') {
    if (settings::require_tenant)
      ereport(ERROR, (errcode(sqlstate::tenant_denied),
                      errmsg("this session must set ves.tenant_id before using pg_ves"),
                      errhint("SET ves.tenant_id = '<tenant uuid>' at the start of each "
                              "request or transaction.")));
    return false;
  }
  Datum uuid = DirectFunctionCall1(uuid_in, CStringGetDatum(text));
  std::memcpy(out, DatumGetUUIDP(uuid), sizeof(pg_uuid_t));
  return true;
}

void check_access(const pg_uuid_t *tenant) {
  pg_uuid_t mine;
  if (!session_tenant(&mine)) return;
  if (std::memcmp(mine.data, tenant->data, UUID_LEN) != 0) {
    char *want = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(tenant))));
    ereport(ERROR, (errcode(sqlstate::tenant_denied),
                    errmsg("tenant %s is not this session's tenant", want),
                    errdetail("ves.tenant_id is %s.", settings::tenant_id),
                    errhint("Act for one tenant per session, or reset ves.tenant_id as a role "
                            "that may see every tenant.")));
  }
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

// ves.tenant_visible(uuid), used by row-level security policies.
PGVES_FUNCTION(ves_tenant_visible) {
  if (PG_ARGISNULL(0)) PG_RETURN_BOOL(false);
  pg_uuid_t mine;
  if (!tenant::session_tenant(&mine)) PG_RETURN_BOOL(true);
  PG_RETURN_BOOL(std::memcmp(mine.data, PG_GETARG_UUID_P(0)->data, UUID_LEN) == 0);
}
