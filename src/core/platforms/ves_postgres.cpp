#include "core/platforms/ves_postgres.hpp"

#include <cctype>

#include "core/json/canonical_json.hpp"
#include "core/platforms/ves_sequencer.hpp"
#include "core/ves/pull.hpp"
#include "core/ves/envelope.hpp"

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

namespace {

RowVerdict refused(std::string reason) {
  RowVerdict v;
  v.verdict = Verdict::permanent;
  v.reason = std::move(reason);
  return v;
}

bool contains_ci(std::string_view haystack, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    bool eq = true;
    for (std::size_t k = 0; k < needle.size() && eq; ++k)
      eq = std::tolower(static_cast<unsigned char>(haystack[i + k])) == needle[k];
    if (eq) return true;
  }
  return false;
}

}  // namespace

void VesPostgresAdapter::validate_url(std::string_view url) const {
  if (url.rfind("postgresql://", 0) != 0 && url.rfind("postgres://", 0) != 0)
    throw OptionError("invalid_url",
                      "the url of a ves_postgres destination must be a postgresql:// URI",
                      "Name the remote database, e.g. 'postgresql://sequencer.example/shop'; the "
                      "connection itself uses the conninfo option.");
  const std::size_t scheme = url.find("://");
  const std::size_t at = url.find('@');
  const bool uri_password =
      scheme != std::string_view::npos && at != std::string_view::npos &&
      url.substr(scheme + 3, at - scheme - 3).find(':') != std::string_view::npos;
  if (uri_password || contains_ci(url, "password"))
    throw OptionError("invalid_url",
                      "the url of a ves_postgres destination must not carry a password",
                      "Put the connection string with its password in the \"conninfo\" option, "
                      "which is sealed; the url is shown to operators.");
}

std::vector<HeaderSpec> VesPostgresAdapter::validate_options(const json::Value &options) const {
  if (adapters::secret_option(options))
    throw OptionError("invalid_option", "a ves_postgres destination takes no \"secret\"",
                      "Pass the connection string, password included, as \"conninfo\".");
  if (options.find("headers"))
    throw OptionError("invalid_option", "a ves_postgres destination sends no HTTP headers",
                      "Remove \"headers\".");
  if (const json::Value *c = options.find("conninfo"); c && !c->is_null()) {
    if (c->kind() != json::Kind::string || c->as_string().empty())
      throw OptionError("invalid_option", "conninfo must be a non-empty string",
                        "Pass a libpq connection string, e.g. \"host=b port=5432 dbname=shop "
                        "user=pusher password=...\" or a postgresql:// URI.");
    for (char ch : c->as_string())
      if (ch == '\0' || ch == '\n' || ch == '\r')
        throw OptionError("invalid_option", "conninfo must be one line",
                          "Pass the connection string on one line.");
  }
  (void)sequencer::parse_settings(&options);
  (void)pull::parse_options(options);
  return {};
}

std::vector<PlatformRequest> VesPostgresAdapter::build_requests(const Endpoint &endpoint,
                                                                const std::vector<OutboxRow> &rows,
                                                                std::int64_t) const {
  return sequencer::ingest_requests(rows, sequencer::parse_settings(endpoint.options));
}

std::vector<RowVerdict> VesPostgresAdapter::classify(const Answer &answer, std::size_t row_count,
                                                     std::int64_t now_unix_ms) const {
  static const std::string empty;
  static const std::vector<std::pair<std::string, std::string>> no_headers;
  std::vector<OutboxRow> rows(row_count);
  return classify_rows({empty, empty, no_headers}, answer, rows, now_unix_ms);
}

std::vector<RowVerdict> VesPostgresAdapter::classify_rows(const Endpoint &endpoint,
                                                          const Answer &answer,
                                                          const std::vector<OutboxRow> &rows,
                                                          std::int64_t now_unix_ms) const {
  if (answer.transport_error) return adapters::classify_status(answer, rows.size(), now_unix_ms);
  if (answer.status != 200)
    return std::vector<RowVerdict>(
        rows.size(), refused("the remote pg_ves refused the push: " + std::string(answer.body)));
  return sequencer::answer_verdicts(answer.body, rows, sequencer::parse_settings(endpoint.options));
}

InboundCheck VesPostgresAdapter::verify_inbound(std::string_view, const InboundMessage &,
                                                std::int64_t, std::int64_t) const {
  throw Error("unsupported",
              "destinations of kind ves_postgres receive nothing but the answers to their pushes");
}

}  // namespace pgves::core
