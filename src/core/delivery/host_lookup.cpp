#include "core/delivery/host_lookup.hpp"

#include "core/base/signals_blocked.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <system_error>
#include <thread>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

struct HostLookup::State {
  int fd = -1;
  std::atomic<bool> done{false};
  std::vector<Found> found;  // written by the lookup's thread before done

  ~State() {
    if (fd >= 0) close(fd);
  }
};

namespace {

void look_up(const std::string &host, std::vector<std::string> *out, std::string *error) {
  out->clear();
  error->clear();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    *error = rc == EAI_SYSTEM ? std::system_category().message(errno) : gai_strerror(rc);
    return;
  }
  for (addrinfo *a = found; a && out->size() < HostLookup::kMaxAddresses; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {0};
    if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) != 0)
      continue;
    if (std::find(out->begin(), out->end(), text) == out->end()) out->emplace_back(text);
  }
  freeaddrinfo(found);
  if (out->empty()) *error = "no address";
}

}  // namespace

HostLookup::HostLookup(std::vector<std::string> hosts) : state_(std::make_shared<State>()) {
  state_->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (state_->fd < 0) throw std::system_error(errno, std::system_category(), "eventfd");
  std::shared_ptr<State> state = state_;
  SignalsBlocked blocked;
  std::thread([state, hosts = std::move(hosts)] {
    std::vector<Found> found(hosts.size());
    for (std::size_t i = 0; i < hosts.size(); ++i) {
      try {
        look_up(hosts[i], &found[i].addresses, &found[i].error);
      } catch (const std::exception &e) {
        found[i].addresses.clear();
        found[i].error = e.what();
      }
    }
    state->found = std::move(found);
    state->done.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    // Only fails when the counter would overflow, which one write cannot do.
    (void)!write(state->fd, &one, sizeof one);
  }).detach();
}

HostLookup::~HostLookup() = default;

int HostLookup::fd() const { return state_->fd; }
bool HostLookup::done() const { return state_->done.load(std::memory_order_acquire); }
const std::vector<HostLookup::Found> &HostLookup::found() const { return state_->found; }

bool is_numeric_address(const std::string &host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool host_needs_lookup(const std::string &host) {
  return !host.empty() && host.front() != '/' && host.front() != '@' && !is_numeric_address(host);
}

}  // namespace pgves::core
