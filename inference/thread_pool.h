// A persistent thread pool with a blocking parallel-for, made for the
// runtime's matmuls: the workers live for the pool's lifetime (no thread is
// created per token) and wait between jobs, spinning briefly first so that
// back-to-back matmuls of one forward pass do not pay a futex wake-up each,
// then sleeping on a condition variable (the machine may be shared).
//
// ParallelFor(n, fn) splits [0, n) into up to 4 chunks per thread and calls
// fn(begin, end, t) for each, t being the id of the thread that runs it (the
// caller is thread 0; a thread may run several chunks, one after another).
// Chunks are claimed from an atomic counter, so when the OS deschedules a
// worker the others take its share instead of waiting for it. fn must not
// throw and must not call ParallelFor again.
#ifndef QATK_INFERENCE_THREAD_POOL_H_
#define QATK_INFERENCE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <type_traits>
#include <mutex>
#include <thread>
#include <vector>

namespace qatk::inference {

class ThreadPool {
 public:
  using RawFn = void (*)(void* ctx, int64_t begin, int64_t end, int thread);

  // n_threads >= 1 (values < 1 mean 1); n_threads - 1 workers are started.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Blocks until every range has run: fn(begin, end, thread). Ranges are
  // rounded to multiples of `align` (last one excepted) so SIMD kernels can
  // take rows in groups. Allocation-free (fn is passed by reference).
  template <typename Fn>
  void ParallelFor(int64_t n, Fn&& fn, int64_t align = 1) {
    using F = std::remove_reference_t<Fn>;
    ParallelForRaw(
        n, [](void* ctx, int64_t b, int64_t e, int t) { (*static_cast<F*>(ctx))(b, e, t); },
        const_cast<void*>(static_cast<const void*>(&fn)), align);
  }
  void ParallelForRaw(int64_t n, RawFn fn, void* ctx, int64_t align);

 private:
  void WorkerLoop(int thread);
  // Claims and runs chunks of the current job until none is left.
  void RunChunks(int thread);

  // job_ packs (generation & 0xFFFF) << 48 | n_chunks << 24 | next_chunk, so
  // one CAS both checks the job and claims a chunk of it.
  static constexpr uint64_t kChunkBits = 24;

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> job_{0};
  std::atomic<int64_t> done_{0};  // chunks finished in the current job
  std::atomic<bool> stop_{false};
  RawFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0;
  int64_t align_ = 1;
  int64_t units_ = 0;  // ceil(n_ / align_)
};

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_THREAD_POOL_H_
