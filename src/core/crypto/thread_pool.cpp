#include "core/crypto/thread_pool.hpp"

#include "core/base/signals_blocked.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <system_error>
#include <utility>

// Last: fails the build if anything above pulled in PostgreSQL headers.
#include "core/base/no_postgres.hpp"

namespace pgves::core {

ThreadPool::ThreadPool(unsigned threads, bool caller_works) {
  threads = std::min(threads, kMaxThreads);
  if (threads < (caller_works ? 1u : 2u)) return;
  {
    // No signal handler of the server may run on the threads.
    SignalsBlocked blocked;
    try {
      workers_.reserve(threads);
      for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { run_worker(); });
    } catch (const std::system_error &) {
      // Fewer threads than asked (the process is out of them): work with
      // those that started, or inline when none did.
    } catch (const std::bad_alloc &) {
    }
  }
  if (workers_.size() == 1 && !caller_works) {
    // One thread beside a waiting caller is the serial speed plus a handoff.
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    work_ready_.notify_all();
    workers_.front().join();
    workers_.clear();
    stopping_ = false;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    finished_ += queue_.size();
    queue_.clear();
  }
  work_ready_.notify_all();
  for (auto &t : workers_) t.join();
}

void ThreadPool::record_failure(std::uint64_t seq, std::exception_ptr error) {
  if (seq < failed_seq_) {
    failed_seq_ = seq;
    failure_ = std::move(error);
  }
}

void ThreadPool::submit(std::function<void()> task) {
  if (workers_.empty()) {
    std::uint64_t seq = submitted_++;
    try {
      task();
    } catch (...) {
      record_failure(seq, std::current_exception());
    }
    ++finished_;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(Task{submitted_++, std::move(task)});
  }
  work_ready_.notify_one();
}

void ThreadPool::run_worker() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    Task task = std::move(queue_.front());
    queue_.pop_front();
    run_task(std::move(task), lock);
  }
}

void ThreadPool::run_task(Task task, std::unique_lock<std::mutex> &lock) {
  lock.unlock();
  std::exception_ptr error;
  try {
    task.fn();
  } catch (...) {
    error = std::current_exception();
  }
  // The task's captures are destroyed before it counts as finished, so a
  // caller that returns after wait() owns everything they referred to.
  task.fn = nullptr;
  lock.lock();
  if (error) record_failure(task.seq, std::move(error));
  ++finished_;
  if (waiters_ > 0) task_done_.notify_all();
}

bool ThreadPool::run_one() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (queue_.empty()) return false;
  Task task = std::move(queue_.front());
  queue_.pop_front();
  run_task(std::move(task), lock);
  return true;
}

void ThreadPool::work_until(const std::function<bool()> &done, const std::function<void()> &poll,
                            int poll_ms) {
  for (;;) {
    if (done()) return;
    if (poll) poll();
    if (!run_one()) break;
  }
  wait_until(done, poll, poll_ms);
}

void ThreadPool::wait_until(const std::function<bool()> &done, const std::function<void()> &poll,
                            int poll_ms) {
  for (;;) {
    if (done()) return;
    if (poll) poll();
    if (workers_.empty()) {
      // Inline: everything submitted has run; nothing more will happen.
      if (done()) return;
      throw std::logic_error("ThreadPool::wait_until: the condition cannot become true");
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (finished_ == submitted_) {
      lock.unlock();
      if (done()) return;
      throw std::logic_error("ThreadPool::wait_until: the condition cannot become true");
    }
    std::uint64_t seen = finished_;
    ++waiters_;
    task_done_.wait_for(lock, std::chrono::milliseconds(poll_ms),
                        [this, seen] { return finished_ != seen; });
    --waiters_;
  }
}

void ThreadPool::wait(const std::function<void()> &poll, int poll_ms) {
  if (!workers_.empty()) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ++waiters_;
        bool all = task_done_.wait_for(lock, std::chrono::milliseconds(poll_ms),
                                       [this] { return finished_ == submitted_; });
        --waiters_;
        if (all) break;
      }
      if (poll) poll();
    }
  }
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    error = std::move(failure_);
    failure_ = nullptr;
    failed_seq_ = UINT64_MAX;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ += queue_.size();
  queue_.clear();
  task_done_.notify_all();
}

unsigned available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? n : 1;
}

}  // namespace pgves::core
