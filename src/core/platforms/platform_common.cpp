#include "core/platforms/platform_common.hpp"

#include <cmath>

#include "core/crypto/crypto.hpp"

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

json::Value send_options(const Endpoint &endpoint) {
  json::Value::Object out;
  auto put = [&out](const std::string &name, const json::Value &value) {
    for (auto &m : out)
      if (m.first == name) {
        m.second = value;
        return;
      }
    out.emplace_back(name, value);
  };
  for (const json::Value *source : {endpoint.options, endpoint.credentials}) {
    if (!source || source->kind() != json::Kind::object) continue;
    for (const auto &m : source->as_object()) put(m.first, m.second);
  }
  if (!endpoint.access_token.empty())
    put("access_token", json::Value(std::string(endpoint.access_token)));
  bool has_tenant = false;
  for (const auto &m : out) has_tenant = has_tenant || m.first == "tenant_id";
  if (!has_tenant)
    out.emplace_back("tenant_id", json::Value("00000000-0000-0000-0000-000000000000"));
  return json::Value(std::move(out));
}

void validate_base_url(std::string_view url, std::string_view example) {
  adapters::validate_http_url(url);
  if (url.find_first_of("?#") != std::string_view::npos)
    throw OptionError("invalid_url", "a platform destination's url must have no query or fragment",
                      "Give the API base only, e.g. " + std::string(example) + ".");
}

void refuse_common_options(const json::Value &options, std::string_view kind) {
  for (const char *name : {"secret", "headers"}) {
    const json::Value *v = options.find(name);
    if (v && !v->is_null())
      throw OptionError("invalid_option",
                        "option " + std::string(name) + " means nothing to a " + std::string(kind) +
                            " destination",
                        "A platform destination authenticates with its own credential options "
                        "(see the README, \"Platform destinations\"); drop " +
                            std::string(name) + ".");
  }
}

namespace {

int severity(Verdict v) {
  switch (v) {
    case Verdict::success:
      return 0;
    case Verdict::retry:
      return 1;
    case Verdict::reauthenticate:
      return 2;
    case Verdict::stale:
    case Verdict::conflict:
      return 3;
    case Verdict::permanent:
      return 4;
    case Verdict::gone:
      return 5;
  }
  return 4;
}

}  // namespace

RowVerdict worst(const RowVerdict &a, const RowVerdict &b) {
  const int sa = severity(a.verdict), sb = severity(b.verdict);
  if (sa != sb) return sa > sb ? a : b;
  if (a.verdict == Verdict::retry && b.retry_after_ms > a.retry_after_ms) return b;
  return a;
}

std::vector<Line> lines_of(const std::vector<OutboxRow> &rows) {
  std::vector<Line> out;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].listings || rows[r].listings->empty())
      throw Error("invalid_listing", "outbox row " + std::to_string(rows[r].id) +
                                         " has no listing to send to a platform");
    for (const ListingFacts &l : *rows[r].listings) {
      if (!l.platform_ref)
        throw Error("invalid_listing", "a listing of outbox row " + std::to_string(rows[r].id) +
                                           " has no platform_ref");
      out.push_back(Line{r, &l});
    }
  }
  return out;
}

std::vector<RowVerdict> row_verdicts(const std::vector<Line> &lines,
                                     const std::vector<RowVerdict> &line_verdicts,
                                     std::size_t row_count) {
  std::vector<RowVerdict> out(row_count);
  std::vector<bool> seen(row_count, false);
  for (std::size_t i = 0; i < lines.size() && i < line_verdicts.size(); ++i) {
    const std::size_t r = lines[i].row;
    if (r >= row_count) continue;
    out[r] = seen[r] ? worst(out[r], line_verdicts[i]) : line_verdicts[i];
    seen[r] = true;
  }
  return out;
}

const std::string *inbound_header(const InboundMessage &message, std::string_view name) {
  for (const auto &h : message.headers) {
    if (h.first.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) {
      auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
      same = lower(h.first[i]) == lower(name[i]);
    }
    if (same) return &h.second;
  }
  return nullptr;
}

std::string sha256_hex(std::string_view text) {
  return crypto::bin2hex(crypto::sha256_32(crypto::ByteView(text)));
}

std::string clip(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return std::string(text.substr(0, n)) + "...";
}

}  // namespace pgves::core::platforms
