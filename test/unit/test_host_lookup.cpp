#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "core/base/signals_blocked.hpp"
#include "core/delivery/host_lookup.hpp"

using pgves::core::host_needs_lookup;
using pgves::core::HostLookup;

namespace {

// Waits until the lookup's descriptor is readable; false after 10 s.
bool wait_readable(const HostLookup &lookup) {
  pollfd p{lookup.fd(), POLLIN, 0};
  return poll(&p, 1, 10000) == 1 && (p.revents & POLLIN) != 0;
}

TEST(HostLookup, NumericAddressesAndSocketDirectoriesNeedNone) {
  EXPECT_FALSE(host_needs_lookup("127.0.0.1"));
  EXPECT_FALSE(host_needs_lookup("::1"));
  EXPECT_FALSE(host_needs_lookup("fe80::1"));
  EXPECT_FALSE(host_needs_lookup("/var/run/postgresql"));
  EXPECT_FALSE(host_needs_lookup("@pg_ves"));
  EXPECT_FALSE(host_needs_lookup(""));
  EXPECT_TRUE(host_needs_lookup("localhost"));
  EXPECT_TRUE(host_needs_lookup("db.example.com"));
  EXPECT_TRUE(host_needs_lookup("127.0.0.1.example"));
  EXPECT_TRUE(pgves::core::is_numeric_address("10.1.2.3"));
  EXPECT_TRUE(pgves::core::is_numeric_address("::ffff:10.1.2.3"));
  EXPECT_FALSE(pgves::core::is_numeric_address("10.1.2"));
  EXPECT_FALSE(pgves::core::is_numeric_address("db.example.com"));
}

TEST(HostLookup, SignalsTheEndOnItsDescriptor) {
  HostLookup lookup({"localhost"});
  ASSERT_TRUE(wait_readable(lookup));
  ASSERT_TRUE(lookup.done());
  ASSERT_EQ(lookup.found().size(), 1u);
  const auto &found = lookup.found()[0].addresses;
  EXPECT_TRUE(lookup.found()[0].error.empty()) << lookup.found()[0].error;
  EXPECT_TRUE(std::find(found.begin(), found.end(), "127.0.0.1") != found.end() ||
              std::find(found.begin(), found.end(), "::1") != found.end());
  EXPECT_LE(found.size(), HostLookup::kMaxAddresses);
}

TEST(HostLookup, SeveralNamesEachWithItsOwnOutcome) {
  // A name with an empty label is refused by the resolver without asking a
  // server; a numeric address comes back as it is.
  HostLookup lookup({"127.0.0.1", "bad..name", "::1"});
  ASSERT_TRUE(wait_readable(lookup));
  const auto &found = lookup.found();
  ASSERT_EQ(found.size(), 3u);
  ASSERT_EQ(found[0].addresses.size(), 1u);
  EXPECT_EQ(found[0].addresses[0], "127.0.0.1");
  EXPECT_TRUE(found[0].error.empty());
  EXPECT_TRUE(found[1].addresses.empty());
  EXPECT_FALSE(found[1].error.empty());
  ASSERT_EQ(found[2].addresses.size(), 1u);
  EXPECT_EQ(found[2].addresses[0], "::1");
}

TEST(HostLookup, AGivenUpLookupEndsOnItsOwn) {
  // Destroyed before it ends: its thread finishes and frees it.
  for (int i = 0; i < 20; ++i)
    std::make_unique<HostLookup>(std::vector<std::string>{"localhost"}).reset();
  HostLookup last({"localhost"});
  EXPECT_TRUE(wait_readable(last));
}

TEST(SignalsBlocked, BlocksEverySignalWhileItLives) {
  sigset_t before;
  pthread_sigmask(SIG_SETMASK, nullptr, &before);
  {
    pgves::core::SignalsBlocked blocked;
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, nullptr, &now);
    EXPECT_EQ(sigismember(&now, SIGTERM), 1);
    EXPECT_EQ(sigismember(&now, SIGUSR1), 1);
  }
  sigset_t after;
  pthread_sigmask(SIG_SETMASK, nullptr, &after);
  EXPECT_EQ(sigismember(&after, SIGTERM), sigismember(&before, SIGTERM));
}

}  // namespace
