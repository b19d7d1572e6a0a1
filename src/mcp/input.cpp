#include "mcp/input.hpp"

#include <unistd.h>

#include <cerrno>

namespace pgves::mcp {

bool Input::fill() {
  if (eof_) return false;
  char buf[65536];
  ssize_t n;
  do {
    n = read(fd_, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    eof_ = true;
    if (!partial_.empty()) lines_.push_back(std::move(partial_));
    partial_.clear();
    return false;
  }
  partial_.append(buf, static_cast<std::size_t>(n));
  std::size_t start = 0;
  for (std::size_t nl = partial_.find('\n'); nl != std::string::npos;
       nl = partial_.find('\n', start)) {
    std::size_t end = nl;
    if (end > start && partial_[end - 1] == '\r') --end;
    lines_.push_back(partial_.substr(start, end - start));
    start = nl + 1;
  }
  partial_.erase(0, start);
  return true;
}

std::optional<std::string> Input::next_line() {
  if (lines_.empty()) return std::nullopt;
  std::string line = std::move(lines_.front());
  lines_.pop_front();
  return line;
}

}  // namespace pgves::mcp
