#include "inference/thread_pool.h"

#include <algorithm>

namespace qatk::inference {
namespace {
// Spin iterations before a worker sleeps on the condition variable.
constexpr int kSpinIterations = 20000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
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

void ThreadPool::RunChunks(int thread) {
  const uint64_t mask = (uint64_t{1} << kChunkBits) - 1;
  uint64_t w = job_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t n_chunks = (w >> kChunkBits) & mask, next = w & mask;
    if (next >= n_chunks) return;
    if (!job_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
      continue;  // w was reloaded
    }
    // The claimed chunk is unfinished, so the job's fields are still its own.
    const int64_t c = static_cast<int64_t>(next), nc = static_cast<int64_t>(n_chunks);
    const int64_t b = std::min(n_, units_ * c / nc * align_);
    const int64_t e = std::min(n_, units_ * (c + 1) / nc * align_);
    if (b < e) fn_(ctx_, b, e, thread);
    done_.fetch_add(1, std::memory_order_acq_rel);
    w = job_.load(std::memory_order_acquire);
  }
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
  units_ = (n_ + align_ - 1) / align_;
  const int64_t n_chunks = std::min<int64_t>(units_, 4 * n_threads_);
  done_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t gen = generation_.load(std::memory_order_relaxed) + 1;
    job_.store((gen & 0xFFFF) << 48 | uint64_t(n_chunks) << kChunkBits,
               std::memory_order_release);
    generation_.store(gen, std::memory_order_release);
  }
  cv_.notify_all();
  RunChunks(0);
  // Spin briefly, then yield: on an oversubscribed machine a descheduled
  // worker holding a chunk needs this core more than our spinning does.
  for (int spins = 0; done_.load(std::memory_order_acquire) != n_chunks; ++spins) {
    if (spins < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
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
    RunChunks(thread);
  }
}

}  // namespace qatk::inference
