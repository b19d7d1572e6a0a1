#include "pg/sync/http_engine.hpp"

#include "core/delivery/address_filter.hpp"
#include "pg/base/boundary.hpp"
#include "pg/base/safe.hpp"
#include "pg/base/settings.hpp"

extern "C" {
#include "storage/latch.h"
#include "utils/wait_event.h"
}

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace pgves::pg {

namespace {

// Enough for an adapter to read a whole answer about one row (a sequencer's
// receipt); rows store only its start.
constexpr size_t kExcerptBytes = 16384;

struct Transfer {
  std::uint64_t tag = 0;
  std::string refused;  // set when an address was refused by ves.destination_address_reject
  CURL *easy = nullptr;
  curl_slist *headers = nullptr;
  std::string body;
  HttpResult result;
  size_t cap = kExcerptBytes;  // bytes of the answer kept
};

// Callbacks are C; nothing may throw through them. They only append to
// strings whose capacity was reserved up front, and catch everything else.
size_t on_body(char *data, size_t size, size_t n, void *user) noexcept {
  auto *t = static_cast<Transfer *>(user);
  size_t len = size * n;
  try {
    if (t->result.excerpt.size() < t->cap)
      t->result.excerpt.append(data, std::min(len, t->cap - t->result.excerpt.size()));
  } catch (...) {
  }
  return len;
}

// The value of header `name` (lowercase, with its colon) when line is that
// header, trimmed; false otherwise.
bool header_value(const char *line, size_t len, const char *name, std::string &out) noexcept {
  size_t name_len = strlen(name);
  if (len <= name_len || strncasecmp(line, name, name_len) != 0) return false;
  try {
    std::string value(line + name_len, len - name_len);
    size_t b = value.find_first_not_of(" \t"), e = value.find_last_not_of(" \t\r\n");
    out = b == std::string::npos ? "" : value.substr(b, e - b + 1);
  } catch (...) {
  }
  return true;
}

size_t on_header(char *data, size_t size, size_t n, void *user) noexcept {
  auto *t = static_cast<Transfer *>(user);
  size_t len = size * n;
  if (!header_value(data, len, "retry-after:", t->result.retry_after))
    header_value(data, len, "x-amzn-ratelimit-limit:", t->result.rate_limit);
  return len;
}

// Every connection libcurl opens passes here with the address it resolved,
// so ves.destination_address_reject applies after DNS: a host name cannot
// smuggle a refused address past it.
// Records why a transfer may not use this address; true when it may not.
bool refuse_address(Transfer *t, const std::uint8_t *bytes, size_t len) noexcept {
  const core::Cidr *hit = core::find_cidr(settings::address_reject(), bytes, len);
  if (!hit) return false;
  try {
    t->refused = "connection to " + core::address_text(bytes, len) +
                 " refused by ves.destination_address_reject (" + core::cidr_text(*hit) + ")";
  } catch (...) {
  }
  return true;
}

// Every connection libcurl opens passes here with the address it resolved,
// so ves.destination_address_reject applies after DNS: a host name cannot
// smuggle a refused address past it.
curl_socket_t on_open_socket(void *user, curlsocktype purpose, curl_sockaddr *address) noexcept {
  auto *t = static_cast<Transfer *>(user);
  if (purpose == CURLSOCKTYPE_IPCXN) {
    if (address->family == AF_INET && address->addrlen >= sizeof(sockaddr_in)) {
      const auto *in = reinterpret_cast<const sockaddr_in *>(&address->addr);
      if (refuse_address(t, reinterpret_cast<const std::uint8_t *>(&in->sin_addr), 4))
        return CURL_SOCKET_BAD;
    } else if (address->family == AF_INET6 && address->addrlen >= sizeof(sockaddr_in6)) {
      const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(&address->addr);
      if (refuse_address(t, reinterpret_cast<const std::uint8_t *>(&in6->sin6_addr), 16))
        return CURL_SOCKET_BAD;
    }
  }
  return ::socket(address->family, address->socktype, address->protocol);
}

// Runs before each request, on a new or a reused connection: a kept-alive
// connection opened before the list was reloaded is checked too.
int on_prereq(void *user, char *primary_ip, char *, int, int) noexcept {
  auto *t = static_cast<Transfer *>(user);
  std::uint8_t bytes[16];
  if (inet_pton(AF_INET, primary_ip, bytes) == 1)
    return refuse_address(t, bytes, 4) ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
  if (inet_pton(AF_INET6, primary_ip, bytes) == 1)
    return refuse_address(t, bytes, 16) ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
  return CURL_PREREQFUNC_OK;
}

// Aborts transfers when the process is asked to stop.
int on_progress(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
  return (ProcDiePending || QueryCancelPending) ? 1 : 0;
}

}  // namespace

struct HttpEngine::Impl {
  CURLM *multi = nullptr;
  int epfd = -1;
  WaitEventSet *wait_set = nullptr;
  std::int64_t curl_deadline_ms = -1;
  std::unordered_map<CURL *, std::unique_ptr<Transfer>> transfers;
  std::vector<CURL *> idle_handles;
  std::vector<HttpResult> completed;
  std::unique_ptr<SideCalls> side;
  std::unordered_map<int, bool> watched;  // side calls' sockets: fd -> write too

  static int on_socket(CURL *, curl_socket_t s, int what, void *user, void *socketp) noexcept {
    auto *self = static_cast<Impl *>(user);
    epoll_event ev{};
    ev.data.fd = s;
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epfd, EPOLL_CTL_DEL, s, nullptr);
      curl_multi_assign(self->multi, s, nullptr);
      return 0;
    }
    ev.events = (what & CURL_POLL_IN ? uint32_t{EPOLLIN} : 0u) |
                (what & CURL_POLL_OUT ? uint32_t{EPOLLOUT} : 0u);
    if (socketp) {
      epoll_ctl(self->epfd, EPOLL_CTL_MOD, s, &ev);
    } else {
      epoll_ctl(self->epfd, EPOLL_CTL_ADD, s, &ev);
      curl_multi_assign(self->multi, s, self);  // any non-null marks "added"
    }
    return 0;
  }

  static int on_timer(CURLM *, long timeout_ms, void *user) noexcept {
    auto *self = static_cast<Impl *>(user);
    self->curl_deadline_ms = timeout_ms < 0 ? -1 : steady_ms() + timeout_ms;
    return 0;
  }

  void collect() {
    int pending = 0;
    while (CURLMsg *msg = curl_multi_info_read(multi, &pending)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *easy = msg->easy_handle;
      auto it = transfers.find(easy);
      if (it == transfers.end()) continue;
      Transfer &t = *it->second;
      if (msg->data.result == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &t.result.status);
      } else {
        t.result.transport_error = true;
        // A refused address explains a failed connect better than curl's
        // "Couldn't connect to server".
        t.result.error = !t.refused.empty() ? t.refused : curl_easy_strerror(msg->data.result);
      }
      double seconds = 0;
      curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &seconds);
      t.result.elapsed_ms = seconds * 1000.0;
      curl_multi_remove_handle(multi, easy);
      curl_slist_free_all(t.headers);
      completed.push_back(std::move(t.result));
      transfers.erase(it);
      curl_easy_reset(easy);
      idle_handles.push_back(easy);
    }
  }

  void drive(curl_socket_t fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi, fd, flags, &running);
  }
};

HttpEngine::HttpEngine() : impl_(std::make_unique<Impl>()) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  impl_->multi = curl_multi_init();
  impl_->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!impl_->multi || impl_->epfd < 0) throw std::runtime_error("cannot initialise libcurl");
  curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
  curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETDATA, impl_.get());
  curl_multi_setopt(impl_->multi, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
  curl_multi_setopt(impl_->multi, CURLMOPT_TIMERDATA, impl_.get());
  curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS, 256L);
  pg_call_void([&] {
    impl_->wait_set = CreateWaitEventSet(TopMemoryContext, 3);
    AddWaitEventToSet(impl_->wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    AddWaitEventToSet(impl_->wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    AddWaitEventToSet(impl_->wait_set, WL_SOCKET_READABLE, impl_->epfd, nullptr, nullptr);
  });
}

HttpEngine::~HttpEngine() {
  impl_->side.reset();
  for (auto &entry : impl_->transfers) {
    curl_multi_remove_handle(impl_->multi, entry.first);
    curl_slist_free_all(entry.second->headers);
    curl_easy_cleanup(entry.first);
  }
  for (CURL *easy : impl_->idle_handles) curl_easy_cleanup(easy);
  if (impl_->multi) curl_multi_cleanup(impl_->multi);
  if (impl_->wait_set) FreeWaitEventSet(impl_->wait_set);
  if (impl_->epfd >= 0) close(impl_->epfd);
}

void HttpEngine::submit(std::uint64_t tag, const core::HttpRequest &request, long timeout_ms,
                        size_t max_body) {
  CURL *easy;
  if (impl_->idle_handles.empty()) {
    easy = curl_easy_init();
    if (!easy) throw std::bad_alloc();
  } else {
    easy = impl_->idle_handles.back();
    impl_->idle_handles.pop_back();
  }
  auto t = std::make_unique<Transfer>();
  t->tag = tag;
  t->easy = easy;
  t->result.tag = tag;
  t->cap = max_body > kExcerptBytes ? max_body : kExcerptBytes;
  t->result.excerpt.reserve(kExcerptBytes);
  t->refused.reserve(256);  // the open-socket callback must not allocate
  t->body = request.body;
  for (const auto &h : request.headers) {
    std::string line = h.first + ": " + h.second;
    curl_slist *next = curl_slist_append(t->headers, line.c_str());
    if (!next) throw std::bad_alloc();
    t->headers = next;
  }
  // Without this curl sends "Expect: 100-continue" for larger bodies and
  // waits a round trip for nothing.
  t->headers = curl_slist_append(t->headers, "Expect:");
  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST,
                   request.method == "POST" ? nullptr : request.method.c_str());
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 10000L));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  // Redirects are never followed: the endpoint's answer is the outcome. Were
  // one followed, it could only lead to http or https.
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, 0L);
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &on_open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, &on_prereq);
  curl_easy_setopt(easy, CURLOPT_PREREQDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &on_progress);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "pg_ves/0.1");
  impl_->transfers.emplace(easy, std::move(t));
  if (curl_multi_add_handle(impl_->multi, easy) != CURLM_OK) {
    curl_slist_free_all(impl_->transfers[easy]->headers);
    impl_->transfers.erase(easy);
    impl_->idle_handles.push_back(easy);
    throw std::runtime_error("curl_multi_add_handle failed");
  }
}

int HttpEngine::in_flight() const {
  return static_cast<int>(impl_->transfers.size()) + (impl_->side ? impl_->side->in_flight() : 0);
}

SideCalls *HttpEngine::side_calls() const { return impl_->side.get(); }

void HttpEngine::set_side_calls(std::unique_ptr<SideCalls> calls) {
  impl_->side = std::move(calls);
}

void HttpEngine::watch(int fd, bool write) {
  epoll_event ev{};
  ev.data.fd = fd;
  ev.events = EPOLLIN | (write ? uint32_t{EPOLLOUT} : 0u);
  auto it = impl_->watched.find(fd);
  if (it != impl_->watched.end() && it->second == write) return;
  // A socket that libpq closed and opened again under the same number has
  // left the epoll set by itself: MOD fails, ADD puts it back.
  if (it == impl_->watched.end() || epoll_ctl(impl_->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
    if (epoll_ctl(impl_->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST)
      throw std::runtime_error(std::string("cannot watch a socket: ") + strerror(errno));
  impl_->watched[fd] = write;
}

void HttpEngine::unwatch(int fd) {
  if (impl_->watched.erase(fd)) epoll_ctl(impl_->epfd, EPOLL_CTL_DEL, fd, nullptr);
}

void HttpEngine::complete(HttpResult result) { impl_->completed.push_back(std::move(result)); }

bool HttpEngine::wait(long timeout_ms) {
  long t = timeout_ms;
  if (impl_->curl_deadline_ms >= 0)
    t = std::max(0L, std::min<long>(t, impl_->curl_deadline_ms - steady_ms()));
  const std::int64_t side_deadline = impl_->side ? impl_->side->deadline_ms() : -1;
  if (side_deadline >= 0) t = std::max(0L, std::min<long>(t, side_deadline - steady_ms()));
  // A side call that ended when it started is taken at once.
  if (!impl_->completed.empty()) t = 0;
  WaitEvent events[3];
  int n =
      pg_call([&] { return WaitEventSetWait(impl_->wait_set, t, events, 3, PG_WAIT_EXTENSION); });
  bool latch = false;
  bool sockets = false;
  for (int i = 0; i < n; ++i) {
    if (events[i].events & WL_LATCH_SET) latch = true;
    if (events[i].events & WL_SOCKET_READABLE) sockets = true;
  }
  if (latch) pg_call_void([] { ResetLatch(MyLatch); });
  std::vector<int> side_ready;
  if (sockets) {
    epoll_event ready[64];
    int k = epoll_wait(impl_->epfd, ready, 64, 0);
    for (int i = 0; i < k; ++i) {
      if (impl_->watched.count(ready[i].data.fd)) {
        side_ready.push_back(ready[i].data.fd);
        continue;
      }
      int flags = (ready[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                  (ready[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                  (ready[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
      impl_->drive(ready[i].data.fd, flags);
    }
  }
  if (impl_->curl_deadline_ms >= 0 && steady_ms() >= impl_->curl_deadline_ms) {
    impl_->curl_deadline_ms = -1;
    impl_->drive(CURL_SOCKET_TIMEOUT, 0);
  }
  impl_->collect();
  if (impl_->side && (!side_ready.empty() || (side_deadline >= 0 && steady_ms() >= side_deadline)))
    impl_->side->progress(*this, side_ready);
  return latch;
}

std::vector<HttpResult> HttpEngine::take_completed() {
  std::vector<HttpResult> out;
  out.swap(impl_->completed);
  return out;
}

std::size_t perform_paced(const std::vector<core::HttpRequest> &requests, long timeout_ms,
                          const Pace &pace, std::vector<HttpResult> *out, size_t max_body) {
  out->assign(requests.size(), HttpResult{});
  if (requests.empty()) return 0;
  const std::size_t cap = pace.concurrency > 0 ? pace.concurrency : requests.size();
  HttpEngine engine;
  bool latch = false;
  std::size_t sent = 0, in_flight = 0;
  for (;;) {
    const std::int64_t now = steady_us();
    const bool in_time = pace.deadline_us <= 0 || now < pace.deadline_us;
    while (in_time && sent < requests.size() && in_flight < cap &&
           (!pace.bucket || pace.bucket->try_take(now))) {
      engine.submit(sent, requests[sent], timeout_ms, max_body);
      ++sent;
      ++in_flight;
    }
    const bool more =
        in_time && sent < requests.size() &&
        (pace.wait_for_tokens || in_flight > 0 || !pace.bucket || pace.bucket->wait_us(now) == 0);
    if (in_flight == 0 && !more) break;
    long wait_ms = 1000;
    if (more && in_flight < cap && pace.bucket)
      wait_ms = std::max<long>(1, static_cast<long>((pace.bucket->wait_us(now) + 999) / 1000));
    latch |= engine.wait(std::min<long>(wait_ms, 1000));
    safe::check_for_interrupts();
    for (HttpResult &r : engine.take_completed()) {
      --in_flight;
      (*out)[r.tag] = std::move(r);
    }
  }
  // A wake-up meant for the caller's own wait is passed on.
  if (latch) pg_call_void([] { SetLatch(MyLatch); });
  return sent;
}

std::vector<HttpResult> perform_all(const std::vector<core::HttpRequest> &requests, long timeout_ms,
                                    size_t max_body) {
  std::vector<HttpResult> out;
  perform_paced(requests, timeout_ms, Pace{}, &out, max_body);
  return out;
}

}  // namespace pgves::pg
