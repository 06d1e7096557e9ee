// A TCP server of typed messages.
// Thread safety: handle()/on_*() before start(); everything else is safe from any thread,
// handlers included (stop() from a handler only requests the stop; wait() or the destructor
// completes it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>

#include <tao/connection.hpp>
#include <tao/handlers.hpp>
#include <tao/metrics.hpp>
#include <tao/options.hpp>

namespace tao {

namespace detail {
class ServerCore;
} // namespace detail

class WorkerPool;

/// A TCP (or TLS) server of typed messages (Go Tao's Server).
/// Thread safety: register handlers and callbacks (Handlers) before start(); every other member is
/// safe from any thread, handlers included (stop() from a handler only requests the stop).
class Server : public Handlers {
public:
  /// Takes the options; binds nothing until start(). Throws std::invalid_argument for bad options.
  explicit Server(ServerOptions options = {});
  /// Stops (gracefully) if running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds, listens and starts the loops and workers; returns at once. Throws std::system_error
  /// if the address cannot be resolved or bound, std::logic_error if already started.
  void start();
  /// Starts, then blocks until stop() (from any thread, handlers included). Returns 0.
  int run();
  /// Starts, blocks until SIGINT or SIGTERM (or stop()), then stops gracefully. Returns 0.
  int run_until_signal();
  /// Starts (if not started) and, from the moment this returns, SIGINT and SIGTERM stop the
  /// server gracefully instead of killing the process. Call it before announcing readiness (a
  /// "listening on" line) if a supervisor may signal right after; run_until_signal() calls it.
  /// Idempotent. Call from one thread (not from a handler).
  void stop_on_signals();
  /// Graceful stop: stop accepting, send what writes already accepted (within
  /// connection.close_timeout), close every connection (on_close runs for each), let the workers
  /// finish, join all threads. Blocks until done, except from one of the server's own threads.
  void stop();
  /// Blocks until a stop is requested, then completes it.
  void wait();

  /// The port actually bound (useful with port 0).
  std::uint16_t port() const noexcept;
  /// The address actually bound.
  Endpoint local_endpoint() const;
  /// True between start() and the end of stop().
  bool running() const noexcept;

  /// The open connection with this id, or null.
  ConnectionPtr connection(ConnectionId id) const;
  /// Open connections.
  std::size_t connection_count() const noexcept;
  /// Calls fn for every open connection (on a snapshot; connections may close meanwhile).
  void for_each_connection(const std::function<void(const ConnectionPtr&)>& fn) const;
  /// Connections refused because of max_connections, since start.
  std::uint64_t refused_connections() const noexcept;
  /// Counters and gauges, summed over the loops and workers now (all zero before start()).
  MetricsSnapshot metrics() const;
  /// The port of the metrics HTTP endpoint, or 0 when it is off.
  std::uint16_t metrics_port() const noexcept;

  /// Writes msg to one connection. Errors: connection_not_found, or those of Connection::write.
  template <Message T> std::error_code unicast(ConnectionId id, const T& msg) {
    ConnectionPtr c = connection(id);
    if (!c) return errc::connection_not_found;
    return c->write(msg);
  }
  /// Encodes msg once and queues it on every open connection; never waits for a slow peer, and a
  /// refused connection (send_queue_full, closing) does not stop the others. Returns how many
  /// connections accepted it.
  template <Message T> std::size_t broadcast(const T& msg) {
    Buffer& b = detail::scratch_buffer();
    b.clear();
    if (codec_->encode(
            static_cast<MessageType>(T::type), [&msg](Buffer& o) { msg.encode(o); }, b))
      return 0;
    return broadcast_encoded(b.view());
  }
  /// Broadcasts bytes that already hold whole frames.
  std::size_t broadcast_encoded(ByteView frames);

  /// The worker pool, or null when handlers run on the loops.
  WorkerPool* workers() noexcept;
  /// The options it was made with.
  const ServerOptions& options() const noexcept;

private:
  std::shared_ptr<const Codec> codec_;
  std::shared_ptr<detail::ServerCore> core_;
};

} // namespace tao
