// pg_ves_mcp: an MCP server (stdio transport) for pg_ves's sync verbs.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "mcp/database.hpp"
#include "mcp/schema.hpp"
#include "mcp/server.hpp"

namespace {

constexpr const char *kUsage =
    "Usage: pg_ves_mcp [--dbname CONNINFO] [--tenant UUID] [--read-only]\n"
    "\n"
    "An MCP server for pg_ves's sync verbs on standard input and output (JSON-RPC 2.0,\n"
    "one message per line). It connects as libpq does: CONNINFO is a connection string\n"
    "or URI, and PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSERVICE apply.\n"
    "\n"
    "  -d, --dbname CONNINFO  the database to connect to\n"
    "  -t, --tenant UUID      set ves.tenant_id for the session\n"
    "  -r, --read-only        serve only tools that change nothing, in a read-only session\n"
    "  -V, --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n";

int usage_error(const std::string &what) {
  std::fprintf(stderr, "pg_ves_mcp: %s\n%s", what.c_str(), kUsage);
  return 2;
}

// The value of an option given as "--name value", "--name=value" or "-n value".
bool option(int argc, char **argv, int &i, const char *long_name, const char *short_name,
            std::string &value, bool &missing) {
  const std::string arg = argv[i];
  const std::string prefix = std::string(long_name) + "=";
  if (arg.compare(0, prefix.size(), prefix) == 0) {
    value = arg.substr(prefix.size());
    return true;
  }
  if (arg != long_name && arg != short_name) return false;
  if (i + 1 >= argc) {
    missing = true;
    return true;
  }
  value = argv[++i];
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  std::string conninfo;
  std::optional<std::string> tenant;
  bool read_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string value;
    bool missing = false;
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "-V" || arg == "--version") {
      std::printf("pg_ves_mcp %s\n", PGVES_VERSION);
      return 0;
    }
    if (arg == "-r" || arg == "--read-only") {
      read_only = true;
    } else if (option(argc, argv, i, "--dbname", "-d", value, missing)) {
      if (missing) return usage_error("--dbname needs a connection string");
      conninfo = value;
    } else if (option(argc, argv, i, "--tenant", "-t", value, missing)) {
      if (missing || !pgves::mcp::is_uuid(value))
        return usage_error("--tenant needs a tenant id (a UUID)");
      tenant = value;
    } else {
      return usage_error("unknown argument \"" + arg + "\"");
    }
  }

  // A client that goes away ends the server at its next write or at EOF.
  std::signal(SIGPIPE, SIG_IGN);

  pgves::mcp::Database db(conninfo, tenant, read_only);
  if (auto e = db.connect())
    std::fprintf(stderr, "pg_ves_mcp: %s (will try again on the first tool call)\n",
                 e->message.c_str());
  pgves::mcp::Server server(db, read_only);

  pgves::mcp::Input input(0);
  server.run(input, stdout);
  return 0;
}
