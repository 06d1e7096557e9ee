// A pool of worker threads where tasks with the same key run in submission order and never at the
// same time (Go Tao's WorkerPool, without its dropped tasks and its unused workers).
// Thread safety: submit(), submit_deferred(), wake(), queued() and size() are safe from any
// thread, tasks included; stop() from any thread except a worker of this pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include <tao/detail/unique_function.hpp>

namespace tao {

/// How a WorkerPool is sized. Thread safety: a plain value.
struct WorkerPoolOptions {
  /// Worker threads; 0 means one per hardware thread.
  std::size_t threads = 0;
  /// Tasks waiting for one worker before submit() answers errc::send_queue_full; 0 = no limit.
  /// A Server leaves it at 0 because it bounds each connection instead (max_pending_messages):
  /// it stops reading a connection whose queue is full, so its memory is bounded without
  /// refusing anything it has read.
  std::size_t queue_capacity = 0;
};

/// Worker threads where tasks with the same key run in order, one at a time (Go Tao's
/// WorkerPool). Thread safety: submit(), submit_deferred(), wake(), queued(), size(),
/// worker_for() and in_worker_thread() are safe from any thread, tasks included; stop() from any
/// thread except one of its workers.
class WorkerPool {
public:
  /// A task: any move-only callable taking nothing.
  using Task = detail::UniqueFunction<void()>;

  /// Starts the threads.
  explicit WorkerPool(WorkerPoolOptions options = {});
  /// Runs every task already queued, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Queues `task` on the worker for `key` (key modulo the number of workers, so consecutive keys
  /// such as connection ids spread evenly over all workers for any count). Returns
  /// errc::send_queue_full if that worker is at capacity, errc::stopped after stop(); in both
  /// cases the task was not taken. An exception thrown by a task is caught and logged.
  std::error_code submit(std::uint64_t key, Task task);

  /// Like submit(), but never wakes a sleeping worker: when the worker for `key` is asleep,
  /// `must_wake` is set and the caller must call wake(worker_for(key)) soon; until then the task
  /// waits. An event loop queues a whole batch of ready messages this way and wakes each worker
  /// once at the end, instead of being preempted by the worker after every message.
  std::error_code submit_deferred(std::uint64_t key, Task task, bool& must_wake);
  /// Wakes worker `index` (see submit_deferred()).
  void wake(std::size_t index);

  /// Index of the worker that runs tasks for `key`.
  std::size_t worker_for(std::uint64_t key) const noexcept { return key % workers_.size(); }
  /// Worker threads.
  std::size_t size() const noexcept { return workers_.size(); }
  /// Tasks queued and not yet taken by their worker, over all workers.
  std::size_t queued() const noexcept;
  /// True on one of this pool's worker threads.
  bool in_worker_thread() const noexcept;

  /// Lets queued tasks finish, then joins the threads. Idempotent.
  void stop();

private:
  struct Worker;
  void run(Worker& w);

  std::size_t capacity_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

} // namespace tao
