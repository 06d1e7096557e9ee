#include <tao/worker_pool.hpp>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>

#include <tao/error.hpp>
#include <tao/log.hpp>

namespace tao {

namespace {
thread_local const WorkerPool* t_current_pool = nullptr;
}

// One queue per worker, so tasks of one key stay in order without any cross-worker locking.
// The worker swaps the whole queue out under the lock and runs it without the lock: one lock
// round trip per batch, not per task, and submit() only signals a worker that is asleep.
struct WorkerPool::Worker {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Task> queue; // guarded by mutex
  bool sleeping = false;   // guarded by mutex
  bool stopping = false;   // guarded by mutex
  // Tasks queued and not yet taken by the worker: written under mutex, read anywhere. Counted
  // per batch, not per task, so producer and worker do not bounce a counter's cache line.
  std::atomic<std::size_t> queued{0};
  std::thread thread;
};

WorkerPool::WorkerPool(WorkerPoolOptions options) : capacity_(options.queue_capacity) {
  std::size_t n = options.threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    workers_.push_back(std::make_unique<Worker>());
  for (auto& w : workers_)
    w->thread = std::thread([this, &wk = *w] { run(wk); });
}

WorkerPool::~WorkerPool() { stop(); }

std::error_code WorkerPool::submit(std::uint64_t key, Task task) {
  bool must_wake = false;
  auto ec = submit_deferred(key, std::move(task), must_wake);
  if (must_wake) wake(worker_for(key));
  return ec;
}

std::error_code WorkerPool::submit_deferred(std::uint64_t key, Task task, bool& must_wake) {
  Worker& w = *workers_[worker_for(key)];
  std::lock_guard lock(w.mutex);
  if (w.stopping) return errc::stopped;
  if (capacity_ != 0 && w.queue.size() >= capacity_) return errc::send_queue_full;
  w.queue.push_back(std::move(task));
  w.queued.store(w.queue.size(), std::memory_order_relaxed);
  // Whoever clears `sleeping` owns the wake-up: later submitters see false and do not signal.
  if (w.sleeping) must_wake = true;
  w.sleeping = false;
  return {};
}

void WorkerPool::wake(std::size_t index) { workers_.at(index)->cv.notify_one(); }

std::size_t WorkerPool::queued() const noexcept {
  std::size_t n = 0;
  for (const auto& w : workers_)
    n += w->queued.load(std::memory_order_relaxed);
  return n;
}

bool WorkerPool::in_worker_thread() const noexcept { return t_current_pool == this; }

void WorkerPool::run(Worker& w) {
  t_current_pool = this;
  std::vector<Task> batch;
  for (;;) {
    {
      std::unique_lock lock(w.mutex);
      while (w.queue.empty() && !w.stopping) {
        w.sleeping = true;
        w.cv.wait(lock);
      }
      if (w.queue.empty()) break; // stopping and drained
      batch.swap(w.queue);
      w.queued.store(0, std::memory_order_relaxed);
    }
    for (Task& t : batch) {
      try {
        t();
      } catch (const std::exception& e) {
        logger()->error("worker task threw: {}", e.what());
      } catch (...) {
        logger()->error("worker task threw a non-standard exception");
      }
      t = nullptr; // release captures (connections, messages) before the next task
    }
    batch.clear();
  }
  t_current_pool = nullptr;
}

void WorkerPool::stop() {
  for (auto& w : workers_) {
    std::lock_guard lock(w->mutex);
    w->stopping = true;
  }
  for (auto& w : workers_)
    w->cv.notify_all();
  for (auto& w : workers_)
    if (w->thread.joinable() && w->thread.get_id() != std::this_thread::get_id()) w->thread.join();
}

} // namespace tao
