#include "pg/base/boundary.hpp"

#include "core/base/error.hpp"

#include <cstdio>
#include <cstring>
#include <string>

namespace pgves::pg {

namespace {
void copy_text(char *dst, size_t size, const char *src) {
  if (!src) return;
  std::strncpy(dst, src, size - 1);
  dst[size - 1] = '\0';
}
}  // namespace

// core::Error codes are stable identifiers; each family has its SQLSTATE.
int sqlstate_for_core(const std::string &code) noexcept {
  if (code == "hash_mismatch") return sqlstate::verification_failed;
  if (code == "invalid_envelope" || code == "invalid_event" || code == "invalid_uuid" ||
      code == "invalid_hex" || code == "invalid_base64" || code == "invalid_proof_index")
    return sqlstate::invalid_envelope;
  if (code == "invalid_key" || code == "invalid_webhook_secret" || code == "crypto_unavailable")
    return sqlstate::key_unavailable;
  if (code == "invalid_policy" || code == "invalid_strategy") return sqlstate::invalid_argument;
  return sqlstate::invalid_json;
}

void capture(PendingError &out, const std::exception *e, bool unknown) noexcept {
  if (unknown || !e) {
    out.sqlstate = sqlstate::internal;
    copy_text(out.message, sizeof out.message, "pg_ves: unknown C++ exception");
    return;
  }
  if (auto *pg = dynamic_cast<const PgError *>(e)) {
    out.pg = pg->data();
    return;
  }
  if (auto *ves = dynamic_cast<const VesError *>(e)) {
    out.sqlstate = ves->sqlstate();
    copy_text(out.message, sizeof out.message, ves->what());
    copy_text(out.detail, sizeof out.detail, ves->detail().c_str());
    copy_text(out.hint, sizeof out.hint, ves->hint().c_str());
    return;
  }
  if (auto *core_error = dynamic_cast<const core::Error *>(e)) {
    out.sqlstate = sqlstate_for_core(core_error->code());
    copy_text(out.message, sizeof out.message, core_error->what());
    std::snprintf(out.detail, sizeof out.detail, "core error: %s", core_error->code().c_str());
    return;
  }
  if (dynamic_cast<const std::bad_alloc *>(e)) {
    out.sqlstate = ERRCODE_OUT_OF_MEMORY;
    copy_text(out.message, sizeof out.message, "pg_ves: out of memory");
    return;
  }
  out.sqlstate = sqlstate::internal;
  copy_text(out.message, sizeof out.message, e->what());
  copy_text(out.hint, sizeof out.hint,
            "This is a bug in pg_ves; the transaction was rolled back and nothing was written.");
}

void raise(const PendingError &err) {
  if (err.pg) ReThrowError(err.pg);
  ereport(ERROR, (errcode(err.sqlstate), errmsg("%s", err.message),
                  err.detail[0] ? errdetail("%s", err.detail) : 0,
                  err.hint[0] ? errhint("%s", err.hint) : 0));
  pg_unreachable();
}

}  // namespace pgves::pg
