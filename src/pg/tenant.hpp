// Which tenants the current session may act for (ves.tenant_id,
// ves.require_tenant). Functions run as the extension owner, so they check
// this themselves; row-level security covers direct reads of the tables.
#pragma once

#include "pg/postgres.hpp"

namespace pgves::pg::tenant {
// The session's tenant, or false when it set none.
bool session_tenant(pg_uuid_t *out);
// Raises VE007 unless the session may act for `tenant`.
void check_access(const pg_uuid_t *tenant);
}  // namespace pgves::pg::tenant
