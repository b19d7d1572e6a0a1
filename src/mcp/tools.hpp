#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/json/json.hpp"
#include "mcp/database.hpp"

namespace pgves::mcp {

// What a tool call returns: structured content (conforming to the tool's
// outputSchema) with a short text for people, or an error text.
struct ToolResult {
  bool is_error = false;
  core::json::Value structured;
  std::string text;
};

struct Tool {
  std::string name;
  std::string title;
  std::string description;
  bool read_only = true;   // changes nothing: served with --read-only
  bool idempotent = true;  // calling it twice does what calling it once did
  bool destructive = false;
  core::json::Value input_schema;
  core::json::Value output_schema;
  std::function<ToolResult(Database &, const core::json::Value &)> run;
};

// Every tool pg_ves_mcp has, in the order tools/list shows them.
const std::vector<Tool> &all_tools();

// The tools/list entry of a tool.
core::json::Value describe(const Tool &tool);

// Checks the arguments against the tool's inputSchema, then runs it; every
// failure, from the arguments or the database, is a tool error.
ToolResult call_tool(const Tool &tool, Database &db, const core::json::Value &arguments);

}  // namespace pgves::mcp
