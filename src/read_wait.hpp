// Waiting for a plain TCP socket to become readable. This is the one place that knows how
// Asio's epoll reactor works inside (the Linux-specific part; other platforms and other Boost
// versions take the portable async_wait).
//
// Why: a connection holds no read buffer while idle, so it waits for readability with
// async_wait and reads into its loop's shared buffer when woken. Asio's async_wait must assume
// bytes may already be waiting, so each one re-arms the descriptor with epoll_ctl: one more
// system call per wake-up (a small echo costs recv, send and that epoll_ctl). But when the
// connection's last read returned would_block and it has not returned to the event loop since,
// nothing needs re-arming: Asio registers every socket edge-triggered, so whatever arrives
// later (bytes, FIN, RST) raises a new edge, and the loop's next epoll_wait reports it to the
// queued wait. That wait is queued here without a system call. The loop runs on one thread, so
// no other thread can collect that edge before the wait is queued. A read that returned fewer
// bytes than asked is not enough: the peer's FIN or RST may sit behind them, already announced
// by the edge that woke the loop, unless the owner looks for those later itself (TcpConnection
// does for a read that handed messages to the workers: see its read_parked_).
#pragma once

#include <memory>
#include <utility>

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/version.hpp>

#if defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) &&               \
    BOOST_VERSION / 100 == 1081
// Checked against Boost 1.81's epoll_reactor (Debian 12's libboost1.81-dev): start_op with
// allow_speculative queues a read operation without epoll_ctl when its perform() says not done.
#define TAO_READ_WAIT_QUEUES_DIRECTLY 1
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#endif

namespace tao::detail {

#ifdef TAO_READ_WAIT_QUEUES_DIRECTLY
/// The loop's reactor, looked up once per loop (asio::use_service takes a mutex and a search).
using ReadWaitReactor = boost::asio::detail::reactor*;
inline ReadWaitReactor read_wait_reactor(boost::asio::io_context& context) {
  return &boost::asio::use_service<boost::asio::detail::reactor>(context);
}
#else
using ReadWaitReactor = void*;
inline ReadWaitReactor read_wait_reactor(boost::asio::io_context&) { return nullptr; }
#endif

/// One readability wait at a time for the plain TCP socket of an `Owner`, which gets
/// `on_readable(ec)` (operation_aborted when the socket is closed; success after kick()). The
/// wait keeps the owner alive until its callback has run, or until the io_context is destroyed
/// with the wait still queued. Loop thread only.
template <class Owner>
class ReadWait
#ifdef TAO_READ_WAIT_QUEUES_DIRECTLY
    : private boost::asio::detail::reactor_op
#endif
{
public:
#ifdef TAO_READ_WAIT_QUEUES_DIRECTLY
  ReadWait() noexcept : reactor_op(boost::system::error_code(), &do_perform, &do_complete) {}
#else
  ReadWait() noexcept = default;
#endif
  ReadWait(const ReadWait&) = delete;
  ReadWait& operator=(const ReadWait&) = delete;

  /// Waits for `socket` to become readable. `drained`: the caller's last read of it returned
  /// would_block (or fewer bytes than asked, and the caller looks later for a FIN or RST behind
  /// them), and the loop has not run anything else since.
  /// `reactor`: read_wait_reactor() of the socket's io_context.
  template <class Socket>
  void start(Socket& socket, std::shared_ptr<Owner> owner, bool drained,
             [[maybe_unused]] ReadWaitReactor reactor) {
#ifdef TAO_READ_WAIT_QUEUES_DIRECTLY
    if (drained) {
      auto& impl = ImplAccess<Socket>::get(socket);
      ec_ = boost::system::error_code();
      bytes_transferred_ = 0;
      cancellation_key_ = this; // for kick()
      kicked_ = false;
      queued_ = true;
      owner_ = std::move(owner);
      // A speculative perform() comes from start_op itself: "not done yet", so the wait is
      // queued (no system call either way).
      starting_ = true;
      reactor->start_op(boost::asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_,
                        this, true, true);
      starting_ = false;
      return;
    }
#else
    (void)drained;
#endif
    socket.async_wait(
        boost::asio::socket_base::wait_read,
        [o = std::move(owner)](const boost::system::error_code& ec) { o->on_readable(ec); });
  }

  /// True if kick() can complete a queued wait (only a wait queued directly).
#ifdef TAO_READ_WAIT_QUEUES_DIRECTLY
  static constexpr bool can_kick = true;
#else
  static constexpr bool can_kick = false;
#endif

  /// Completes the wait queued directly by start(), if it is still queued, as if the socket
  /// had become readable: the owner's on_readable runs (after what the loop has queued now, no
  /// system call). Else nothing.
  template <class Socket> void kick(Socket& socket, [[maybe_unused]] ReadWaitReactor reactor) {
#ifdef TAO_READ_WAIT_QUEUES_DIRECTLY
    if (!queued_) return;
    auto& impl = ImplAccess<Socket>::get(socket);
    kicked_ = true;
    // Removes only this operation (its key is `this`) and posts its completion, aborted.
    reactor->cancel_ops_by_key(impl.socket_, impl.reactor_data_,
                               boost::asio::detail::reactor::read_op, this);
#else
    (void)socket;
#endif
  }

private:
#ifdef TAO_READ_WAIT_QUEUES_DIRECTLY
  /// basic_socket keeps its implementation (descriptor, reactor registration) protected.
  template <class Socket> struct ImplAccess : Socket {
    static auto& get(Socket& s) { return (s.*(&ImplAccess::impl_)).get_implementation(); }
  };

  static status do_perform(reactor_op* base) {
    return static_cast<ReadWait*>(base)->starting_ ? not_done : done;
  }

  static void do_complete(void* scheduler, boost::asio::detail::operation* base,
                          const boost::system::error_code&, std::size_t) {
    auto* self = static_cast<ReadWait*>(base);
    // Moved out first: dropping the owner may destroy it, and this wait with it.
    std::shared_ptr<Owner> owner = std::move(self->owner_);
    self->queued_ = false;
    if (!scheduler) return; // destroyed with its io_context, never run
    boost::system::error_code ec = self->ec_;
    // Kicked: aborted by kick(), or by a close that came first (the owner sees it is closed).
    if (std::exchange(self->kicked_, false) && ec == boost::asio::error::operation_aborted) ec = {};
    owner->on_readable(ec);
  }

  std::shared_ptr<Owner> owner_;
  bool starting_ = false;
  bool queued_ = false; // queued by start(), not yet completed
  bool kicked_ = false;
#endif
};

} // namespace tao::detail
