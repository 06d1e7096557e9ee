// A TCP client of typed messages: one connection to one server.
// Thread safety: handle()/on_*() before connect(); everything else is safe from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <system_error>

#include <tao/connection.hpp>
#include <tao/handlers.hpp>
#include <tao/options.hpp>

namespace tao {

namespace detail {
class ClientCore;
}

class WorkerPool;

class Client : public Handlers {
public:
  explicit Client(ClientOptions options = {});
  /// Closes the connection (gracefully) and joins the threads.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Resolves host, connects (within connect_timeout) and runs on_connect. Blocks until then.
  /// Errors: connect_timeout, rejected (on_connect returned false), or the system's error.
  std::error_code connect();

  /// Writes msg on the connection. Errors: not_connected, or those of Connection::write.
  template <Message T> std::error_code write(const T& msg) {
    ConnectionPtr c = connection();
    if (!c || !c->is_open()) return errc::not_connected;
    return c->write(msg);
  }
  std::error_code write(const RawMessage& msg);

  /// The current connection (may be closed), or null before the first connect.
  ConnectionPtr connection() const;
  bool connected() const;
  /// Blocks until the current connection has closed and its on_close ran, or `timeout` passed.
  /// Returns true if closed.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());

  /// Graceful close of the connection; connect() may be called again.
  void close();
  /// Closes and joins the threads; the client is finished.
  void stop();

  WorkerPool* workers() noexcept;
  const ClientOptions& options() const noexcept;

private:
  std::shared_ptr<detail::ClientCore> core_;
};

} // namespace tao
