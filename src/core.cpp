#include "core.hpp"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <boost/asio/post.hpp>

#include <tao/log.hpp>

#include "tcp_connection.hpp"

namespace tao::detail {

Core::Core(CoreConfig cfg)
    : role(std::move(cfg.role)), conn_opts(cfg.connection), heartbeat(cfg.heartbeat),
      heartbeat_reply(cfg.heartbeat_reply), tls(std::move(cfg.tls)), codec(std::move(cfg.codec)),
      dispatch(std::move(cfg.dispatch)), handler_timing(cfg.handler_timing),
      loops(cfg.io_threads, cfg.read_chunk, cfg.connection.max_worker_backlog, cfg.workers) {
  if (cfg.workers > 0) {
    workers = std::make_unique<WorkerPool>(WorkerPoolOptions{cfg.workers, 0});
    worker_counters = std::make_unique<ThreadCounters[]>(workers->size());
  }
  dispatch->default_run = workers ? Run::on_worker : Run::on_loop;
  if (!workers) {
    // Without a pool every handler runs on its loop, whatever it asked for.
    for (auto& [type, entry] : dispatch->handlers)
      entry.run = Run::on_loop;
  }
}

Core::~Core() = default;

void raise_malloc_trim_threshold(std::size_t bytes) {
#if defined(__GLIBC__)
  if (bytes == 0) return;
  static std::once_flag once;
  std::call_once(once, [bytes] {
    // A threshold set in the environment is the user's choice.
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    const auto in_environment = [tunables](const char* tunable, const char* variable) {
      return (tunables && std::strstr(tunables, tunable)) || std::getenv(variable);
    };
    if (in_environment("malloc.trim_threshold", "MALLOC_TRIM_THRESHOLD_")) return;
    const std::size_t trim = std::min<std::size_t>(bytes, INT_MAX);
    bool ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim)) == 1;
    // Setting the trim threshold also stops glibc from raising its mmap threshold at run time (it
    // starts at 128 KiB and follows the largest mapped block freed, up to 32 MiB): every block
    // from 128 KiB up would then be mapped, faulted in and unmapped each time. So it is set too,
    // to half the trim threshold (glibc's own ratio when it adjusts them), unless the environment
    // sets it.
    if (!in_environment("malloc.mmap_threshold", "MALLOC_MMAP_THRESHOLD_")) {
      const std::size_t mmap = std::clamp<std::size_t>(trim / 2, 128u << 10, 32u << 20);
      ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap)) == 1 && ok;
    }
    // (A sanitizer's allocator, which replaces glibc's, refuses both: nothing to tune there.)
    if (!ok) logger()->debug("mallopt refused the malloc thresholds; glibc's defaults stay");
  });
#else
  (void)bytes;
#endif
}

void Core::start_threads() {
  dispatch->frozen = true;
  loops.start();
  threads_started_ = true;
  start_heartbeat_sweeps();
  // Each schedule is one periodic timer per loop that visits the loop's connections.
  for (const auto& sched : dispatch->schedules) {
    for (std::size_t i = 0; i < loops.size(); ++i) {
      Loop& loop = loops.at(i);
      loop.timers().add(Clock::now() + sched.interval, sched.interval,
                        [&loop, fn = sched.fn](TimePoint due) {
                          std::vector<ConnectionPtr> snapshot; // callbacks may close connections
                          snapshot.reserve(loop.members().size());
                          for (TcpConnection* c : loop.members())
                            snapshot.push_back(c->shared_from_this());
                          for (auto& c : snapshot)
                            static_cast<TcpConnection&>(*c).run_scheduled(fn, due);
                        });
    }
  }
}

void Core::start_heartbeat_sweeps() {
  Duration shortest = Duration::max();
  if (heartbeat.interval.count() > 0) shortest = std::min<Duration>(shortest, heartbeat.interval);
  if (heartbeat.timeout.count() > 0) shortest = std::min<Duration>(shortest, heartbeat.timeout);
  if (shortest == Duration::max()) return;
  const Duration period =
      std::clamp<Duration>(shortest / 4, std::chrono::milliseconds(1), std::chrono::seconds(1));
  for (std::size_t i = 0; i < loops.size(); ++i) {
    Loop& loop = loops.at(i);
    loop.timers().add(Clock::now() + period, period, [&loop](TimePoint) {
      const TimePoint now = Clock::now();
      // Backwards, because a connection that times out removes itself from members() at once,
      // moving the last member (already visited) into its place.
      const auto& members = loop.members();
      for (std::size_t k = members.size(); k-- > 0;) {
        if (k < members.size()) members[k]->heartbeat_check(now);
      }
    });
  }
}

bool Core::in_own_thread() const noexcept {
  return loops.in_loop_thread() || (workers && workers->in_worker_thread());
}

void Core::connection_created() noexcept {
  open_.fetch_add(1);
  live_.fetch_add(1);
}

void Core::connection_finished() noexcept {
  if (live_.fetch_sub(1) == 1) {
    std::lock_guard lock(live_mutex_);
    live_cv_.notify_all();
  }
}

bool Core::wait_no_connections(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(live_mutex_);
  return live_cv_.wait_until(lock, deadline, [this] { return live_.load() == 0; });
}

MetricsSnapshot Core::metrics() const {
  MetricsSnapshot m;
  for (std::size_t i = 0; i < loops.size(); ++i) {
    loops.at(i).counters().add_to(m);
    m.timers_active += loops.at(i).timers().size();
    m.worker_backlog_bytes += loops.at(i).worker_backlog();
  }
  if (workers) {
    for (std::size_t i = 0; i < workers->size(); ++i)
      worker_counters[i].add_to(m);
    m.worker_queue_depth = workers->queued();
  }
  m.connections_current = connections.size();
  connections.for_each(
      [&m](ConnectionId, const ConnectionPtr& c) { m.queued_out_bytes += c->queued_bytes(); });
  // Buckets and count are read at slightly different moments; keep them consistent.
  m.handler_seconds.count = 0;
  for (auto n : m.handler_seconds.counts)
    m.handler_seconds.count += n;
  return m;
}

void Core::shutdown() {
  if (!threads_started_ || threads_stopped_) return;
  threads_stopped_ = true;
  stopping = true;
  connections.for_each([](ConnectionId, const ConnectionPtr& c) { c->close(); });
  auto deadline =
      std::chrono::steady_clock::now() + conn_opts.close_timeout + std::chrono::milliseconds(500);
  if (!wait_no_connections(deadline)) {
    logger()->warn("{}: {} connection(s) still open after the close timeout; aborting them", role,
                   live_connections());
    connections.for_each([](ConnectionId, const ConnectionPtr& c) { c->abort(); });
    if (!wait_no_connections(std::chrono::steady_clock::now() + std::chrono::seconds(5)))
      logger()->error("{}: {} connection(s) did not finish closing", role, live_connections());
  }
  if (workers) workers->stop();
  loops.stop();
}

} // namespace tao::detail
