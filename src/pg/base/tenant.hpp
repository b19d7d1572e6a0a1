// Which tenants the current session may act for (ves.tenant_id,
// ves.require_tenant, ves.bind_role). Functions run as the extension owner,
// so they check this themselves; row-level security and the views over
// tenant data call ves.tenant_visible.
#pragma once

#include "pg/base/postgres.hpp"

namespace pgves::pg::tenant {
// The one tenant this session acts for, or false when it may act for every
// tenant. Raises VE007 when it must choose one and has not.
bool session_tenant(pg_uuid_t *out);
// Raises VE007 unless the session may act for `tenant`.
void check_access(const pg_uuid_t *tenant);
// Whether rows of `tenant` are visible to this session.
bool visible(const pg_uuid_t *tenant);
// Whether the session's roles are bound to tenants (ves.bind_role).
bool bound();
// Makes every backend re-read the bindings after this transaction commits.
void bindings_changed();
}  // namespace pgves::pg::tenant
