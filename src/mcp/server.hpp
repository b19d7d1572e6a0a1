#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "core/json/json.hpp"
#include "mcp/database.hpp"
#include "mcp/input.hpp"

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

  // Serves the stdio transport: a message (or a batch) per input line, a
  // reply per line on out, until the input ends.
  void run(Input &in, std::FILE *out);

  // One line of the stdio transport; the reply line, or nothing when every
  // message was a notification, a response or a cancelled request.
  std::optional<std::string> handle_line(std::string_view line);

 private:
  std::optional<core::json::Value> handle(const core::json::Value &message);
  core::json::Value dispatch(const std::string &method, const core::json::Value &params);
  core::json::Value initialize(const core::json::Value &params);
  core::json::Value list_tools();
  core::json::Value call_tool(const core::json::Value &params);
  Database::Watch cancel_requested();

  Database &db_;
  bool read_only_;
  Input *input_ = nullptr;
  // The request being served, and whether the client cancelled it
  // (notifications/cancelled): a cancelled request gets no reply.
  core::json::Value current_id_;
  bool cancelled_ = false;
};

}  // namespace pgves::mcp
