// A connection to one peer, on a server or a client.
// Thread safety: every public member is safe to call from any thread.
#pragma once

#include <any>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

#include <tao/buffer.hpp>
#include <tao/codec.hpp>
#include <tao/error.hpp>
#include <tao/message.hpp>
#include <tao/timer.hpp>

namespace tao {

/// Process-wide unique, increasing connection id (Go Tao's NetID).
using ConnectionId = std::uint64_t;

/// An IP address and port.
struct Endpoint {
  std::string address;    ///< "127.0.0.1", "::1", ...
  std::uint16_t port = 0; ///< The TCP port.
  /// "127.0.0.1:12345" or "[::1]:12345".
  std::string to_string() const;
};

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;

/// A connection timer's callback: the connection and the time the timer was due.
using TimerCallback = std::function<void(Connection&, TimePoint due)>;

/// One TCP (or TLS) connection. Owned by shared pointers: the framework holds one while the
/// connection is open; handlers get a reference valid for the call; code that keeps a connection
/// keeps its ConnectionPtr (shared_from_this()) or its id.
/// Thread safety: every public member is safe to call from any thread, handlers included.
class Connection : public std::enable_shared_from_this<Connection> {
public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  virtual ~Connection();

  /// Process-wide unique id (Go Tao's NetID).
  ConnectionId id() const noexcept { return id_; }
  /// "server#17 127.0.0.1:54321" style, for logs (built on each call: not stored, so an idle
  /// connection does not pay for it).
  std::string name() const;
  /// This side's address.
  const Endpoint& local_endpoint() const noexcept { return local_; }
  /// The peer's address.
  const Endpoint& remote_endpoint() const noexcept { return remote_; }

  /// Encodes `msg` on the calling thread and queues it; the connection's loop sends it.
  /// Errors: connection_closed, send_queue_full (nothing queued), frame_too_large.
  template <Message T> std::error_code write(const T& msg) {
    return write_frame(static_cast<MessageType>(T::type), [&msg](Buffer& b) { msg.encode(b); });
  }
  /// Writes a frame with a runtime type number and raw payload.
  std::error_code write(const RawMessage& msg);
  /// Writes a frame of `type` whose payload is `payload` (copied); same errors as write(msg).
  std::error_code write_raw(MessageType type, ByteView payload);
  /// Queues bytes that are already whole frames in this connection's codec (broadcast uses it
  /// to encode once). Same errors as write().
  virtual std::error_code write_encoded(ByteView frames) = 0;

  /// Graceful close: stop reading, send what was accepted (within the close deadline), close.
  /// on_close runs once. Writes after close() return connection_closed.
  virtual void close() = 0;
  /// Immediate close: queued data is discarded.
  virtual void abort() = 0;
  /// True until the connection starts closing.
  virtual bool is_open() const noexcept = 0;
  /// Why the connection closed (empty while open): closed_by_peer, closed_locally, a protocol
  /// error, an I/O error from the system category, ...
  std::error_code close_reason() const;

  /// True for a TLS connection.
  virtual bool is_tls() const noexcept = 0;
  /// The ALPN protocol negotiated by TLS, or empty.
  virtual std::string alpn() const = 0;

  /// Bytes accepted by write() and not yet handed to the kernel.
  virtual std::size_t queued_bytes() const noexcept = 0;
  /// Decoded messages waiting for (or running on) the worker pool.
  virtual std::size_t pending_tasks() const noexcept = 0;

  /// Timers (Go Tao's RunAt/RunAfter/RunEvery/CancelTimer). Callbacks run where this
  /// connection's handlers run by default (its worker, or its loop), so they are ordered with its
  /// messages; they never run after the connection closed: closing cancels them. Return 0 when
  /// the connection is already closed. An exception from a callback closes the connection, as
  /// from a handler.
  virtual TimerId run_at(TimePoint when, TimerCallback fn) = 0;
  /// run_at(now + delay, fn).
  TimerId run_after(Duration delay, TimerCallback fn) {
    return run_at(Clock::now() + delay, std::move(fn));
  }
  /// First at now + interval, then every interval, keeping the phase (see TimerQueue::run_every).
  virtual TimerId run_every(Duration interval, TimerCallback fn) = 0;
  /// Returns true if the timer was still pending (a periodic timer: until cancelled).
  virtual bool cancel_timer(TimerId id) = 0;

  /// User context: arbitrary values under string keys.
  void set_context(const std::string& key, std::any value);
  /// The value under `key`, or an empty std::any.
  std::any context(const std::string& key) const;
  /// The value under `key` if it holds a T.
  template <class T> std::optional<T> context_as(const std::string& key) const {
    std::any v = context(key);
    if (const T* p = std::any_cast<T>(&v)) return *p;
    return std::nullopt;
  }
  /// Removes `key`; returns whether it was there.
  bool erase_context(const std::string& key);

protected:
  /// For the framework's connection types (TCP, TLS). `role` ("server", "client") must outlive
  /// the connection.
  Connection(ConnectionId id, std::string_view role, Endpoint local, Endpoint remote,
             std::shared_ptr<const Codec> codec);
  /// Records the first close reason; later ones are ignored.
  void set_close_reason(std::error_code ec);
  /// The codec frames are encoded with.
  const Codec& codec() const noexcept { return *codec_; }

private:
  std::error_code write_frame(MessageType type, detail::FunctionRef<void(Buffer&)> payload);

  using ContextMap = std::unordered_map<std::string, std::any>;

  const ConnectionId id_;
  const std::string_view role_;
  const Endpoint local_;
  const Endpoint remote_;
  const std::shared_ptr<const Codec> codec_;

  mutable std::mutex mutex_;            // context_ and close_reason_
  std::unique_ptr<ContextMap> context_; // allocated by the first set_context()
  std::error_code close_reason_;
};

namespace detail {
/// The calling thread's reusable encode buffer.
Buffer& scratch_buffer() noexcept;
} // namespace detail

/// Draws the next connection id (process-wide, starts at 1).
ConnectionId next_connection_id() noexcept;

} // namespace tao
