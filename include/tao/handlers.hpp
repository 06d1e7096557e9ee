// The message registry and callbacks that a Server and a Client share: handle<T>() registers a
// message type with its handler; on_connect/on_message/on_close/on_error set the callbacks.
// Thread safety: register handlers and callbacks before start(); afterwards the set is frozen
// (registering throws std::logic_error) and read without locks.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <tao/connection.hpp>
#include <tao/detail/unique_function.hpp>
#include <tao/error.hpp>
#include <tao/message.hpp>
#include <tao/timer.hpp>

namespace tao {

/// Where a handler runs.
enum class Run {
  /// The server's or client's default: the worker pool when it has workers, else the loop.
  by_default,
  /// On the connection's I/O loop, inline with reading: fastest; the handler must never block.
  on_loop,
  /// On the worker pool, on the worker chosen by the connection's id (so in order per connection).
  on_worker,
};

/// Called when a connection opens; return false to reject (the connection is closed).
using ConnectCallback = std::function<bool(Connection&)>;
/// Called for frames whose type has no handler. The payload is valid for the call only.
using MessageCallback = std::function<void(Connection&, const Frame&)>;
/// Called exactly once per connection that reached on_connect, whatever closed it.
using CloseCallback = std::function<void(Connection&)>;
/// Called on protocol errors, I/O errors, refused writes and handler exceptions.
using ErrorCallback = std::function<void(Connection&, const Error&)>;
/// Called for every connection on a schedule (Go Tao's SetOnScheduleCallback / Sched).
using ScheduleCallback = std::function<void(Connection&, TimePoint now)>;

namespace detail {

using Task = UniqueFunction<void(Connection&)>;

struct HandlerEntry {
  Run run = Run::by_default;
  /// Decodes `payload`. If `run_now`, calls the handler at once; else moves a task that calls it
  /// into `later`. Returns false when the payload does not decode.
  std::function<bool(Connection&, ByteView payload, bool run_now, Task& later)> dispatch;
};

/// Registry and callbacks; shared with connections, frozen once running.
struct Dispatch {
  std::unordered_map<MessageType, HandlerEntry> handlers;
  ConnectCallback on_connect;
  MessageCallback on_message;
  CloseCallback on_close;
  ErrorCallback on_error;
  struct Schedule {
    Duration interval;
    std::shared_ptr<const ScheduleCallback> fn;
  };
  std::vector<Schedule> schedules;
  Run default_run = Run::on_loop; ///< Resolved at start from the worker count.
  bool frozen = false;

  const HandlerEntry* find(MessageType t) const noexcept {
    auto it = handlers.find(t);
    return it == handlers.end() ? nullptr : &it->second;
  }
  /// True when a callback or handler of placement `r` runs on the loop.
  bool runs_on_loop(Run r) const noexcept {
    return (r == Run::by_default ? default_run : r) == Run::on_loop;
  }
};

} // namespace detail

/// Handler registration shared by Server and Client.
/// Thread safety: register before start() / connect(), from one thread; afterwards the
/// registry is frozen (registering throws std::logic_error) and read by every thread without locks.
class Handlers {
public:
  /// Registers message type T with `fn(Connection&, const T&)`. Throws std::logic_error if T's
  /// type number is already registered or the server/client is running.
  template <Message T, class F>
  requires std::is_invocable_v<F&, Connection&, const T&>
  void handle(F&& fn, Run run = Run::by_default) {
    auto h = std::make_shared<std::decay_t<F>>(std::forward<F>(fn));
    add(static_cast<MessageType>(T::type),
        detail::HandlerEntry{
            run, [h](Connection& c, ByteView payload, bool run_now, detail::Task& later) {
              auto msg = detail::decode_message<T>(payload);
              if (!msg) return false;
              if (run_now) {
                (*h)(c, *msg);
              } else {
                // A message that views the payload (tao::Flat) takes a copy: the read buffer is
                // reused before the worker runs.
                if constexpr (requires(T & t) { t.detach(); }) msg->detach();
                later = [h, m = std::move(*msg)](Connection& conn) { (*h)(conn, m); };
              }
              return true;
            }});
  }

  /// Registers a raw handler for frames of `type`: `fn(Connection&, const Frame&)`.
  void handle_raw(MessageType type, std::function<void(Connection&, const Frame&)> fn,
                  Run run = Run::by_default);

  /// Called when a connection opens, before anything is read; false rejects it.
  void on_connect(ConnectCallback cb) { mutable_dispatch().on_connect = std::move(cb); }
  /// Called for frames whose type has no handler (Go Tao's OnMessageOption).
  void on_message(MessageCallback cb) { mutable_dispatch().on_message = std::move(cb); }
  /// Called once per connection that reached on_connect, last.
  void on_close(CloseCallback cb) { mutable_dispatch().on_close = std::move(cb); }
  /// Called on protocol and I/O errors, refused writes and handler exceptions.
  void on_error(ErrorCallback cb) { mutable_dispatch().on_error = std::move(cb); }
  /// Calls fn(connection, due) every `interval` for every open connection, present and future,
  /// where that connection's handlers run by default. One timer per event loop drives it, not
  /// one per connection. Throws std::invalid_argument for a non-positive interval.
  void schedule_every(Duration interval, ScheduleCallback fn);

protected:
  /// An empty registry.
  Handlers() : dispatch_(std::make_shared<detail::Dispatch>()) {}
  ~Handlers() = default;
  /// The registry, shared with the connections once running.
  std::shared_ptr<detail::Dispatch> dispatch_;

private:
  void add(MessageType type, detail::HandlerEntry entry);
  detail::Dispatch& mutable_dispatch();
};

} // namespace tao
