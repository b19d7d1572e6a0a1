// Threads inherit the signal mask of the thread that creates them. While one
// of these lives, every signal is blocked on the creating thread, so threads
// started meanwhile never run a handler of the server (which expects its own
// thread and would longjmp or touch server state). The mask is restored
// when it goes away.
#pragma once

#include <signal.h>

namespace pgves::core {

class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SignalsBlocked(const SignalsBlocked &) = delete;
  SignalsBlocked &operator=(const SignalsBlocked &) = delete;

 private:
  sigset_t previous_;
};

}  // namespace pgves::core
