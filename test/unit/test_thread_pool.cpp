#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/base/error.hpp"
#include "core/crypto/crypto.hpp"
#include "core/crypto/thread_pool.hpp"
#include "core/ves/ves.hpp"

using pgves::core::ThreadPool;
namespace crypto = pgves::core::crypto;
namespace ves = pgves::core::ves;

namespace {

void no_poll() {}

ves::Event sample_event(int i) {
  ves::Event e;
  e.event_id[0] = static_cast<std::uint8_t>(i);
  e.event_id[1] = static_cast<std::uint8_t>(i >> 8);
  e.tenant_id[15] = 1;
  e.store_id[15] = 2;
  e.source_agent_id[15] = 3;
  e.agent_key_id = 1;
  e.entity_type = "InventoryItem";
  e.entity_id = "SKU-" + std::to_string(i);
  e.event_type = "inventory.adjusted";
  e.created_at = "2026-11-30T10:00:00.000Z";
  e.payload_plain_hash = ves::payload_plain_hash_of_json(
      "{\"delta\": " + std::to_string(i) + ", \"sku\": \"SKU-" + std::to_string(i) + "\"}");
  return e;
}

// Occupies a one-thread pool's thread until `release` is set; returns once
// the thread is busy, so tasks submitted after it can run only on the caller.
void hold_only_thread(ThreadPool &pool, const std::atomic<bool> &release) {
  auto holding = std::make_shared<std::atomic<bool>>(false);
  pool.submit([holding, &release] {
    holding->store(true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (!holding->load()) std::this_thread::yield();
}

}  // namespace

TEST(ThreadPool, RunsEveryTaskOnItsThreads) {
  constexpr int n = 10000;
  std::vector<long> out(n, 0);
  std::atomic<int> off_caller{0};
  const auto caller = std::this_thread::get_id();
  {
    ThreadPool pool(4);
    EXPECT_EQ(pool.threads(), 4u);
    for (int i = 0; i < n; ++i)
      pool.submit([&out, &off_caller, caller, i] {
        out[i] = static_cast<long>(i) * i;
        if (std::this_thread::get_id() != caller) off_caller.fetch_add(1);
      });
    pool.wait(no_poll);
  }
  for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], static_cast<long>(i) * i) << i;
  EXPECT_EQ(off_caller.load(), n);
}

TEST(ThreadPool, FewerThanTwoThreadsRunInlineOnTheCaller) {
  for (unsigned threads : {0u, 1u}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.threads(), 0u);
    std::thread::id ran_on;
    bool ran = false;
    pool.submit([&] {
      ran_on = std::this_thread::get_id();
      ran = true;
    });
    // Already done when submit returns: the serial behaviour.
    EXPECT_TRUE(ran);
    EXPECT_EQ(ran_on, std::this_thread::get_id());
    pool.wait(no_poll);
  }
}

TEST(ThreadPool, OneThreadStartsWhenTheCallerWorksMeanwhile) {
  ThreadPool none(0, true);
  EXPECT_EQ(none.threads(), 0u);
  ThreadPool pool(1, true);
  EXPECT_EQ(pool.threads(), 1u);
  // The task runs on the pool's thread while the caller goes on: it waits
  // for the caller's signal, which it could not do if it ran inline.
  std::atomic<bool> caller_went_on{false};
  std::thread::id ran_on;
  pool.submit([&] {
    while (!caller_went_on.load()) std::this_thread::yield();
    ran_on = std::this_thread::get_id();
  });
  caller_went_on.store(true);
  pool.wait(no_poll);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(ThreadPool, ThreadCountIsCapped) {
  ThreadPool pool(1000);
  EXPECT_EQ(pool.threads(), ThreadPool::kMaxThreads);
}

TEST(ThreadPool, WaitRethrowsTheEarliestTasksErrorAfterAllFinished) {
  for (unsigned threads : {1u, 3u}) {
    ThreadPool pool(threads);
    std::atomic<int> done{0};
    for (int i = 0; i < 200; ++i)
      pool.submit([&done, i] {
        // Later failures finish first: the earliest submitted still wins.
        if (i == 150) throw std::runtime_error("task 150");
        if (i == 40) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          throw pgves::core::Error("invalid_json", "task 40");
        }
        done.fetch_add(1);
      });
    try {
      pool.wait(no_poll);
      FAIL() << "wait() did not throw";
    } catch (const pgves::core::Error &e) {
      EXPECT_EQ(e.code(), "invalid_json");
      EXPECT_STREQ(e.what(), "task 40");
    }
    EXPECT_EQ(done.load(), 198) << "the other tasks still ran";
    // The error is reported once; the pool stays usable.
    pool.submit([&done] { done.fetch_add(1); });
    pool.wait(no_poll);
    EXPECT_EQ(done.load(), 199);
  }
}

TEST(ThreadPool, WaitUntilReturnsWhenItsConditionHolds) {
  ThreadPool pool(2);
  std::atomic<bool> first{false};
  std::atomic<bool> release{false};
  pool.submit([&] { first.store(true); });
  pool.submit([&] {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  pool.wait_until([&] { return first.load(); }, no_poll);
  EXPECT_TRUE(first.load());
  release.store(true);
  pool.wait(no_poll);
}

TEST(ThreadPool, WorkUntilRunsQueuedTasksOnTheCaller) {
  ThreadPool pool(1, true);
  ASSERT_EQ(pool.threads(), 1u);
  // The pool's one thread is held by the first task, so the condition can
  // only come true if the caller runs the queued tasks itself.
  std::atomic<bool> release{false};
  hold_only_thread(pool, release);
  const auto caller = std::this_thread::get_id();
  std::atomic<int> done{0};
  std::atomic<int> on_caller{0};
  for (int i = 0; i < 5; ++i)
    pool.submit([&] {
      if (std::this_thread::get_id() == caller) on_caller.fetch_add(1);
      done.fetch_add(1);
    });
  pool.work_until([&] { return done.load() == 5; }, no_poll);
  EXPECT_EQ(on_caller.load(), 5);
  // The held task is still running on the pool's thread, and the caller's
  // own work does not wait for it.
  std::atomic<bool> finished{false};
  pool.submit([&] { finished.store(true); });
  release.store(true);
  pool.work_until([&] { return finished.load(); }, no_poll);
  pool.wait(no_poll);
}

TEST(ThreadPool, WorkUntilKeepsATasksErrorForWait) {
  ThreadPool pool(1, true);
  std::atomic<bool> release{false};
  hold_only_thread(pool, release);
  std::atomic<bool> ran{false};
  pool.submit([&] {
    ran.store(true);
    throw std::runtime_error("task failed on the caller");
  });
  pool.work_until([&] { return ran.load(); }, no_poll);
  release.store(true);
  EXPECT_THROW(pool.wait(no_poll), std::runtime_error);
}

TEST(ThreadPool, WaitUntilRefusesAConditionThatCannotBecomeTrue) {
  ThreadPool pool(2);
  pool.submit([] {});
  EXPECT_THROW(pool.wait_until([] { return false; }, no_poll), std::logic_error);
}

TEST(ThreadPool, PollRunsWhileWaitingAndItsErrorEndsTheWait) {
  std::atomic<int> started{0};
  std::atomic<bool> release{false};
  auto start = std::chrono::steady_clock::now();
  {
    ThreadPool pool(2);
    for (int i = 0; i < 100; ++i)
      pool.submit([&] {
        started.fetch_add(1);
        while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      });
    int polls = 0;
    // A cancel request: the poll throws, the caller unwinds, and the
    // destructor drops the queued tasks and joins the running ones.
    EXPECT_THROW(pool.wait(
                     [&] {
                       if (++polls == 3) {
                         release.store(true);
                         throw std::runtime_error("canceled");
                       }
                     },
                     1),
                 std::runtime_error);
    EXPECT_EQ(polls, 3);
  }
  EXPECT_GE(started.load(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(ThreadPool, DestructorDropsQueuedTasksAndJoins) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 1000; ++i)
      pool.submit([&ran] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ran.fetch_add(1);
      });
  }
  int after = ran.load();
  EXPECT_LT(after, 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(ran.load(), after) << "no task runs once the pool is gone";
}

TEST(ThreadPool, CancelDropsWhatHasNotStarted) {
  ThreadPool pool(2);
  std::atomic<bool> release{false};
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i)
    pool.submit([&] {
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ran.fetch_add(1);
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  pool.cancel();
  release.store(true);
  pool.wait(no_poll);
  EXPECT_LE(ran.load(), 2) << "only the tasks already running finished";
}

TEST(ThreadPool, ThreadsBlockEverySignal) {
  ThreadPool pool(2);
  std::atomic<int> blocked_in_tasks{0};
  for (int i = 0; i < 8; ++i)
    pool.submit([&] {
      sigset_t mask;
      pthread_sigmask(SIG_SETMASK, nullptr, &mask);
      if (sigismember(&mask, SIGINT) == 1 && sigismember(&mask, SIGTERM) == 1 &&
          sigismember(&mask, SIGUSR1) == 1 && sigismember(&mask, SIGURG) == 1 &&
          sigismember(&mask, SIGALRM) == 1)
        blocked_in_tasks.fetch_add(1);
    });
  pool.wait(no_poll);
  EXPECT_EQ(blocked_in_tasks.load(), 8);
  // The caller's own mask is what it was.
  sigset_t mine;
  pthread_sigmask(SIG_SETMASK, nullptr, &mine);
  EXPECT_EQ(sigismember(&mine, SIGINT), 0);
}

TEST(ThreadPool, SignaturesOnThreadsEqualSerialOnesByteForByte) {
  const auto kp = crypto::sign_seed_keypair(crypto::hex2bin(std::string(64, '7')));
  constexpr int n = 500;
  std::vector<ves::Event> events;
  for (int i = 0; i < n; ++i) events.push_back(sample_event(i));
  std::vector<crypto::Signature64> serial(n), threaded(n);
  for (int i = 0; i < n; ++i)
    serial[i] = crypto::sign_detached_64(ves::signing_hash(events[i]), kp.secret_key);
  {
    ThreadPool pool(4);
    for (int i = 0; i < n; ++i)
      pool.submit([&, i] {
        threaded[i] = crypto::sign_detached_64(ves::signing_hash(events[i]), kp.secret_key);
      });
    pool.wait(no_poll);
  }
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(threaded[i], serial[i]) << i;
    events[i].agent_signature = threaded[i];
    ASSERT_TRUE(ves::verify_signature(events[i], kp.public_key)) << i;
  }
}

TEST(ThreadPool, PayloadHashesOnThreadsEqualSerialOnesAndKeepTheirErrors) {
  std::vector<std::string> payloads;
  for (int i = 0; i < 300; ++i)
    payloads.push_back("{\"b\": [1, 2.5e3, \"\\u00e9\"], \"a\": " + std::to_string(i) + "}");
  payloads[123] = "{\"x\": 1e400}";  // no canonical form
  std::vector<ves::Hash32> serial(payloads.size()), threaded(payloads.size());
  std::vector<std::string> serial_error(payloads.size()), threaded_error(payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) try {
      serial[i] = ves::payload_plain_hash_of_json(payloads[i]);
    } catch (const pgves::core::Error &e) {
      serial_error[i] = e.code();
    }
  {
    ThreadPool pool(3);
    for (size_t i = 0; i < payloads.size(); ++i)
      pool.submit([&, i] {
        try {
          threaded[i] = ves::payload_plain_hash_of_json(payloads[i]);
        } catch (const pgves::core::Error &e) {
          threaded_error[i] = e.code();
        }
      });
    pool.wait(no_poll);
  }
  EXPECT_EQ(threaded, serial);
  EXPECT_EQ(threaded_error, serial_error);
  EXPECT_FALSE(serial_error[123].empty());
}

TEST(ThreadPool, AvailableCoresIsPositive) { EXPECT_GE(pgves::core::available_cores(), 1u); }
