// Worker pool throughput: tao::WorkerPool against a plain mutex + condition-variable pool with the
// same per-key ordering (one queue per worker), measured in the same run.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <tao/worker_pool.hpp>

namespace {

/// The baseline: per-worker std::deque<std::function> + mutex + condition variable, one task per
/// lock, notify_one on every submit.
class PlainPool {
public:
  explicit PlainPool(std::size_t n) : workers_(n) {
    for (auto& w : workers_)
      w.thread = std::thread([&w] { run(w); });
  }
  ~PlainPool() {
    for (auto& w : workers_) {
      {
        std::lock_guard l(w.m);
        w.stop = true;
      }
      w.cv.notify_one();
      w.thread.join();
    }
  }
  void submit(std::uint64_t key, std::function<void()> f) {
    Worker& w = workers_[key % workers_.size()];
    {
      std::lock_guard l(w.m);
      w.q.push_back(std::move(f));
    }
    w.cv.notify_one();
  }

private:
  struct Worker {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::function<void()>> q;
    bool stop = false;
    std::thread thread;
  };
  static void run(Worker& w) {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock l(w.m);
        w.cv.wait(l, [&] { return w.stop || !w.q.empty(); });
        if (w.q.empty()) return;
        f = std::move(w.q.front());
        w.q.pop_front();
      }
      f();
    }
  }
  std::vector<Worker> workers_;
};

constexpr int kTasks = 100000;
constexpr int kKeys = 64;

template <class Pool, class Submit>
void run_batch(benchmark::State& state, Pool& pool, Submit submit) {
  std::atomic<int> done{0};
  for (auto _ : state) {
    done = 0;
    for (int i = 0; i < kTasks; ++i)
      submit(pool, static_cast<std::uint64_t>(i % kKeys),
             [&done] { done.fetch_add(1, std::memory_order_relaxed); });
    while (done.load() != kTasks)
      std::this_thread::yield();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}

void BM_TaoWorkerPool(benchmark::State& state) {
  tao::WorkerPool pool({.threads = static_cast<std::size_t>(state.range(0))});
  run_batch(state, pool,
            [](tao::WorkerPool& p, std::uint64_t k, auto f) { p.submit(k, std::move(f)); });
}

void BM_PlainMutexCvPool(benchmark::State& state) {
  PlainPool pool(static_cast<std::size_t>(state.range(0)));
  run_batch(state, pool, [](PlainPool& p, std::uint64_t k, auto f) { p.submit(k, std::move(f)); });
}

BENCHMARK(BM_TaoWorkerPool)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlainMutexCvPool)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

} // namespace
