#pragma once

#include <deque>
#include <optional>
#include <string>

namespace pgves::mcp {

// The stdio transport's input: lines read from a file descriptor as they
// arrive, so that a message sent while a tool runs (a cancellation) can be
// seen before the tool ends. Lines end with \n; a \r before it is dropped;
// a last line without \n counts at EOF.
class Input {
 public:
  explicit Input(int fd) : fd_(fd) {}

  int fd() const { return fd_; }
  bool eof() const { return eof_; }

  // One read(2); blocks when nothing is waiting. Returns false at EOF or on
  // an error (which counts as EOF).
  bool fill();

  // The next complete line, if one has arrived.
  std::optional<std::string> next_line();

  // The complete lines received and not yet taken, for a look ahead.
  std::deque<std::string> &pending() { return lines_; }

 private:
  int fd_;
  bool eof_ = false;
  std::string partial_;
  std::deque<std::string> lines_;
};

}  // namespace pgves::mcp
