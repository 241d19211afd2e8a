#include "inference/thread_pool.h"

#include <algorithm>

namespace qatk::inference {
namespace {
// Spin iterations before a worker sleeps on the condition variable.
constexpr int kSpinIterations = 20000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void ThreadPool::RunRange(int thread) {
  const int64_t units = (n_ + align_ - 1) / align_;
  const int64_t b = std::min(n_, units * thread / n_threads_ * align_);
  const int64_t e = std::min(n_, units * (thread + 1) / n_threads_ * align_);
  if (b < e) fn_(ctx_, b, e, thread);
}

void ThreadPool::ParallelForRaw(int64_t n, RawFn fn, void* ctx, int64_t align) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n <= align) {
    fn(ctx, 0, n, 0);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  n_ = n;
  align_ = std::max<int64_t>(1, align);
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  RunRange(0);
  while (pending_.load(std::memory_order_acquire) != 0) CpuRelax();
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
      CpuRelax();
      ++spins;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    RunRange(thread);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace qatk::inference
