#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/json/json.hpp"
#include "mcp/database.hpp"

namespace pgves::mcp {

// The MCP protocol versions pg_ves_mcp speaks, newest first. A client that
// asks for one of them gets it; any other gets the newest.
extern const char *const kProtocolVersions[3];

// The MCP server over one transport: JSON-RPC 2.0 messages in, replies out.
// It serves the tools of tools.hpp, or with read_only only those that
// change nothing.
class Server {
 public:
  Server(Database &db, bool read_only) : db_(db), read_only_(read_only) {}

  // One line of the stdio transport (a message or a batch); the reply line,
  // or nothing when every message was a notification or a response.
  std::optional<std::string> handle_line(std::string_view line);

 private:
  std::optional<core::json::Value> handle(const core::json::Value &message);
  core::json::Value dispatch(const std::string &method, const core::json::Value &params);
  core::json::Value initialize(const core::json::Value &params);
  core::json::Value list_tools();
  core::json::Value call_tool(const core::json::Value &params);

  Database &db_;
  bool read_only_;
};

}  // namespace pgves::mcp
