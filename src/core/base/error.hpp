#pragma once

#include <stdexcept>
#include <string>

namespace pgves::core {

// Every failure in the core surfaces as this one type so the Postgres layer can
// translate it at a single boundary: the code is a stable identifier that maps
// to a SQLSTATE, the message is meant for the person reading the error.
class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string &message)
      : std::runtime_error(message), code_(std::move(code)) {}

  const std::string &code() const noexcept { return code_; }

 private:
  std::string code_;
};

}  // namespace pgves::core
