#include "mcp/server.hpp"

#include <utility>

#include "core/base/error.hpp"
#include "core/json/canonical_json.hpp"
#include "mcp/tools.hpp"

namespace pgves::mcp {

using core::json::Kind;
using core::json::Value;

const char *const kProtocolVersions[3] = {"2025-06-18", "2025-03-26", "2024-11-05"};

namespace {

constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;

// A JSON-RPC error the request is answered with.
struct RpcError {
  int code;
  std::string message;
};

Value error_reply(const Value &id, int code, const std::string &message) {
  return Value(
      Value::Object{{"jsonrpc", Value("2.0")},
                    {"id", id},
                    {"error", Value(Value::Object{{"code", Value(static_cast<double>(code))},
                                                  {"message", Value(message)}})}});
}

Value result_reply(const Value &id, Value result) {
  return Value(Value::Object{{"jsonrpc", Value("2.0")}, {"id", id}, {"result", std::move(result)}});
}

bool valid_id(const Value &id) {
  return id.kind() == Kind::string || id.kind() == Kind::number || id.is_null();
}

}  // namespace

void Server::run(Input &in, std::FILE *out) {
  input_ = &in;
  db_.watch(in.fd(), [this] { return cancel_requested(); });
  for (;;) {
    while (auto line = in.next_line()) {
      if (line->find_first_not_of(" \t") == std::string::npos) continue;
      if (auto reply = handle_line(*line)) {
        reply->push_back('\n');
        if (std::fwrite(reply->data(), 1, reply->size(), out) != reply->size() ||
            std::fflush(out) != 0)
          return;  // the client has gone
      }
    }
    if (!in.fill() && in.eof() && in.pending().empty()) return;
  }
}

// Called while a statement runs and the input has something to read: takes
// what arrived and says whether it cancels the request being served. At the
// end of the input the request runs to its end and is answered.
Database::Watch Server::cancel_requested() {
  if (!input_ || current_id_.is_null()) return Database::Watch::stop_watching;
  input_->fill();
  auto &lines = input_->pending();
  for (auto it = lines.begin(); it != lines.end(); ++it) {
    if (it->find("notifications/cancelled") == std::string::npos) continue;
    try {
      const Value m = core::json::parse(*it);
      const Value *method = m.find("method");
      const Value *params = m.find("params");
      const Value *id = params ? params->find("requestId") : nullptr;
      if (method && *method == Value("notifications/cancelled") && id && *id == current_id_) {
        lines.erase(it);
        cancelled_ = true;
        return Database::Watch::cancel;
      }
    } catch (const core::Error &) {
      // Not JSON: answered with -32700 when its turn comes.
    }
  }
  return input_->eof() ? Database::Watch::stop_watching : Database::Watch::keep_watching;
}

std::optional<std::string> Server::handle_line(std::string_view line) {
  Value message;
  try {
    message = core::json::parse(line);
  } catch (const core::Error &e) {
    return core::jcs::canonicalize(
        error_reply(Value(), kParseError, std::string("Parse error: ") + e.what()));
  }
  if (message.kind() != Kind::array) {
    auto reply = handle(message);
    if (!reply) return std::nullopt;
    return core::jcs::canonicalize(*reply);
  }
  if (message.as_array().empty())
    return core::jcs::canonicalize(
        error_reply(Value(), kInvalidRequest, "Invalid Request: empty batch"));
  Value::Array replies;
  for (const Value &m : message.as_array())
    if (auto reply = handle(m)) replies.push_back(std::move(*reply));
  if (replies.empty()) return std::nullopt;
  return core::jcs::canonicalize(Value(std::move(replies)));
}

std::optional<Value> Server::handle(const Value &message) {
  const Value *id = message.find("id");
  const Value *method = message.find("method");
  const Value *version = message.find("jsonrpc");
  if (message.kind() != Kind::object || !version || *version != Value("2.0") ||
      (id && !valid_id(*id))) {
    return error_reply(id && valid_id(*id) ? *id : Value(), kInvalidRequest,
                       "Invalid Request: not a JSON-RPC 2.0 message");
  }
  if (!method) {
    // A response to a request of ours; pg_ves_mcp sends none, so it is dropped.
    if (message.find("result") || message.find("error")) return std::nullopt;
    return error_reply(id ? *id : Value(), kInvalidRequest, "Invalid Request: no method");
  }
  if (method->kind() != Kind::string)
    return error_reply(id ? *id : Value(), kInvalidRequest,
                       "Invalid Request: method is not a string");
  const Value *params = message.find("params");
  const Value no_params = Value(Value::Object{});
  if (params && params->kind() != Kind::object && params->kind() != Kind::array) {
    if (!id) return std::nullopt;
    return error_reply(*id, kInvalidRequest, "Invalid Request: params must be an object");
  }
  // Notifications (no id) are never answered: notifications/initialized,
  // notifications/cancelled (a call runs to its end) and any other.
  if (!id) return std::nullopt;
  current_id_ = *id;
  cancelled_ = false;
  try {
    Value result = dispatch(method->as_string(), params ? *params : no_params);
    current_id_ = Value();
    if (cancelled_) return std::nullopt;
    return result_reply(*id, std::move(result));
  } catch (const RpcError &e) {
    current_id_ = Value();
    return error_reply(*id, e.code, e.message);
  } catch (const std::exception &e) {
    current_id_ = Value();
    return error_reply(*id, kInternalError, std::string("Internal error: ") + e.what());
  }
}

Value Server::dispatch(const std::string &method, const Value &params) {
  if (method == "initialize") return initialize(params);
  if (method == "ping") return Value(Value::Object{});
  if (method == "tools/list") return list_tools();
  if (method == "tools/call") return call_tool(params);
  throw RpcError{kMethodNotFound, "Method not found: " + method};
}

Value Server::initialize(const Value &params) {
  std::string version = kProtocolVersions[0];
  if (const Value *asked = params.find("protocolVersion"); asked && asked->kind() == Kind::string)
    for (const char *known : kProtocolVersions)
      if (asked->as_string() == known) version = known;
  return Value(Value::Object{
      {"protocolVersion", Value(version)},
      {"capabilities",
       Value(Value::Object{{"tools", Value(Value::Object{{"listChanged", Value(false)}})}})},
      {"serverInfo", Value(Value::Object{{"name", Value("pg_ves_mcp")},
                                         {"title", Value("pg_ves sync verbs")},
                                         {"version", Value(PGVES_VERSION)}})},
      {"instructions",
       Value(std::string("Tools over pg_ves's SQL sync verbs, run as the database role this "
                         "server connects as") +
             (read_only_ ? "; read-only: only tools that change nothing are served." : "."))}});
}

Value Server::list_tools() {
  Value::Array tools;
  for (const Tool &t : all_tools())
    if (t.read_only || !read_only_) tools.push_back(describe(t));
  return Value(Value::Object{{"tools", Value(std::move(tools))}});
}

Value Server::call_tool(const Value &params) {
  const Value *name = params.find("name");
  if (!name || name->kind() != Kind::string)
    throw RpcError{kInvalidParams, "Invalid params: tools/call needs the tool's name"};
  const Value *arguments = params.find("arguments");
  const Value empty = Value(Value::Object{});
  if (arguments && arguments->is_null()) arguments = nullptr;
  if (arguments && arguments->kind() != Kind::object)
    throw RpcError{kInvalidParams, "Invalid params: arguments must be an object"};
  const Tool *tool = nullptr;
  for (const Tool &t : all_tools())
    if (t.name == name->as_string()) tool = &t;
  if (!tool) throw RpcError{kInvalidParams, "Unknown tool: " + name->as_string()};
  if (!tool->read_only && read_only_)
    throw RpcError{kInvalidParams, "Unknown tool: " + tool->name +
                                       " changes data and pg_ves_mcp runs with --read-only"};

  ToolResult r = mcp::call_tool(*tool, db_, arguments ? *arguments : empty);
  Value::Array content = {Value(Value::Object{{"type", Value("text")}, {"text", Value(r.text)}})};
  Value::Object result;
  if (r.is_error) {
    result.emplace_back("isError", Value(true));
  } else {
    // The structured result again as JSON text, for clients that show only
    // text content.
    content.push_back(Value(Value::Object{{"type", Value("text")},
                                          {"text", Value(core::jcs::canonicalize(r.structured))}}));
    result.emplace_back("structuredContent", r.structured);
    result.emplace_back("isError", Value(false));
  }
  result.emplace_back("content", Value(std::move(content)));
  return Value(std::move(result));
}

}  // namespace pgves::mcp
