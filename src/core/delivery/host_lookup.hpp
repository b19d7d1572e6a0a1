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
  // What one name gave: its addresses, as numeric text in getaddrinfo's
  // order (at most kMaxAddresses, duplicates dropped), or none and why.
  struct Found {
    std::vector<std::string> addresses;
    std::string error;
  };

  // Starts looking up `hosts` one after the other (addresses for TCP, IPv4
  // and IPv6). Throws std::system_error when no descriptor or thread can be
  // had.
  explicit HostLookup(std::vector<std::string> hosts);
  ~HostLookup();
  HostLookup(const HostLookup &) = delete;
  HostLookup &operator=(const HostLookup &) = delete;

  // Readable once every lookup has ended.
  int fd() const;
  bool done() const;
  // Once done(): one Found per host, in order.
  const std::vector<Found> &found() const;

  static constexpr std::size_t kMaxAddresses = 8;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Whether `host` is a numeric IPv4 or IPv6 address.
bool is_numeric_address(const std::string &host);

// Whether `host` needs a lookup at all: false for a numeric IPv4 or IPv6
// address and for a Unix socket directory (an absolute path, or "@" for
// Linux's abstract namespace), which libpq uses as they are.
bool host_needs_lookup(const std::string &host);

}  // namespace pgves::core
