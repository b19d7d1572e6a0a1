#include "core/platforms/platform_common.hpp"

#include <cmath>

#include "core/ves/ves.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core::platforms {

std::string percent_encode(std::string_view text) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string form_encode(const Params &params) {
  std::string out;
  for (const auto &p : params) {
    if (!out.empty()) out += '&';
    out += percent_encode(p.first);
    out += '=';
    out += percent_encode(p.second);
  }
  return out;
}

std::string join_url(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  std::string out(base);
  out.append(path);
  return out;
}

std::string url_path(std::string_view base) {
  const std::size_t scheme = base.find("://");
  const std::size_t from = scheme == std::string_view::npos ? 0 : scheme + 3;
  const std::size_t slash = base.find('/', from);
  if (slash == std::string_view::npos) return {};
  std::string_view path = base.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return std::string(path);
}

namespace {

[[noreturn]] void refuse(std::string_view name, const std::string &what, std::string_view hint) {
  throw OptionError("invalid_option", "option " + std::string(name) + " " + what,
                    std::string(hint));
}

std::string checked_string(const json::Value &v, std::string_view name, std::string_view hint) {
  if (v.kind() != json::Kind::string) refuse(name, "must be a string", hint);
  const std::string &s = v.as_string();
  if (s.empty()) refuse(name, "must not be empty", hint);
  for (const char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      refuse(name, "must not contain control characters", hint);
  return s;
}

}  // namespace

std::string required_string(const json::Value &options, std::string_view name,
                            std::string_view hint) {
  const json::Value *v = options.find(name);
  if (!v || v->is_null()) refuse(name, "is required", hint);
  return checked_string(*v, name, hint);
}

std::string optional_string(const json::Value &options, std::string_view name, std::string fallback,
                            std::string_view hint) {
  const json::Value *v = options.find(name);
  if (!v || v->is_null()) return fallback;
  return checked_string(*v, name, hint);
}

StoreIds store_ids_option(const json::Value &options) {
  if (options.kind() != json::Kind::object)
    throw OptionError("invalid_option", "destination options must be a JSON object",
                      "Pass options as a jsonb object, e.g. {\"tenant_id\": \"...\", ...}.");
  const char *hint =
      "A platform destination serves one store: give tenant_id and store_id as UUIDs, e.g. "
      "\"0190f1e2-7b3c-7d4e-8f50-123456789abc\".";
  auto uuid = [&](const char *name) {
    const std::string s = required_string(options, name, hint);
    try {
      return ves::format_uuid(ves::parse_uuid(s));
    } catch (const Error &) {
      refuse(name, "must be a UUID", hint);
    }
  };
  StoreIds ids;
  ids.tenant_id = uuid("tenant_id");
  ids.store_id = uuid("store_id");
  return ids;
}

std::optional<std::int64_t> as_integer(const json::Value *value) {
  if (!value || value->kind() != json::Kind::number) return std::nullopt;
  const double d = value->as_number();
  if (!(std::fabs(d) <= 9007199254740992.0) || std::floor(d) != d) return std::nullopt;
  return static_cast<std::int64_t>(d);
}

const std::string *string_member(const json::Value *object, std::string_view key) {
  if (!object) return nullptr;
  const json::Value *v = object->find(key);
  if (!v || v->kind() != json::Kind::string) return nullptr;
  return &v->as_string();
}

std::optional<json::Value> try_parse(std::string_view text) {
  try {
    return json::parse(text);
  } catch (const Error &) {
    return std::nullopt;
  }
}

RowVerdict success() { return RowVerdict{}; }

namespace {

RowVerdict verdict(Verdict v, std::int64_t after_ms, std::string reason) {
  RowVerdict out;
  out.verdict = v;
  out.retry_after_ms = after_ms;
  out.reason = std::move(reason);
  return out;
}

}  // namespace

RowVerdict retry(std::int64_t after_ms, std::string reason) {
  return verdict(Verdict::retry, after_ms, std::move(reason));
}

RowVerdict permanent(std::string reason) {
  return verdict(Verdict::permanent, -1, std::move(reason));
}

RowVerdict reauthenticate(std::string reason) {
  return verdict(Verdict::reauthenticate, -1, std::move(reason));
}

RowVerdict stale(std::string reason) { return verdict(Verdict::stale, -1, std::move(reason)); }

RowVerdict status_verdict(const Answer &answer, std::int64_t now_unix_ms,
                          bool reauthenticate_on_401) {
  return adapters::classify_status(answer, 1, now_unix_ms,
                                   adapters::StatusRules{reauthenticate_on_401, false})
      .front();
}

std::string clip(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return std::string(text.substr(0, n)) + "...";
}

}  // namespace pgves::core::platforms
