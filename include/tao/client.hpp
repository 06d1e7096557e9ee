// A TCP client of typed messages: one connection to one server.
// Thread safety: handle()/on_*() before connect(); everything else is safe from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <system_error>

#include <tao/connection.hpp>
#include <tao/handlers.hpp>
#include <tao/metrics.hpp>
#include <tao/options.hpp>

namespace tao {

namespace detail {
class ClientCore;
}

class WorkerPool;

/// A client: one connection to one server, optionally reconnecting (Go Tao's ClientConn).
/// Thread safety: register handlers and callbacks (Handlers) before connect(); every other member
/// is safe from any thread, handlers included.
class Client : public Handlers {
public:
  /// Takes the options; nothing runs until connect(). Throws std::invalid_argument for bad
  /// options, and an exception naming the file for an unreadable TLS certificate or key.
  explicit Client(ClientOptions options = {});
  /// Closes the connection (gracefully) and joins the threads.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Resolves host, connects (within connect_timeout) and runs on_connect. Blocks until then.
  /// Errors: connect_timeout, rejected (on_connect returned false), or the system's error.
  std::error_code connect();

  /// Writes msg on the connection. Errors: not_connected (or, with reconnect.queue_bytes, the
  /// message is queued for the next connection and send_queue_full once that queue is full), or
  /// those of Connection::write.
  template <Message T> std::error_code write(const T& msg) {
    ConnectionPtr c = connection();
    if (c && c->is_open()) return c->write(msg);
    return write_disconnected(static_cast<MessageType>(T::type),
                              [&msg](Buffer& b) { msg.encode(b); });
  }
  /// Writes a frame with a runtime type number and raw payload; same errors as write(msg).
  std::error_code write(const RawMessage& msg);

  /// With reconnect: called before each attempt with its number (1, 2, ...; it starts again at 1
  /// once a connection has lasted max_delay). Runs on the client's loop. Set before connect().
  void on_reconnect(std::function<void(std::size_t attempt)> fn);

  /// The current connection (may be closed), or null before the first connect.
  ConnectionPtr connection() const;
  /// True while a connection is open.
  bool connected() const;
  /// Blocks until the current connection has closed and its on_close ran, or `timeout` passed.
  /// Returns true if closed.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());

  /// Graceful close of the connection; no reconnect follows (a pending attempt is cancelled).
  /// connect() may be called again.
  void close();
  /// Closes and joins the threads; the client is finished.
  void stop();

  /// The worker pool, or null when handlers run on the loop (workers = 0, the default).
  WorkerPool* workers() noexcept;
  /// The options it was made with.
  const ClientOptions& options() const noexcept;
  /// Counters and gauges of this client's loops and workers (all zero before connect()).
  MetricsSnapshot metrics() const;
  /// The port of the metrics HTTP endpoint, or 0 when it is off.
  std::uint16_t metrics_port() const noexcept;

private:
  std::error_code write_disconnected(MessageType type, detail::FunctionRef<void(Buffer&)> payload);
  std::shared_ptr<detail::ClientCore> core_;
};

} // namespace tao
