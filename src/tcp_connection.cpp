#include "tcp_connection.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <tao/log.hpp>

namespace tao::detail {

namespace {

constexpr std::size_t min_read_room = 16u << 10;
// Capacity a busy connection's write buffers keep between sends: about the replies of a full read
// at the default read_chunk (128 KiB; a frame completed from the read before can push them past
// it, and then the grown buffer is freed after the send), so answering full reads does not
// usually grow the buffer and copy it once per read.
constexpr std::size_t keep_write_capacity = 128u << 10;
// What a message on its way to a worker counts in its loop's worker backlog besides its payload:
// its task and decoded object (ConnectionOptions::max_worker_backlog).
constexpr std::size_t backlog_per_message = 64;
constexpr std::size_t tls_read_size = 16u << 10; // one TLS record at most
// What an empty queue reserves after a send of `sent` bytes, in KiB (see last_flush_kib_).
std::uint8_t reserve_kib(std::size_t sent) {
  return static_cast<std::uint8_t>((std::min(sent, keep_write_capacity) + 1023) >> 10);
}
// After a send: a burst's big buffer is freed, not kept for the next (maybe small) write, by the
// connection or by its loop's spares.
void free_if_over_keep(std::vector<char>& buffer) {
  if (buffer.capacity() > keep_write_capacity) std::vector<char>().swap(buffer);
}
// A read batch's replies normally go out in one send when the batch ends: with many connections
// on a loop that saves system calls. When the loop seems to be serving one connection alone (its
// previous read wake-up, plain or TLS, was this connection's), the queue is sent each time at
// least this much is in it, as the replies are made, so a peer with many requests in flight can
// start on the first replies while the rest are made instead of the two sides taking turns
// (measured: 1 connection x 16 x 4 KiB in flight).
constexpr std::size_t reply_piece = 16u << 10;
// The connection whose message task this worker thread is running, if that message was read while
// its loop served this connection alone (nullptr elsewhere). A reply such a task writes to its own
// plain-TCP connection while nothing is queued or being sent there, and no other message of the
// connection waits for the worker, is sent by the worker itself (send_from_worker_locked) instead
// of being handed to the loop: on a core shared by a loop and its worker, every hand-over is a
// thread switch, and posting it wakes the loop. With more messages of the connection waiting for
// the worker, its replies are held back (replies_held_) for the last of those tasks to send
// together, but for Loop::reply_hold at most: the loop's reply sweep sends what is still held
// then, so a handler that replies and then works long does not hold its reply. (Sending each
// reply from the worker costs more, measured: every small send lets the peer answer with one
// more message, and the batches shrink to one message each; waking the loop for the first reply
// of each batch costs thread switches.) With many connections busy on the loop, the loop sends
// the replies, which then go out together.
thread_local TcpConnection* t_task_conn = nullptr;
// Largest queue a worker sends itself, so it holds wmutex_ (which the loop and other writers
// take) only for a short copy; more goes through the loop, as before.
constexpr std::size_t worker_send_max = 64u << 10;
// A read parked after handing messages to the workers (see read_parked_) is checked for a FIN
// or RST behind its bytes after this many of the loop's sweeps (Loop::reply_hold apart): 4-5 ms
// after the read, unless a read came first. Measured: after 1-2 ms, the peer at 1,000
// connections x 4 KiB x 16 in flight had often not answered yet, and the checks cost 20 % more
// recv calls than after 4-5 ms; at 100 x 16 B x 16, the peer answers well within either.
constexpr std::uint32_t read_check_sweeps = 5;
// A lingering close ends when the peer has sent nothing for this long (see start_linger).
// One second, not less: a peer's thread can stall that long under load (seen under TSan with 100
// ms: the peer sent again after the close and lost the replies to the reset). Checked every
// linger_tick_period.
constexpr auto linger_idle = std::chrono::seconds(1);
constexpr auto linger_tick_period = std::chrono::milliseconds(100);

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string hex_prefix(const char* data, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < std::min<std::size_t>(n, 16); ++i)
    out += fmt::format("{:02x}", static_cast<unsigned char>(data[i]));
  if (n > 16) out += "...";
  return out;
}

} // namespace

TcpConnection::TcpConnection(std::shared_ptr<Core> core, Loop& loop, Socket socket, ConnectionId id,
                             Endpoint local, Endpoint remote)
    : Connection(id, core->role, std::move(local), std::move(remote), core->codec),
      core_(std::move(core)), loop_(loop),
      tls_(core_->tls ? std::make_unique<Tls>(std::move(socket), *core_->tls->context) : nullptr),
      socket_(std::move(socket)), opts_(core_->conn_opts) {
  if (core_->workers) worker_ = static_cast<std::uint32_t>(core_->workers->worker_for(id));
  boost::system::error_code ec;
  sock().non_blocking(true, ec);
  sock().set_option(asio::ip::tcp::no_delay(true), ec);
  if (tls_) {
    handshake_done_ = false;
    const TlsConfig& t = *core_->tls;
    if (!t.server) {
      // SNI (not for IP literals, which SNI does not allow) and the hostname check.
      boost::system::error_code not_ip;
      asio::ip::make_address(t.server_name, not_ip);
      if (not_ip) SSL_set_tlsext_host_name(tls_->stream.native_handle(), t.server_name.c_str());
      if (t.options.verify_peer)
        tls_->stream.set_verify_callback(asio::ssl::host_name_verification(t.server_name));
    }
  }
}

TcpConnection::~TcpConnection() = default;

// ---------------------------------------------------------------------------------------------
// Start and callbacks

void TcpConnection::start(std::function<void(bool)> started) {
  if (started) started_ = std::make_unique<std::function<void(bool)>>(std::move(started));
  bump(loop_.counters().connections_accepted);
  if (core_->stopping.load()) {
    // Raced with a stop: never reached on_connect, so no on_close either.
    set_close_reason(make_error_code(errc::stopped));
    state_ = State::closed;
    open_ = false;
    {
      std::lock_guard lock(wmutex_);
      accepting_ = false;
    }
    boost::system::error_code ec;
    sock().close(ec);
    if (started_) (*started_)(false);
    bump(loop_.counters().connections_closed);
    core_->connection_left();
    core_->connection_finished();
    return;
  }
  core_->connections.insert(id(), shared_from_this());
  if (core_->stopping.load()) { // stop() may have iterated the registry before we joined it
    close();
  }
  if (tls_) {
    start_handshake();
    return;
  }
  open_connection();
}

void TcpConnection::start_handshake() {
  // The deadline is a per-loop timer: a peer that connects and never finishes is closed.
  std::weak_ptr<Connection> weak = weak_from_this();
  tls_->handshake_timer = loop_.timers().add(
      Clock::now() + core_->tls->options.handshake_timeout, Duration::zero(), [weak](TimePoint) {
        auto s = std::static_pointer_cast<TcpConnection>(weak.lock());
        if (!s || s->handshake_done_ || s->state_ == State::closed) return;
        s->fail(make_error_code(errc::tls_handshake_timeout),
                fmt::format("TLS handshake not finished within {} ms",
                            s->core_->tls->options.handshake_timeout.count()));
      });
  tls_->stream.async_handshake(
      core_->tls->server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client,
      [s = self()](const boost::system::error_code& ec) { s->on_handshake(ec); });
}

void TcpConnection::on_handshake(const boost::system::error_code& ec) {
  loop_.timers().cancel(tls_->handshake_timer);
  if (state_ == State::closed) return;
  if (ec) {
    fail(make_error_code(errc::tls_handshake_failed),
         "TLS handshake failed: " + describe_tls_error(ec));
    return;
  }
  handshake_done_ = true;
  tls_->buf = std::make_unique_for_overwrite<char[]>(tls_read_size);
  {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(tls_->stream.native_handle(), &p, &n);
    std::lock_guard lock(wmutex_);
    if (n) tls_->alpn.assign(reinterpret_cast<const char*>(p), n);
  }
  logger()->debug("{}: TLS established ({}{})", name(),
                  SSL_get_version(tls_->stream.native_handle()),
                  alpn().empty() ? std::string() : ", ALPN " + alpn());
  flush(); // writes made before the handshake finished
  if (state_ == State::starting) open_connection();
}

void TcpConnection::open_connection() {
  logger()->debug("{}: connected", name());
  notify_close_ = true;
  const auto& d = *core_->dispatch;
  if (!d.on_connect) {
    after_connect(true);
    return;
  }
  run_callback(
      Run::by_default,
      [](Connection& c) {
        auto& self = static_cast<TcpConnection&>(c);
        bool ok = false;
        try {
          ok = self.core_->dispatch->on_connect(c);
        } catch (const std::exception& e) {
          self.report_error(errc::handler_exception, fmt::format("on_connect threw: {}", e.what()),
                            true);
        } catch (...) {
          self.report_error(errc::handler_exception, "on_connect threw", true);
        }
        if (self.loop_.in_this_thread()) {
          self.after_connect(ok);
        } else {
          asio::post(self.loop_.context(), [s = self.self(), ok] { s->after_connect(ok); });
        }
      },
      true);
}

void TcpConnection::after_connect(bool accepted) {
  auto started = std::move(started_);
  if (state_ != State::starting) { // closed meanwhile
    if (started) (*started)(false);
    return;
  }
  if (!accepted) {
    logger()->debug("{}: rejected by on_connect", name());
    if (started) (*started)(false);
    do_close(CloseMode::abort, make_error_code(errc::rejected));
    return;
  }
  state_ = State::open;
  last_in_ = last_out_ = Clock::now();
  member_pos_ = loop_.add_member(this);
  if (started) (*started)(true);
  begin_read();
}

void TcpConnection::run_callback(Run run, UniqueFunction<void(Connection&)> fn, bool may_inline) {
  if (core_->dispatch->runs_on_loop(run)) {
    if (may_inline && loop_.in_this_thread()) {
      fn(*this);
    } else {
      asio::post(loop_.context(), [s = self(), f = std::move(fn)]() mutable { f(*s); });
    }
    return;
  }
  // Behind the messages the loop has read before it (on_error and on_close after a bad frame
  // come after the handlers of the frames before it).
  if (loop_.in_this_thread() && !batch_tasks_.empty()) submit_batch(); // (a loop-only vector)
  auto ec = core_->workers->submit(id(), [s = self(), f = std::move(fn)]() mutable { f(*s); });
  if (ec) logger()->error("{}: worker pool refused a callback: {}", name(), ec.message());
}

void TcpConnection::report_error(std::error_code ec, std::string text, bool may_inline) {
  logger()->warn("{}: {}", name(), text);
  if (!core_->dispatch->on_error) return;
  run_callback(
      Run::by_default,
      [ec, t = std::move(text)](Connection& c) {
        try {
          static_cast<TcpConnection&>(c).core_->dispatch->on_error(c, Error{ec, t});
        } catch (const std::exception& e) {
          logger()->error("{}: on_error threw: {}", c.name(), e.what());
        } catch (...) {
          logger()->error("{}: on_error threw", c.name());
        }
      },
      may_inline);
}

void TcpConnection::task_done() noexcept {
  const std::size_t left = pending_.fetch_sub(1) - 1;
  if (left == 0) send_held_replies();
  if (left <= opts_.max_pending_messages / 2 && paused_for_tasks_.load() &&
      !resume_posted_.exchange(true)) {
    asio::post(loop_.context(), [s = self()] {
      s->resume_posted_ = false;
      s->paused_for_tasks_ = false;
      s->resume_reading();
    });
  }
  if (left == 0 && close_after_tasks_.load()) {
    asio::post(loop_.context(), [s = self()] {
      s->do_close(CloseMode::graceful, make_error_code(errc::closed_by_peer));
    });
  }
}

void TcpConnection::send_held_replies() noexcept {
  // Set by an earlier task of this connection on this same worker thread (so this relaxed read
  // sees it) and cleared by the loop: a stale true only costs taking the lock.
  if (!replies_held_.load(std::memory_order_relaxed)) return;
  bool post = false;
  {
    std::lock_guard lock(wmutex_);
    if (!replies_held_.load(std::memory_order_relaxed)) return;
    replies_held_.store(false, std::memory_order_relaxed);
    // After a close was requested, do_close sends what is queued (it finds no flush scheduled).
    if (!accepting_ || flush_active_ || wpending_.empty()) return;
    post = worker_may_send_locked() ? !send_from_worker_locked() : claim_flush_locked();
  }
  if (post) loop_.request_flush(self());
}

bool TcpConnection::sweep_replies() {
  bool send = false;
  {
    std::lock_guard lock(wmutex_);
    send = replies_held_.load(std::memory_order_relaxed) && claim_flush_locked();
    replies_held_.store(false, std::memory_order_relaxed);
  }
  if (send) flush();
  // The last task sends what it finds held (send_held_replies), so once none is left on the
  // workers the loop stops watching; the next task submitted watches the connection again.
  if (pending_.load() > 0) return true;
  reply_watched_ = false;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Timers

TimerId TcpConnection::run_at(TimePoint when, TimerCallback fn) {
  return add_timer(when, Duration::zero(), std::move(fn));
}

TimerId TcpConnection::run_every(Duration interval, TimerCallback fn) {
  if (interval.count() <= 0) return 0;
  return add_timer(Clock::now() + interval, interval, std::move(fn));
}

bool TcpConnection::cancel_timer(TimerId id) { return loop_.timers().cancel(id); }

std::string TcpConnection::alpn() const {
  std::lock_guard lock(wmutex_);
  return tls_ ? tls_->alpn : std::string();
}

TimerId TcpConnection::add_timer(TimePoint due, Duration interval, TimerCallback fn) {
  if (!timers_enabled_.load()) return 0;
  auto f = std::make_shared<TimerCallback>(std::move(fn));
  std::weak_ptr<Connection> weak = weak_from_this(); // timers do not keep a connection alive
  const TimerId id = loop_.timers().add(due, interval, [weak, f](TimePoint when) {
    auto s = std::static_pointer_cast<TcpConnection>(weak.lock());
    if (!s) return;
    s->run_timer_callback([f, when](Connection& c) { (*f)(c, when); });
  });
  std::lock_guard lock(wmutex_);
  if (!timers_enabled_.load()) { // raced with the close
    loop_.timers().cancel(id);
    return 0;
  }
  if (!timer_ids_) timer_ids_ = std::make_unique<TimerIds>();
  auto& t = *timer_ids_;
  if (t.ids.size() >= t.prune_at) {
    // Forget ids of timers that already ran; the threshold doubles with what stays, so a
    // connection holding many pending timers pays amortised O(1) per add, not a scan each time.
    std::erase_if(t.ids, [this](TimerId x) { return !loop_.timers().pending(x); });
    t.prune_at = std::max<std::size_t>(64, 2 * t.ids.size());
  }
  t.ids.push_back(id);
  return id;
}

void TcpConnection::cancel_all_timers() {
  timers_enabled_.store(false);
  std::unique_ptr<TimerIds> ids;
  {
    std::lock_guard lock(wmutex_);
    ids.swap(timer_ids_);
  }
  if (ids)
    for (TimerId id : ids->ids)
      loop_.timers().cancel(id);
}

void TcpConnection::heartbeat_check(TimePoint now) {
  if (state_ != State::open) return;
  if (paused_for_backlog_ && !peer_gone_while_paused(now)) return; // (closed it)
  const HeartbeatOptions& hb = core_->heartbeat;
  if (hb.timeout.count() > 0) {
    // While we stopped reading (backpressure), the silence is ours, not the peer's.
    if (paused_for_send_ || paused_for_backlog_ || paused_for_tasks_.load()) last_in_ = now;
    if (now - last_in_ >= hb.timeout) {
      bump(loop_.counters().heartbeat_timeouts);
      fail(make_error_code(errc::heartbeat_timeout),
           fmt::format(
               "heartbeat timeout: no complete frame from the peer for {} ms{}",
               std::chrono::duration_cast<std::chrono::milliseconds>(now - last_in_).count(),
               rbeg_ != rend_ ? fmt::format(" ({} bytes of an unfinished frame)", rend_ - rbeg_)
                              : std::string()));
      return;
    }
  }
  if (worker_sent_.exchange(false, std::memory_order_relaxed)) last_out_ = now;
  if (hb.interval.count() > 0 && !writing_ && now - last_out_ >= hb.interval) {
    write(Heartbeat{now_ns()});
    last_out_ = now; // even if the write is refused, do not retry on every sweep
  }
}

void TcpConnection::run_scheduled(const std::shared_ptr<const ScheduleCallback>& fn,
                                  TimePoint due) {
  if (state_ != State::open) return;
  run_timer_callback([fn, due](Connection& c) { (*fn)(c, due); });
}

void TcpConnection::run_timer_callback(UniqueFunction<void(Connection&)> fn) {
  run_callback(
      Run::by_default,
      [f = std::move(fn)](Connection& c) mutable {
        auto& self = static_cast<TcpConnection&>(c);
        if (!self.timers_enabled_.load()) return; // closed meanwhile: never after close
        try {
          f(c);
        } catch (const std::exception& e) {
          self.handler_threw(e.what());
        } catch (...) {
          self.handler_threw("non-standard exception");
        }
      },
      true);
}

// ---------------------------------------------------------------------------------------------
// Read path

bool TcpConnection::read_blocked() {
  if (close_requested_.load(std::memory_order_relaxed)) return true;
  if (queued_.load(std::memory_order_relaxed) >= opts_.pause_reading_at) {
    paused_for_send_ = true;
    return true;
  }
  if (core_->workers) {
    // The messages this loop has queued for the connection's worker are at its share of
    // max_worker_backlog: its connections on the loop stop reading, and read again in the order
    // they stopped once half has run.
    const std::size_t w = worker_index();
    if (loop_.backlog_full(w, batch_bytes_) || loop_.backlog_queued(w)) {
      if (!paused_for_backlog_) {
        paused_for_backlog_ = true;
        loop_.wait_backlog(w, self(), batch_bytes_);
      }
      return true;
    }
    if (pending_.load() >= opts_.max_pending_messages) {
      paused_for_tasks_.store(true);
      // A worker may have drained past the resume mark before it could see the flag.
      if (pending_.load() > opts_.max_pending_messages / 2) return true;
      paused_for_tasks_.store(false);
    }
  }
  return false;
}

void TcpConnection::begin_read(ReadArm how) {
  if (reading_ || state_ != State::open || read_blocked()) return;
  reading_ = true;
  if (tls_) {
    // OpenSSL keeps its own buffers, so TLS reads go through a per-connection buffer.
    tls_->stream.async_read_some(asio::buffer(tls_->buf.get(), tls_read_size),
                                 [s = self()](const boost::system::error_code& ec, std::size_t n) {
                                   s->on_tls_read(ec, n);
                                 });
    return;
  }
  if (how == ReadArm::after_tasks) {
    // Bytes that arrive later raise an edge, which the wait gets, as after a read that found
    // the socket empty. Only a FIN or RST behind the short read would go unannounced: the
    // loop's sweep looks 4-5 ms later and completes the wait if so (see read_parked_).
    read_wait_.start(socket_, self(), true, loop_.reactor());
    read_parked_ = true;
    parked_at_ = loop_.sweeps();
    if (!read_watched_) {
      read_watched_ = true;
      loop_.watch_read(self());
    }
    return;
  }
  if (how == ReadArm::again) {
    asio::post(loop_.context(), [s = self()] { s->on_readable({}); });
    return;
  }
  if (how == ReadArm::now) {
    on_readable({});
    return;
  }
  read_wait_.start(socket_, self(), how == ReadArm::dry, loop_.reactor());
}

TcpConnection::Hangup TcpConnection::poll_hangup(int fd, short also) {
  // The peer's FIN (POLLRDHUP), an RST or pending error (POLLHUP, POLLERR), plus what the caller
  // adds to `also`. poll() takes nothing from the socket (a peek would clear a pending error).
  pollfd p{fd, static_cast<short>(POLLRDHUP | also), 0};
  const int r = ::poll(&p, 1, 0);
  if (r < 0) return errno == EINTR ? Hangup::interrupted : Hangup::failed;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | also)) != 0 ? Hangup::yes : Hangup::no;
}

bool TcpConnection::peer_gone_while_paused(TimePoint now) {
  // Paused for its worker's backlog, the connection reads nothing, so it would not see its peer
  // hang up while that worker is stuck (nor would the heartbeat blame the silence on the peer).
  // So look, without reading: a peer gone for close_timeout is given up, what it sent unread.
  // (Its own clock, not the close's deadline: should the worker drain first, the connection
  // reads the EOF and closes as usual, with a close_timeout of its own.)
  const int fd = sock().native_handle(); // (under TLS too: the TCP socket)
  if (poll_hangup(fd, 0) != Hangup::yes) return true;
  TimePoint& gone = closing().peer_gone_at;
  if (gone == TimePoint{}) gone = now;
  if (now - gone < opts_.close_timeout) return true;
  int unread = 0;
  if (::ioctl(fd, FIONREAD, &unread) != 0) unread = 0;
  report_error(make_error_code(errc::close_timeout),
               fmt::format("the peer closed its side while reading was paused for its worker's "
                           "backlog, which did not drain within the close timeout: closing, {} "
                           "bytes it sent unread",
                           unread),
               true);
  do_close(CloseMode::abort, make_error_code(errc::closed_by_peer));
  return false;
}

void TcpConnection::resume_after_backlog() {
  paused_for_backlog_ = false;
  // Read in this call, not through a posted wait: the loop resumes its waiting connections in
  // order while there is room, which it can only tell once each has read. (Deferred reads would
  // all find the backlog full again, and go to the back, behind the connections served just
  // before, whose peers answer first: those then took all the room, measured.)
  resume_reading(ReadArm::now);
}

void TcpConnection::resume_reading(ReadArm how) {
  if (state_ != State::open || read_blocked()) return;
  if (rbeg_ != rend_) {
    ReadBatch batch(*this);
    const std::size_t used = parse(rbuf_.get() + rbeg_, rend_ - rbeg_);
    if (state_ != State::open) return;
    consume(used);
  }
  begin_read(how);
}

TcpConnection::ReadBatch::ReadBatch(TcpConnection& c) noexcept : c_(c), outer_(!c.in_read_batch_) {
  c_.in_read_batch_ = true;
}

void TcpConnection::ReadBatch::flush() { send(false); }

void TcpConnection::ReadBatch::send(bool at_end) {
  if (!outer_) return;
  // The workers start on this round's messages while the loop reads on.
  if (c_.core_->workers) c_.submit_batch();
  if (!c_.flush_deferred_) return;
  c_.flush_deferred_ = false;
  // The end of a read on a loop that serves other connections too (plain TCP, handlers on the
  // loop, no close asked for): the replies go out with those of the round's other reads (see
  // Loop::defer_flush). Otherwise directly (no asynchronous write while the kernel takes it all).
  if (at_end && c_.defers_flush())
    c_.loop_.defer_flush(c_.self());
  else
    c_.flush();
}

void TcpConnection::ReadBatch::finish() {
  if (!outer_) return;
  c_.in_read_batch_ = false;
  if (c_.core_->workers) c_.submit_batch();
  send(true); // also right when the batch closed the connection: flush() checks the state
  outer_ = false;
}

bool TcpConnection::defers_flush() const noexcept {
  return !sole_reader_ && !core_->workers && !tls_ && state_ == State::open &&
         !close_requested_.load(std::memory_order_relaxed);
}

void TcpConnection::consume(std::size_t n) {
  rbeg_ += n;
  if (rbeg_ == rend_) { // an idle connection holds no read buffer
    rbuf_.reset();
    rcap_ = rbeg_ = rend_ = 0;
  }
}

void TcpConnection::make_read_room() {
  if (rcap_ - rend_ >= min_read_room) return;
  const std::size_t len = rend_ - rbeg_;
  if (rbeg_ > 0 && rcap_ - len >= min_read_room) {
    std::memmove(rbuf_.get(), rbuf_.get() + rbeg_, len);
  } else {
    // Grows with what the peer actually sent, never with what a length field claims.
    const std::size_t cap = std::max(rcap_ * 2, len + min_read_room);
    auto fresh = std::make_unique_for_overwrite<char[]>(cap);
    if (len) std::memcpy(fresh.get(), rbuf_.get() + rbeg_, len);
    rbuf_ = std::move(fresh);
    rcap_ = cap;
  }
  rbeg_ = 0;
  rend_ = len;
}

void TcpConnection::keep_leftover(const char* data, std::size_t n) {
  // Only called when rbuf_ is empty: the rest of a frame (or frames held back by backpressure).
  rcap_ = n + min_read_room;
  rbuf_ = std::make_unique_for_overwrite<char[]>(rcap_);
  std::memcpy(rbuf_.get(), data, n);
  rbeg_ = 0;
  rend_ = n;
}

bool TcpConnection::sweep_read() {
  if (state_ != State::open || !read_parked_) {
    read_watched_ = false;
    return false;
  }
  if (loop_.sweeps() - parked_at_ < read_check_sweeps) return true;
  // What arrived after the parked read raised an edge of its own, which the wait gets (plain
  // bytes, POLLIN alone, are left to it: seen here, the loop is busy enough not to have collected
  // it yet, and reading them ahead of it only fills memory sooner, measured). No edge announces
  // what sat behind the bytes read: the peer's FIN (POLLRDHUP) or RST and pending errors
  // (POLLHUP, POLLERR), or bytes behind an urgent mark (POLLPRI). For those the wait is
  // completed, for a read to find them. poll() takes nothing (a peek would clear a pending error).
  const Hangup h = poll_hangup(socket_.native_handle(), POLLPRI);
  if (h == Hangup::interrupted) return true; // next sweep
  read_parked_ = false;
  read_watched_ = false;
  if (h != Hangup::no) read_wait_.kick(socket_, loop_.reactor());
  return false;
}

void TcpConnection::on_readable(const boost::system::error_code& wait_ec) {
  loop_.run_requested_flushes(); // the workers' replies go out before the loop reads on
  reading_ = false;
  read_parked_ = false; // whatever woke it, this is the read the sweep would make
  if (state_ != State::open) return;
  if (wait_ec) {
    if (wait_ec != asio::error::operation_aborted) fail(wait_ec, "read: " + wait_ec.message());
    return;
  }
  sole_reader_ = loop_.note_reader(this);
  ReadBatch batch(*this);
  // Unless a read finds the socket empty: read again after the loop's other work.
  ReadArm next = ReadArm::again;
  // A few reads per wake-up at most, so one busy peer cannot starve the loop's others.
  for (int round = 0; round < 4 && !read_blocked(); ++round) {
    boost::system::error_code ec;
    std::size_t n = 0;
    std::size_t room = 0;
    if (rbeg_ == rend_) {
      auto& scratch = loop_.scratch();
      room = scratch.size();
      n = socket_.read_some(asio::buffer(scratch.data(), room), ec);
      if (!ec) {
        bump(loop_.counters().bytes_in, n);
        const std::size_t used = parse(scratch.data(), n);
        if (state_ != State::open) return;
        if (used < n) keep_leftover(scratch.data() + used, n - used);
      }
    } else {
      make_read_room();
      room = rcap_ - rend_;
      n = socket_.read_some(asio::buffer(rbuf_.get() + rend_, room), ec);
      if (!ec) {
        bump(loop_.counters().bytes_in, n);
        rend_ += n;
        const std::size_t used = parse(rbuf_.get() + rbeg_, rend_ - rbeg_);
        if (state_ != State::open) return;
        consume(used);
      }
    }
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      next = ReadArm::dry;
      break;
    }
    if (ec == asio::error::eof) {
      on_peer_eof();
      return;
    }
    if (ec) {
      fail(ec, "read: " + ec.message());
      return;
    }
    // A short read: the kernel had no more bytes, but maybe the peer's FIN or RST behind them.
    // Unless the loop seems to serve this connection alone, look again after the loop's other
    // work (raw Asio's echo gets its next read the same way: with many peers busy, one has
    // often sent again by then; otherwise that read finds would_block, one system call, as the
    // epoll_ctl of a re-armed wait was); alone, at once (usually would_block, and the wait is
    // then queued directly). When the read's replies are still to go out, neither: see
    // after_tasks.
    if (n < room && !sole_reader_) {
      // Messages went to the workers, or their replies wait for the end of the loop's round: the
      // peer's next ones likely follow those replies, and reading before they go out finds
      // nothing (a system call per batch, measured).
      if (ReadWait<TcpConnection>::can_kick &&
          (pending_.load(std::memory_order_relaxed) > 0 || (flush_deferred_ && defers_flush())))
        next = ReadArm::after_tasks;
      break;
    }
    batch.flush(); // send what this round answered first, so the peer can go on
  }
  end_read(batch, next);
}

void TcpConnection::on_tls_read(const boost::system::error_code& ec, std::size_t n) {
  reading_ = false;
  if (state_ != State::open) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    // A peer that closes without close_notify (stream_truncated) has still closed.
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      on_peer_eof();
    } else {
      fail(ec, "TLS read: " + describe_tls_error(ec));
    }
    return;
  }
  bump(loop_.counters().bytes_in, n);
  loop_.note_reader(this); // TLS replies never go out in pieces, but the loop is not alone
  ReadBatch batch(*this);
  if (rbeg_ == rend_) {
    const std::size_t used = parse(tls_->buf.get(), n);
    if (state_ != State::open) return;
    if (used < n) keep_leftover(tls_->buf.get() + used, n - used);
  } else {
    make_read_room();
    if (rcap_ - rend_ < n) { // room for all n bytes
      const std::size_t len = rend_ - rbeg_;
      auto bigger = std::make_unique_for_overwrite<char[]>(len + n + min_read_room);
      std::memcpy(bigger.get(), rbuf_.get() + rbeg_, len);
      rbuf_ = std::move(bigger);
      rcap_ = len + n + min_read_room;
      rbeg_ = 0;
      rend_ = len;
    }
    std::memcpy(rbuf_.get() + rend_, tls_->buf.get(), n);
    rend_ += n;
    const std::size_t used = parse(rbuf_.get() + rbeg_, rend_ - rbeg_);
    if (state_ != State::open) return;
    consume(used);
  }
  end_read(batch, ReadArm::wait);
}

void TcpConnection::end_read(ReadBatch& batch, ReadArm next) {
  if (got_frame_) {
    got_frame_ = false;
    last_in_ = Clock::now();
  }
  batch.finish(); // the replies go out before the next read is armed
  begin_read(next);
}

void TcpConnection::on_peer_eof() {
  if (rbeg_ != rend_) {
    bump(loop_.counters().protocol_errors);
    fail(make_error_code(errc::truncated_frame),
         fmt::format("peer closed the connection in the middle of a frame ({} bytes: {})",
                     rend_ - rbeg_, hex_prefix(rbuf_.get() + rbeg_, rend_ - rbeg_)));
    return;
  }
  logger()->debug("{}: peer closed its side", name());
  peer_eof_ = true;
  // Let the handlers of what the peer sent finish (their replies are sent), then close.
  close_after_tasks_.store(true);
  close_requested_.store(true);
  if (pending_.load() == 0) {
    do_close(CloseMode::graceful, make_error_code(errc::closed_by_peer));
    return;
  }
  // ... but not forever: a blocked handler must not keep the connection and its descriptor. No
  // heartbeat would catch it (reading has stopped), so the wait gets close_timeout of its own.
  asio::steady_timer& timer = closing().timer;
  timer.expires_after(opts_.close_timeout);
  timer.async_wait([s = self()](const boost::system::error_code& ec) {
    if (ec || s->state_ != State::open) return;
    s->report_error(make_error_code(errc::close_timeout),
                    fmt::format("the peer closed its side; {} handler task(s) still unfinished "
                                "after the close timeout: closing without their replies",
                                s->pending_.load()),
                    true);
    s->do_close(CloseMode::graceful, make_error_code(errc::closed_by_peer));
  });
}

std::size_t TcpConnection::parse(const char* data, std::size_t n) {
  const Codec& c = *core_->codec;
  HandlerLaps laps(loop_.counters(), core_->handler_timing);
  std::size_t off = 0;
  while (off < n && !read_blocked()) {
    Frame f;
    const DecodeResult r = c.decode(ByteView(data + off, n - off), f);
    if (r.status == DecodeResult::need_more) break;
    if (r.status == DecodeResult::invalid) {
      bump(loop_.counters().protocol_errors);
      fail(r.error, fmt::format("protocol error: {} (frame starts {})", r.error.message(),
                                hex_prefix(data + off, n - off)));
      return off;
    }
    off += r.consumed;
    if (!dispatch_frame(f, laps) || state_ != State::open) return off;
  }
  return off;
}

bool TcpConnection::dispatch_frame(const Frame& f, HandlerLaps& laps) {
  got_frame_ = true; // any complete frame, unknown types included, counts as life
  bump(loop_.counters().frames_in);
  const Dispatch& d = *core_->dispatch;
  const HandlerEntry* e = d.find(f.type);
  if (!e) {
    if (!d.on_message || !d.runs_on_loop(Run::by_default)) laps.skip(); // no handler runs here
    if (f.type == heartbeat_type) {
      // Built-in heartbeat: checked, answered if so configured, never shown to user handlers.
      if (!Heartbeat::decode(f.payload)) {
        bump(loop_.counters().protocol_errors);
        fail(make_error_code(errc::bad_heartbeat),
             fmt::format("heartbeat payload of {} bytes, need 8", f.payload.size()));
        return false;
      }
      if (core_->heartbeat_reply) write(Heartbeat{now_ns()});
      return true;
    }
    if (!d.on_message) {
      // Reported for the first few and then every 1024th, so a peer streaming unknown frames
      // cannot flood the error callbacks, the log or the worker queue.
      const std::uint64_t n = ++unknown_frames_;
      if (n <= 8 || n % 1024 == 0) {
        report_error(make_error_code(errc::unknown_message_type),
                     fmt::format("no handler for message type {}; {}-byte frame discarded ({} "
                                 "unknown frame(s) on this connection so far)",
                                 f.type, f.payload.size(), n),
                     true);
      }
      return true;
    }
    if (d.runs_on_loop(Run::by_default)) {
      try {
        HandlerLaps::Lap lap(laps, true);
        d.on_message(*this, f);
      } catch (const std::exception& ex) {
        handler_threw(ex.what());
        return false;
      } catch (...) {
        handler_threw("non-standard exception");
        return false;
      }
    } else {
      submit_task(
          [type = f.type, copy = f.payload.str()](Connection& conn) {
            static_cast<TcpConnection&>(conn).core_->dispatch->on_message(
                conn, Frame{type, ByteView(copy)});
          },
          f.payload.size());
    }
    return true;
  }

  const bool now = d.runs_on_loop(e->run);
  Task later;
  bool decoded = false;
  try {
    HandlerLaps::Lap lap(laps, now); // not timed here when a worker handles it (and times it)
    decoded = e->dispatch(*this, f.payload, now, later);
  } catch (const std::exception& ex) {
    handler_threw(ex.what());
    return false;
  } catch (...) {
    handler_threw("non-standard exception");
    return false;
  }
  if (!decoded) {
    bump(loop_.counters().protocol_errors);
    fail(make_error_code(errc::decode_failed),
         fmt::format("message type {} failed to decode ({} bytes: {})", f.type, f.payload.size(),
                     hex_prefix(f.payload.data(), f.payload.size())));
    return false;
  }
  if (!now) submit_task(std::move(later), f.payload.size());
  return true;
}

void TcpConnection::submit_task(Task task, std::size_t bytes) {
  // Only the read path submits messages, on the loop, inside a read batch: its end hands them
  // over together. Room for a few first (one allocation for a usual batch), counted after.
  assert(loop_.in_this_thread());
  if (batch_tasks_.capacity() == 0) batch_tasks_.reserve(16);
  batch_tasks_.push_back(std::move(task));
  batch_bytes_ += bytes + backlog_per_message;
  // A worker holds a reply back only while a later task of the connection waits (see
  // t_task_conn), so the loop watches the connection from its second pending task on (with one
  // message in flight at a time, no reply is held; the sweep may run for parked reads).
  if (pending_.fetch_add(1) >= 1 && !reply_watched_) {
    reply_watched_ = true;
    loop_.watch_replies(self());
  }
  if (!in_read_batch_) submit_batch();
}

void TcpConnection::submit_batch() {
  if (batch_tasks_.empty()) return;
  // Read while its loop served this connection alone (see t_task_conn): then the worker sends
  // the tasks' replies itself, or holds them back for the loop's reply sweep to bound.
  const bool sole = sole_reader_;
  const std::size_t n = batch_tasks_.size();
  // One pool task per batch, not one per message: one allocation, one turn of the pool's lock
  // and one reference to the connection for all of them. Its bytes count in the loop's worker
  // backlog until the handlers have run, or until the task is dropped unrun (a stopped pool).
  // 48 bytes, so that the pool's task holds it without an allocation of its own.
  struct Batch {
    std::shared_ptr<TcpConnection> conn;
    std::vector<Task> tasks;
    std::uint64_t owed_and_sole; // backlog bytes not yet given back << 1 | sole
    Batch(std::shared_ptr<TcpConnection> c, std::vector<Task> t, std::size_t bytes, bool sole)
        : conn(std::move(c)), tasks(std::move(t)), owed_and_sole(bytes << 1 | (sole ? 1 : 0)) {
      conn->loop_.backlog_add(conn->worker_index(), bytes);
    }
    Batch(Batch&& o) noexcept
        : conn(std::move(o.conn)), tasks(std::move(o.tasks)),
          owed_and_sole(std::exchange(o.owed_and_sole, 0)) {}
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    Batch& operator=(Batch&&) = delete;
    ~Batch() { give_back(); }
    void operator()() {
      conn->run_tasks(tasks, (owed_and_sole & 1) != 0);
      give_back();
    }
    void give_back() noexcept {
      if (conn && (owed_and_sole >> 1) != 0)
        conn->loop_.backlog_done(conn->worker_index(), owed_and_sole >> 1);
      owed_and_sole &= 1;
    }
  };
  static_assert(sizeof(Batch) <= 48 && std::is_nothrow_move_constructible_v<Batch>);
  Batch run(self(), std::move(batch_tasks_), std::exchange(batch_bytes_, 0), sole);
  batch_tasks_ = std::vector<Task>(); // (a moved-from vector is empty; this says so)
  auto ec = loop_.submit_to(*core_->workers, id(), std::move(run));
  if (ec) {
    pending_.fetch_sub(n);
    logger()->error("{}: worker pool refused {} message(s): {}", name(), n, ec.message());
  }
}

void TcpConnection::run_tasks(std::vector<Task>& tasks, bool sole) {
  ThreadCounters& counters = core_->worker_counters[core_->workers->worker_for(id())];
  struct OwnTask { // t_task_conn for the tasks' duration, whatever they throw
    explicit OwnTask(TcpConnection* c) noexcept { t_task_conn = c; }
    ~OwnTask() { t_task_conn = nullptr; }
    OwnTask(const OwnTask&) = delete;
    OwnTask& operator=(const OwnTask&) = delete;
  } own(sole ? this : nullptr);
  // Each handler is timed from the end of the one before (one clock read per message, plus one
  // per batch; what happens between two handlers, freeing the first one's message and its
  // bookkeeping, counts towards the second).
  HandlerLaps laps(counters, core_->handler_timing);
  for (Task& t : tasks) {
    struct Done { // task_done() whatever happens
      TcpConnection* c;
      ~Done() { c->task_done(); }
    } done{this};
    try {
      HandlerLaps::Lap lap(laps, true);
      t(*this);
    } catch (const std::exception& ex) {
      handler_threw_noexcept(ex.what());
    } catch (...) {
      handler_threw_noexcept("non-standard exception");
    }
    t = nullptr;
  }
}

void TcpConnection::handler_threw_noexcept(const char* what) noexcept {
  try {
    handler_threw(what);
  } catch (...) { // out of memory while reporting it: the close still goes ahead if it can
    try {
      close();
    } catch (...) {
    }
  }
}

void TcpConnection::handler_threw(const std::string& what) {
  // Runs where the handler ran; the error is reported there, the close goes through the loop.
  report_error(make_error_code(errc::handler_exception), fmt::format("handler threw: {}", what),
               true);
  set_close_reason(make_error_code(errc::handler_exception));
  close();
}

// ---------------------------------------------------------------------------------------------
// Write path

std::error_code TcpConnection::write_encoded(ByteView frames) {
  const bool on_loop = loop_.in_this_thread(); // asked once: a thread-local lookup
  const bool own_task = !on_loop && t_task_conn == this;
  bool post = false;
  bool full = false;
  bool piece = false; // a reply_piece is queued
  {
    std::lock_guard lock(wmutex_);
    if (!accepting_) return errc::connection_closed;
    if (queued_.load(std::memory_order_relaxed) >= opts_.send_high_water) {
      full = true;
    } else {
      // An empty queue starts with room for what the last flush sent (in KiB, at most 128), so a
      // connection answering a batch of messages grows its queue once, not once per doubling.
      // The buffer comes from the loop's spares, also when a worker writes.
      if (wpending_.empty()) {
        const auto want = std::max<std::size_t>(frames.size(), std::size_t{last_flush_kib_} << 10);
        if (wpending_.capacity() < want) loop_.take_write_buffer(wpending_, want);
      }
      wpending_.insert(wpending_.end(), frames.begin(), frames.end());
      ++wpending_frames_;
      queued_.fetch_add(frames.size(), std::memory_order_relaxed);
      piece = wpending_.size() >= reply_piece;
      // Nothing posted and no write in flight: this connection's own worker task sends itself
      // (under wmutex_, so no loop write and no close comes between), or holds the reply back
      // for a later task of the connection (see t_task_conn). Not what would reach
      // pause_reading_at: only the loop's write completion resumes reading paused for it.
      if (own_task && worker_may_send_locked()) {
        if (pending_.load(std::memory_order_relaxed) <= 1) {
          post = !send_from_worker_locked();
        } else if (wpending_.size() <= opts_.send_high_water / 2) {
          replies_held_.store(true, std::memory_order_relaxed);
        } else { // held bytes must not make writes fail with send_queue_full
          post = claim_flush_locked();
        }
      } else {
        post = claim_flush_locked();
      }
    }
  }
  if (full) {
    on_send_queue_full();
    return errc::send_queue_full;
  }
  if (post) {
    // Written by a handler that runs in this connection's read batch: the batch flushes when it
    // ends (one send for all its replies, and no round through the loop's queue first).
    if (on_loop && in_read_batch_)
      flush_deferred_ = true;
    else if (on_loop)
      asio::post(loop_.context(), [s = self()] { s->flush(); });
    else
      loop_.request_flush(self());
  }
  if (piece && on_loop && in_read_batch_ && sole_reader_) send_piece();
  return {};
}

bool TcpConnection::worker_may_send_locked() const noexcept {
  return !flush_active_ && !tls_ && wpending_.size() <= worker_send_max &&
         wpending_.size() < opts_.pause_reading_at;
}

bool TcpConnection::claim_flush_locked() noexcept {
  if (wpending_.empty() || flush_active_) return false;
  flush_active_ = true;
  return true;
}

bool TcpConnection::send_from_worker_locked() {
  replies_held_.store(false, std::memory_order_relaxed); // sent now, or the rest via the loop
  const std::size_t size = wpending_.size();
  const ssize_t r =
      ::send(socket_.native_handle(), wpending_.data(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
  // An error other than a full socket buffer is left to the loop: its write reports it as usual.
  const std::size_t n = r > 0 ? static_cast<std::size_t>(r) : 0;
  ThreadCounters& counters = core_->worker_counters[core_->workers->worker_for(id())];
  if (n > 0) worker_sent_.store(true, std::memory_order_relaxed);
  if (n < size) { // the rest goes through the loop, as any queued output
    if (n > 0) {
      bump(counters.bytes_out, n);
      queued_.fetch_sub(n, std::memory_order_relaxed);
    }
    wpending_.erase(wpending_.begin(), wpending_.begin() + static_cast<std::ptrdiff_t>(n));
    flush_active_ = true;
    return false;
  }
  last_flush_kib_ = reserve_kib(size);
  // No buffer while idle; the next reply takes a spare.
  sent_whole(counters, wpending_, std::exchange(wpending_frames_, 0));
  return true;
}

void TcpConnection::sent_whole(ThreadCounters& counters, std::vector<char>& buffer,
                               std::uint32_t frames) {
  const std::size_t n = buffer.size();
  bump(counters.bytes_out, n);
  bump(counters.frames_out, frames);
  queued_.fetch_sub(n, std::memory_order_relaxed);
  if (queued_.load(std::memory_order_relaxed) <= opts_.resume_reading_at)
    full_reported_.store(false);
  free_if_over_keep(buffer);
  loop_.give_write_buffer(buffer); // (none left if it was freed)
}

void TcpConnection::on_send_queue_full() {
  // Reported once per episode (until the queue drains), not once per refused write.
  if (!full_reported_.exchange(true)) {
    report_error(make_error_code(errc::send_queue_full),
                 fmt::format("send queue full ({} bytes queued, high-water mark {}); the peer is "
                             "not reading fast enough",
                             queued_.load(), opts_.send_high_water),
                 false);
  }
  if (opts_.close_when_send_queue_full) {
    set_close_reason(make_error_code(errc::send_queue_full));
    abort();
  }
}

void TcpConnection::flush() {
  if (writing_ || !handshake_done_) return; // after the handshake, on_handshake flushes
  // Direct non-blocking sends while the kernel takes everything (a few rounds at most: writers
  // on other threads may keep the queue filling), then an asynchronous write for the rest.
  for (int round = 0;; ++round) {
    {
      std::lock_guard lock(wmutex_);
      if (wpending_.empty() || state_ == State::closed) {
        flush_active_ = false;
        // The queue may hold the capacity of an earlier send (the pair is swapped, not freed,
        // while a connection is busy): an idle connection gives it back to the loop.
        if (wpending_.empty()) loop_.give_write_buffer(wpending_);
        return;
      }
      take_queue_for_sending();
    }
    if (!may_send_directly() || round == 4) {
      start_write(0);
      return;
    }
    if (!send_taken()) return;
  }
}

void TcpConnection::take_queue_for_sending() {
  replies_held_.store(false, std::memory_order_relaxed);
  wsending_.swap(wpending_);
  wsending_frames_ = std::exchange(wpending_frames_, 0);
  last_flush_kib_ = reserve_kib(wsending_.size());
  writing_ = true;
  last_out_ = Clock::now();
}

void TcpConnection::start_write(std::size_t sent) {
  auto done = [s = self(), sent](const boost::system::error_code& ec, std::size_t n) {
    s->on_written(ec, sent + n);
  };
  const auto rest = asio::buffer(wsending_) + sent;
  if (tls_)
    asio::async_write(tls_->stream, rest, std::move(done));
  else
    asio::async_write(socket_, rest, std::move(done));
}

void TcpConnection::send_piece() {
  // Only plain TCP with no write in flight; a close or a paused read keep the usual path. What is
  // queued after this goes out with the next piece or when the batch ends (its flush was
  // deferred or posted by the write that set flush_active_, which stays set until that flush
  // finds the queue empty).
  if (writing_ || !handshake_done_ || !may_send_directly()) return;
  {
    std::lock_guard lock(wmutex_);
    if (wpending_.empty()) return;
    take_queue_for_sending();
  }
  send_taken();
}

bool TcpConnection::send_taken() {
  // The socket is non-blocking: the kernel takes what fits and the rest waits for writability.
  boost::system::error_code ec;
  const std::size_t n = socket_.write_some(asio::buffer(wsending_), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  if (ec) { // reported by on_written, on the loop, as an asynchronous write's error is
    asio::post(loop_.context(), [s = self(), ec, n] { s->on_written(ec, n); });
    return false;
  }
  if (n < wsending_.size()) {
    start_write(n);
    return false;
  }
  writing_ = false;
  sent_whole(loop_.counters(), wsending_, wsending_frames_); // the next reply takes a spare
  return true;
}

void TcpConnection::on_written(const boost::system::error_code& ec, std::size_t n) {
  writing_ = false;
  bump(loop_.counters().bytes_out, n);
  if (!ec) bump(loop_.counters().frames_out, wsending_frames_);
  queued_.fetch_sub(wsending_.size(), std::memory_order_relaxed);
  wsending_.clear();
  free_if_over_keep(wsending_);
  if (state_ == State::closed) return;
  if (ec) {
    fail(ec, "write: " + ec.message());
    return;
  }
  if (queued_.load(std::memory_order_relaxed) <= opts_.resume_reading_at) {
    full_reported_.store(false);
    if (paused_for_send_) {
      paused_for_send_ = false;
      resume_reading();
    }
  }
  flush();
  // Nothing more to send: an idle connection holds no write buffer either (it goes back to the
  // loop for the next writer; a connection whose writes complete asynchronously keeps recycling
  // its pair).
  if (!writing_) loop_.give_write_buffer(wsending_);
  if (state_ == State::closing && !writing_) finish_close();
}

// ---------------------------------------------------------------------------------------------
// Close

void TcpConnection::close() { request_close(CloseMode::graceful); }

void TcpConnection::abort() { request_close(CloseMode::abort); }

void TcpConnection::request_close(CloseMode mode) {
  close_requested_.store(true);
  {
    std::lock_guard lock(wmutex_);
    accepting_ = false; // writes after close() are refused at once, from any thread
  }
  open_.store(false, std::memory_order_release);
  asio::post(loop_.context(),
             [s = self(), mode] { s->do_close(mode, make_error_code(errc::closed_locally)); });
}

void TcpConnection::do_close(CloseMode mode, std::error_code reason) {
  if (state_ == State::closed) return;
  if (state_ == State::closing && mode == CloseMode::graceful) return;
  if (mode == CloseMode::abort) abort_close_ = true;
  set_close_reason(reason);
  open_.store(false, std::memory_order_release);
  close_requested_.store(true);
  // Output to wait for: a write in flight or bytes queued. A flush that is only scheduled with
  // nothing queued is not (a direct send, by the loop or a worker, can leave one behind), and
  // waiting on it would wait for an on_written that never comes.
  bool has_output = writing_;
  bool start_flush = false;
  {
    std::lock_guard lock(wmutex_);
    accepting_ = false;
    has_output = has_output || !wpending_.empty();
    // Bytes queued with no flush scheduled (replies a worker held back, see t_task_conn): a
    // graceful close sends them itself.
    if (mode == CloseMode::graceful && handshake_done_) start_flush = claim_flush_locked();
  }
  // close_timeout bounds the whole graceful close: the sending, then the TLS close_notify exchange
  // and the linger. A close with none of them (plain TCP whose peer closed first with nothing
  // queued, or a TLS handshake that never finished) allocates nothing for it.
  if (mode == CloseMode::graceful && handshake_done_ && (has_output || tls_ || !peer_eof_))
    close_clock(Clock::now());
  if (mode == CloseMode::graceful && has_output && handshake_done_) {
    state_ = State::closing;
    Closing& c = *closing_;
    c.timer.expires_at(c.deadline);
    c.timer.async_wait([s = self()](const boost::system::error_code& ec) {
      // Past the sending (a handler already queued when the last write finished, which a
      // cancel cannot stop): the close_notify exchange or the linger keep the deadline.
      if (ec || s->state_ != State::closing || s->tls_shutdown_started_ || s->lingering_) return;
      s->report_error(make_error_code(errc::close_timeout),
                      fmt::format("close: {} queued bytes not sent within the close timeout",
                                  s->queued_.load()),
                      true);
      s->abort_close_ = true; // a write may be half done: no TLS close_notify after it
      s->finish_close();
    });
    if (start_flush) flush();
    return;
  }
  finish_close();
}

TcpConnection::Closing& TcpConnection::closing() {
  if (!closing_) closing_ = std::make_unique<Closing>(loop_.context());
  return *closing_;
}

TcpConnection::Closing& TcpConnection::close_clock(TimePoint now) {
  Closing& c = closing();
  if (c.deadline == TimePoint{}) c.deadline = now + opts_.close_timeout;
  return c;
}

void TcpConnection::finish_close() {
  if (state_ == State::closed) return;
  if (tls_ && handshake_done_ && !abort_close_ && !writing_ && !tls_shutdown_started_) {
    // Send close_notify, but never wait for the peer's answer longer than shutdown_timeout.
    tls_shutdown_started_ = true;
    state_ = State::closing;
    if (closing_) closing_->timer.cancel();
    boost::system::error_code ignored;
    sock().cancel(ignored); // the pending read: the stream allows one read and one write at once
    std::weak_ptr<Connection> weak = weak_from_this();
    // Either end leads to the lingering close below (at the TCP level), never straight to the
    // socket's close: close_notify does not tell that the peer has read what came before it.
    // The wait ends by the close's deadline at the latest (close_timeout bounds the whole close).
    TimePoint until = Clock::now() + core_->tls->options.shutdown_timeout;
    if (closing_ && closing_->deadline != TimePoint{}) until = std::min(until, closing_->deadline);
    loop_.timers().add(until, Duration::zero(), [weak](TimePoint) {
      auto s = std::static_pointer_cast<TcpConnection>(weak.lock());
      if (s && !s->lingering_) s->finish_close();
    });
    tls_->stream.async_shutdown([s = self()](const boost::system::error_code&) {
      if (!s->lingering_) s->finish_close();
    });
    return;
  }
  if ((!tls_ || tls_shutdown_started_) && !abort_close_ && !peer_eof_ && !lingering_ && !writing_) {
    if (tls_) { // a close_notify exchange that timed out: the stream is done with the socket
      boost::system::error_code ignored;
      sock().cancel(ignored);
    }
    start_linger();
    return;
  }
  state_ = State::closed;
  open_.store(false, std::memory_order_release);
  close_requested_.store(true);
  {
    std::lock_guard lock(wmutex_);
    accepting_ = false;
    queued_.fetch_sub(wpending_.size(), std::memory_order_relaxed);
    loop_.give_write_buffer(wpending_);
    wpending_frames_ = 0;
  }
  if (closing_) closing_->timer.cancel();
  if (member_pos_ != static_cast<std::size_t>(-1)) {
    if (TcpConnection* moved = loop_.remove_member(member_pos_)) moved->set_member_pos(member_pos_);
    member_pos_ = static_cast<std::size_t>(-1);
  }
  cancel_all_timers();
  // Leave the registry and count the close before the peer can see it (so a peer that saw the
  // close finds it in metrics()), in this order: metrics() reads the counters before the
  // registry's size, so a snapshot that shows this close never still counts it as current.
  core_->connections.erase(id());
  core_->connection_left(); // a newcomer may take its place under max_connections from here
  bump_release(loop_.counters().connections_closed);
  boost::system::error_code ignored;
  sock().shutdown(asio::socket_base::shutdown_both, ignored);
  sock().close(ignored);
  rbuf_.reset(); // (tls_->buf stays until the destructor: a completed TLS read may still write it)
  rcap_ = rbeg_ = rend_ = 0;
  logger()->debug("{}: closed ({})", name(), close_reason().message());
  if (started_) { // closed before on_connect answered (e.g. a failed TLS handshake)
    auto started = std::move(started_);
    (*started)(false);
  }
  if (!notify_close_) {
    core_->connection_finished();
    return;
  }
  run_callback(
      Run::by_default,
      [](Connection& c) {
        auto& self = static_cast<TcpConnection&>(c);
        if (const auto& cb = self.core_->dispatch->on_close) {
          try {
            cb(c);
          } catch (const std::exception& e) {
            logger()->error("{}: on_close threw: {}", c.name(), e.what());
          } catch (...) {
            logger()->error("{}: on_close threw", c.name());
          }
        }
        if (self.core_->after_close) self.core_->after_close(c);
        self.core_->connection_finished();
      },
      true);
}

void TcpConnection::start_linger() {
  // Closing a socket that still has unread input (the peer was sending when we closed) makes the
  // kernel send RST instead of FIN and throw away what is still in its send buffer: replies that
  // write() accepted and the last async_write handed over would never reach the peer. So: FIN
  // first, then read and discard until the peer's EOF, until it has been quiet for linger_idle
  // and has acknowledged everything we sent, or until close_timeout, whichever comes first; only
  // then close the socket.
  lingering_ = true;
  state_ = State::closing;
  cancel_all_timers(); // for the application the connection is over: no timer fires from here
  boost::system::error_code ec;
  sock().shutdown(asio::socket_base::shutdown_send, ec);
  if (ec) {
    finish_close();
    return;
  }
  const TimePoint now = Clock::now();
  Closing& c = close_clock(now); // (started by do_close already, unless it came straight here)
  c.last_linger_in = now;
  sock().async_wait(asio::socket_base::wait_read,
                    [s = self()](const boost::system::error_code& e) { s->on_linger_readable(e); });
  c.timer.expires_after(linger_tick_period); // cancels the send phase's wait, if any
  c.timer.async_wait([s = self()](const boost::system::error_code& e) {
    if (!e) s->linger_tick();
  });
}

void TcpConnection::on_linger_readable(const boost::system::error_code& wait_ec) {
  if (state_ == State::closed) return;
  if (wait_ec) {
    finish_close();
    return;
  }
  if (!linger_drain()) return;
  sock().async_wait(asio::socket_base::wait_read,
                    [s = self()](const boost::system::error_code& e) { s->on_linger_readable(e); });
}

bool TcpConnection::linger_drain() {
  auto& scratch = loop_.scratch();
  for (int round = 0; round < 16; ++round) { // bounded: a flooding peer cannot hold the loop
    boost::system::error_code ec;
    const std::size_t n = sock().read_some(asio::buffer(scratch.data(), scratch.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return true;
    if (ec) { // EOF (the peer has everything and closed) or an error: nothing more to wait for
      finish_close();
      return false;
    }
    closing_->last_linger_in = Clock::now();
    if (n < scratch.size()) return true;
  }
  return true;
}

std::size_t TcpConnection::unacknowledged_bytes() {
  int n = 0; // bytes (and the FIN) in the socket's send queue that the peer has not acknowledged
  if (::ioctl(sock().native_handle(), SIOCOUTQ, &n) != 0) return 0; // no socket: nothing to lose
  return static_cast<std::size_t>(std::max(n, 0));
}

void TcpConnection::linger_tick() {
  if (state_ == State::closed) return;
  // Read what is there first: on a busy loop the readiness wake-up may still be queued, and
  // closing with unread input would turn the FIN into a reset that destroys undelivered replies.
  if (!linger_drain()) return;
  const TimePoint now = Clock::now();
  // Silence ends the wait only once the peer has acknowledged everything, FIN included: a closed
  // socket that receives data is reset, and the kernel throws away what it had not sent yet (a
  // peer that stopped reading and sending for a while, then sends again, would lose replies).
  Closing& c = *closing_;
  const bool quiet = now - c.last_linger_in >= linger_idle;
  const bool past_deadline = now >= c.deadline;
  const std::size_t n = quiet || past_deadline ? unacknowledged_bytes() : 0; // one ioctl a tick
  if (quiet && n == 0) {
    finish_close(); // closes the socket, which cancels the pending wait
    return;
  }
  if (past_deadline) {
    if (n > 0)
      report_error(make_error_code(errc::close_timeout),
                   fmt::format("close: {} bytes sent but not acknowledged by the peer within the "
                               "close timeout; closing anyway (the peer may not get them)",
                               n),
                   true);
    finish_close();
    return;
  }
  c.timer.expires_after(linger_tick_period);
  c.timer.async_wait([s = self()](const boost::system::error_code& e) {
    if (!e) s->linger_tick();
  });
}

void TcpConnection::fail(std::error_code ec, const std::string& text) {
  report_error(ec, text, true);
  do_close(CloseMode::abort, ec);
}

} // namespace tao::detail
