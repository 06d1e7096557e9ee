// What a Server and a Client share at run time: loops, workers, registry, codec, live connections.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <tao/concurrent_map.hpp>
#include <tao/connection.hpp>
#include <tao/handlers.hpp>
#include <tao/metrics.hpp>
#include <tao/options.hpp>
#include <tao/worker_pool.hpp>

#include "loop.hpp"

namespace tao::detail {
struct TlsConfig;
}

namespace tao::detail {

struct CoreConfig {
  std::string role; // "server" or "client", for names and logs
  std::size_t io_threads = 1;
  std::size_t workers = 0;
  std::size_t read_chunk = 128u << 10;
  std::shared_ptr<Dispatch> dispatch;
  std::shared_ptr<const Codec> codec;
  ConnectionOptions connection;
  HeartbeatOptions heartbeat;
  bool heartbeat_reply = false;
  std::shared_ptr<TlsConfig> tls; // null for plain TCP
  bool handler_timing = true;
};

class Core : public std::enable_shared_from_this<Core> {
public:
  explicit Core(CoreConfig cfg);
  ~Core();

  const std::string role;
  const ConnectionOptions conn_opts;
  const HeartbeatOptions heartbeat;
  const bool heartbeat_reply;
  const std::shared_ptr<TlsConfig> tls;
  const std::shared_ptr<const Codec> codec;
  const std::shared_ptr<Dispatch> dispatch;
  const bool handler_timing;
  LoopPool loops;
  std::unique_ptr<WorkerPool> workers; // null when handlers run on the loops
  /// One block per worker thread, indexed like the workers; each written by its worker only.
  std::unique_ptr<ThreadCounters[]> worker_counters;
  ConcurrentMap<ConnectionId, ConnectionPtr> connections;
  std::atomic<bool> stopping{false};
  /// Called after on_close, where it ran (the client uses it to reconnect).
  std::function<void(Connection&)> after_close;

  /// Freezes the registry and starts loops and workers.
  void start_threads();
  /// Closes every connection gracefully, waits up to close_timeout (then aborts the rest), waits
  /// for their on_close, then stops workers and loops. Must not run on a loop or worker thread.
  void shutdown();
  bool in_own_thread() const noexcept;
  /// One periodic timer per loop that checks (and sends) heartbeats for its connections.
  void start_heartbeat_sweeps();

  /// A connection exists from creation until its on_close has run.
  void connection_created() noexcept;
  void connection_finished() noexcept;
  std::size_t live_connections() const noexcept { return live_.load(); }
  /// A connection is open from creation until it leaves the registry (its socket then closes at
  /// once; its on_close may still be queued behind a handler). What max_connections counts, so
  /// that a connection_count() below the maximum means the next connection is admitted.
  void connection_left() noexcept { open_.fetch_sub(1); }
  std::size_t open_connections() const noexcept { return open_.load(); }
  /// Waits until no connection is live or the deadline passes; returns true if none is live.
  bool wait_no_connections(std::chrono::steady_clock::time_point deadline);

  /// Sums the per-thread counters and reads the gauges. Any thread.
  MetricsSnapshot metrics() const;

private:
  std::atomic<std::size_t> live_{0};
  std::atomic<std::size_t> open_{0};
  std::mutex live_mutex_;
  std::condition_variable live_cv_;
  bool threads_started_ = false;
  bool threads_stopped_ = false;
};

/// ServerOptions::malloc_trim_threshold: applied once per process (glibc only).
void raise_malloc_trim_threshold(std::size_t bytes);

} // namespace tao::detail
