// A small pool of threads for the pure C++ work of one SQL call: canonical
// JSON, hashes, Ed25519 signing and verification of a batch or a range.
//
// The pool exists for one call and no longer: its destructor drops the tasks
// not yet started and joins every thread, so no thread outlives the frame that
// made it (the PostgreSQL layer keeps it on the stack of the entry point,
// under the C++/PostgreSQL boundary). Tasks are pure C++: they never call the
// server, allocate with palloc or raise its errors; they read what the calling
// thread prepared and write their own result slots.
//
// An exception a task lets escape is kept (the one of the earliest submitted
// task when several fail) and thrown again on the calling thread by wait();
// tasks that want per-item errors catch them and store an exception_ptr.
//
// With no thread started, submit() runs the task at once on the calling
// thread, which is the serial behaviour.
//
// Every thread starts with every signal blocked, so the server's signal
// handlers only ever run on the thread that owns the process.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pgves::core {

class ThreadPool {
 public:
  // The most threads a pool starts, whatever is asked.
  static constexpr unsigned kMaxThreads = 64;

  // Starts min(threads, kMaxThreads) threads, none when threads < 2: one
  // thread beside a caller that only waits for it is the serial speed plus
  // a handoff. With `caller_works` the caller does work of its own while the
  // tasks run (a batch's database writes beside its signatures), so one
  // thread is worth starting too; none when threads is 0.
  explicit ThreadPool(unsigned threads, bool caller_works = false);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  // The number of threads running tasks (0: tasks run inline in submit()).
  unsigned threads() const { return static_cast<unsigned>(workers_.size()); }

  // Queues a task (or, without threads, runs it now).
  void submit(std::function<void()> task);

  // Blocks until `done()` is true, re-checking after every finished task and
  // at least every `poll_ms`, when it calls `poll()` (which may throw, e.g.
  // on a cancel request: the pool's destructor then drops the rest). `done`
  // is evaluated on the calling thread; it reads what tasks publish through
  // atomics or under the caller's own synchronisation.
  void wait_until(const std::function<bool()> &done, const std::function<void()> &poll,
                  int poll_ms = 10);
  // wait_until, but the caller runs queued tasks itself while `done()` is
  // false (in queue order, between calls of `poll()`), and blocks only when
  // none is left to take. For a pool made with `caller_works`, whose caller
  // is one of the threads the work was sized for.
  void work_until(const std::function<bool()> &done, const std::function<void()> &poll,
                  int poll_ms = 10);

  // Blocks until every submitted task has finished (polling as above), then
  // throws the exception of the earliest submitted task that threw, if any.
  void wait(const std::function<void()> &poll, int poll_ms = 10);

  // Drops the tasks not yet started; running ones finish.
  void cancel();

 private:
  struct Task {
    std::uint64_t seq;
    std::function<void()> fn;
  };
  void run_worker();
  // Runs the first queued task on the calling thread; false when none is.
  bool run_one();
  // Runs a task taken off the queue (unlocked) and counts it finished.
  void run_task(Task task, std::unique_lock<std::mutex> &lock);
  void record_failure(std::uint64_t seq, std::exception_ptr error);

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable task_done_;
  std::deque<Task> queue_;
  std::vector<std::thread> workers_;
  std::uint64_t submitted_ = 0;
  std::uint64_t finished_ = 0;
  int waiters_ = 0;  // callers blocked in wait/wait_until: only they need task_done_
  bool stopping_ = false;
  std::uint64_t failed_seq_ = UINT64_MAX;
  std::exception_ptr failure_;
};

// The number of CPU cores this process may run on (at least 1).
unsigned available_cores();

}  // namespace pgves::core
