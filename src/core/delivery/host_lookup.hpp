// A host name looked up on a thread of its own, so that the thread that asked
// goes on meanwhile (the sync worker serves every destination from one
// thread; getaddrinfo may wait seconds for a slow DNS server).
//
// The lookup signals its end on a file descriptor (an eventfd, readable once
// it is done) that the asker watches beside its other sockets. A lookup that
// is given up (its HostLookup destroyed) finishes on its thread and frees
// itself there; its descriptor stays open until then, so the number is never
// reused under a watcher that has not unwatched it yet.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace pgves::core {

class HostLookup {
 public:
  // Starts looking up `host` (addresses for TCP, IPv4 and IPv6). Throws
  // std::system_error when no descriptor or thread can be had.
  explicit HostLookup(const std::string &host);
  ~HostLookup();
  HostLookup(const HostLookup &) = delete;
  HostLookup &operator=(const HostLookup &) = delete;

  // Readable once the lookup has ended.
  int fd() const;
  bool done() const;
  // Once done(): the addresses found, as numeric text in getaddrinfo's order
  // (at most kMaxAddresses, duplicates dropped), or none and why.
  const std::vector<std::string> &addresses() const;
  const std::string &error() const;

  static constexpr std::size_t kMaxAddresses = 8;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Whether `host` needs a lookup at all: false for a numeric IPv4 or IPv6
// address and for a Unix socket directory (an absolute path, or "@" for
// Linux's abstract namespace), which libpq uses as they are.
bool host_needs_lookup(const std::string &host);

}  // namespace pgves::core
