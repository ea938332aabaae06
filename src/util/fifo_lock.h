// A fair lock (issue 10, item 5): threads get it in arrival order. A
// std::mutex lets the thread that releases it take it straight back, so
// under load a few threads starve (through tpm2-abrmd, 8 threads signing:
// p50 0.95 ms, p99 137 ms, max 0.3 s).
#pragma once
#include <condition_variable>
#include <deque>
#include <mutex>

namespace tpmtoken {

// A FIFO lock with hand-off: unlock passes the lock to the longest waiter
// and wakes that thread alone. (Waking every waiter to compare tickets, on
// two cores with eight threads, made the next owner wait behind the others'
// wake-ups: the tail of the latencies grew.)
class FifoLock {
 public:
  void lock() {
    std::unique_lock l(mu_);
    if (!held_ && waiters_.empty()) {
      held_ = true;
      return;
    }
    Waiter me;
    waiters_.push_back(&me);
    me.cv.wait(l, [&] { return me.granted; });  // held_ stays true: handed over
  }
  void unlock() {
    std::lock_guard l(mu_);
    if (waiters_.empty()) {
      held_ = false;
      return;
    }
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->granted = true;
    next->cv.notify_one();  // under mu_: next cannot return and free its cv first
  }

 private:
  struct Waiter {
    std::condition_variable cv;
    bool granted = false;
  };
  std::mutex mu_;
  std::deque<Waiter*> waiters_;
  bool held_ = false;
};

}  // namespace tpmtoken
