#include <tao/client.hpp>

#include <cmath>
#include <future>
#include <mutex>
#include <random>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <tao/log.hpp>

#include "core.hpp"
#include "endpoint.hpp"
#include "metrics_http.hpp"
#include "tcp_connection.hpp"
#include "tls.hpp"

namespace tao {
namespace asio = boost::asio;
namespace detail {

using tcp = asio::ip::tcp;

struct ConnectOp;

class ClientCore : public std::enable_shared_from_this<ClientCore> {
public:
  explicit ClientCore(ClientOptions o) : opts(std::move(o)), rng(std::random_device{}()) {}

  ClientOptions opts;
  std::shared_ptr<const Codec> codec;
  std::shared_ptr<TlsConfig> tls; // built at construction, so set-up errors throw there
  std::shared_ptr<Core> core;
  std::function<void(std::size_t)> on_reconnect;

  mutable std::mutex mutex;
  ConnectionPtr conn;       // guarded by mutex
  bool stopped = false;     // guarded by mutex
  bool deliberate = false;  // guarded by mutex: close()/stop() was called; do not reconnect
  std::size_t attempt = 0;  // guarded by mutex: reconnect attempts since the last stable link
  TimerId retry_timer = 0;  // guarded by mutex
  bool attempting = false;  // guarded by mutex: a reconnect attempt is in flight
  Buffer queued;            // guarded by mutex: writes made while disconnected
  TimePoint connected_at{}; // guarded by mutex
  std::mt19937_64 rng;      // guarded by mutex
  std::weak_ptr<ConnectOp> in_flight;      // guarded by mutex: the attempt in flight, if any
  std::uint16_t metrics_port = 0;          // set at construction
  std::unique_ptr<MetricsHttpServer> http; // last: stopped before what it reads goes

  MetricsSnapshot metrics() const {
    std::shared_ptr<Core> c;
    {
      std::lock_guard lock(mutex);
      c = core;
    }
    return c ? c->metrics() : MetricsSnapshot{};
  }

  void start_core(const std::shared_ptr<Dispatch>& dispatch);
  /// Adopts a new connection: sends what was queued, then makes it current (under the mutex, so
  /// no write can overtake the queue). Returns false (and closes it) after a deliberate close.
  bool adopt(ConnectionPtr c);
  /// Ends an attempt in flight and a pending retry (close or stop). mutex held.
  void cancel_attempts_locked();
  /// Schedules the next attempt after a full-jitter backoff delay. mutex held.
  void schedule_retry_locked();
  void attempt_now();
  void on_connection_closed(Connection& c);
};

// One connect attempt: resolve, connect, start; whichever of it and the deadline ends first wins.
// It holds the Core weakly: a pending attempt must not keep alive the io_context that holds it.
struct ConnectOp : std::enable_shared_from_this<ConnectOp> {
  ConnectOp(const std::shared_ptr<Core>& c, Loop& l)
      : core(c), loop(l), resolver(l.context()), socket(l.context()), timer(l.context()) {}

  std::weak_ptr<Core> core;
  Loop& loop;
  tcp::resolver resolver;
  Socket socket;
  asio::steady_timer timer;
  bool done = false;
  std::function<void(std::error_code, ConnectionPtr)> completion;

  void finish(std::error_code ec, ConnectionPtr c = nullptr) {
    if (done) { // lost the race (e.g. to the deadline): the late connection is not wanted
      if (c) c->close();
      return;
    }
    done = true;
    timer.cancel();
    auto fn = std::move(completion);
    fn(ec, std::move(c));
  }

  /// Ends the attempt now (the client is stopping). Loop thread.
  void cancel() {
    if (done) return;
    resolver.cancel();
    boost::system::error_code ignored;
    socket.close(ignored);
    finish(errc::stopped);
  }

  void run(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
    timer.expires_after(timeout);
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->done) return;
      self->resolver.cancel();
      boost::system::error_code ignored;
      self->socket.close(ignored);
      self->finish(errc::connect_timeout);
    });
    resolver.async_resolve(host, std::to_string(port),
                           [self = shared_from_this()](const boost::system::error_code& ec,
                                                       tcp::resolver::results_type results) {
                             if (self->done) return;
                             if (ec) return self->finish(ec);
                             asio::async_connect(
                                 self->socket, results,
                                 [self](const boost::system::error_code& e, const tcp::endpoint&) {
                                   self->on_connected(e);
                                 });
                           });
  }

  void on_connected(const boost::system::error_code& ec) {
    if (done) return;
    if (ec) return finish(ec);
    auto c = core.lock();
    if (!c || c->stopping.load()) return finish(errc::stopped);
    boost::system::error_code ignored;
    Endpoint here = endpoint_of(socket.local_endpoint(ignored));
    Endpoint peer = endpoint_of(socket.remote_endpoint(ignored));
    c->connection_created();
    auto conn = std::make_shared<TcpConnection>(c, loop, std::move(socket), next_connection_id(),
                                                std::move(here), std::move(peer));
    timer.cancel();
    conn->start([self = shared_from_this(), conn](bool ok) {
      if (ok)
        self->finish({}, conn);
      else
        self->finish(conn->close_reason() ? conn->close_reason() : make_error_code(errc::rejected));
    });
  }
};

} // namespace detail

Client::Client(ClientOptions options)
    : core_(std::make_shared<detail::ClientCore>(std::move(options))) {
  auto& o = core_->opts;
  if (o.io_threads == hardware_threads)
    o.io_threads = std::max(1u, std::thread::hardware_concurrency());
  if (o.workers == hardware_threads) o.workers = std::max(1u, std::thread::hardware_concurrency());
  if (o.io_threads == 0) throw std::invalid_argument("tao::Client: io_threads must be at least 1");
  if (o.read_chunk < 512) throw std::invalid_argument("tao::Client: read_chunk must be >= 512");
  if (o.connection.resume_reading_at > o.connection.pause_reading_at)
    throw std::invalid_argument("tao::Client: resume_reading_at must be <= pause_reading_at");
  core_->codec = o.codec ? o.codec : std::make_shared<const TlvCodec>(o.max_payload);
  if (o.tls) core_->tls = detail::make_tls_config(*o.tls, false, o.host);
  if (!o.log_level.empty()) set_log_level(o.log_level);
  detail::raise_malloc_trim_threshold(o.malloc_trim_threshold);
  if (o.metrics.http) {
    // The endpoint is owned by (and stopped before) the ClientCore it reads.
    core_->http = std::make_unique<detail::MetricsHttpServer>(
        *o.metrics.http, [p = core_.get()] { return to_prometheus(p->metrics()); });
    core_->metrics_port = core_->http->port();
  }
}

Client::~Client() {
  std::shared_ptr<detail::Core> core = core_->core;
  if (core && core->in_own_thread()) {
    // Destroyed from one of its own handlers: this thread cannot join itself, so the stop is
    // finished on a thread of its own, which also drops the last reference to the loops.
    {
      std::lock_guard lock(core_->mutex);
      core_->deliberate = true;
      core_->stopped = true;
      core_->cancel_attempts_locked();
    }
    std::thread([core] { core->shutdown(); }).detach();
    return;
  }
  try {
    stop();
  } catch (const std::exception& e) {
    logger()->error("client: stop in destructor failed: {}", e.what());
  }
}

namespace detail {

void ClientCore::start_core(const std::shared_ptr<Dispatch>& dispatch) {
  const auto& o = opts;
  core = std::make_shared<Core>(CoreConfig{"client", o.io_threads, o.workers, o.read_chunk,
                                           dispatch, codec, o.connection, o.heartbeat, false, tls,
                                           o.metrics.handler_timing});
  std::weak_ptr<ClientCore> weak = weak_from_this();
  core->after_close = [weak](Connection& c) {
    if (auto self = weak.lock()) self->on_connection_closed(c);
  };
  core->start_threads();
}

bool ClientCore::adopt(ConnectionPtr c) {
  std::lock_guard lock(mutex);
  if (deliberate || stopped) {
    c->close();
    return false;
  }
  if (conn && conn != c && conn->is_open()) conn->close(); // never two live connections
  if (!queued.empty()) {
    if (auto ec = c->write_encoded(queued.view()))
      logger()->warn("client: {} queued bytes could not be sent: {}", queued.size(), ec.message());
    queued = Buffer();
  }
  conn = std::move(c);
  connected_at = Clock::now();
  return true;
}

void ClientCore::cancel_attempts_locked() {
  if (retry_timer != 0 && core) core->loops.at(0).timers().cancel(retry_timer);
  retry_timer = 0;
  if (auto o = in_flight.lock()) asio::post(o->loop.context(), [o] { o->cancel(); });
}

void ClientCore::schedule_retry_locked() {
  const ReconnectOptions& r = *opts.reconnect;
  if (deliberate || stopped || attempting || retry_timer != 0) return;
  if (r.max_attempts != 0 && attempt >= r.max_attempts) {
    logger()->error("client: giving up on {}:{} after {} reconnect attempts", opts.host, opts.port,
                    attempt);
    return;
  }
  ++attempt;
  const double cap_ms =
      std::min(static_cast<double>(r.max_delay.count()),
               static_cast<double>(r.initial_delay.count()) *
                   std::pow(std::max(1.0, r.multiplier), static_cast<double>(attempt - 1)));
  const auto delay = std::chrono::microseconds(
      static_cast<long long>(std::uniform_real_distribution<double>(0.0, cap_ms * 1000.0)(rng)));
  logger()->debug("client: reconnect attempt {} to {}:{} in {} ms", attempt, opts.host, opts.port,
                  delay.count() / 1000);
  std::weak_ptr<ClientCore> weak = weak_from_this();
  retry_timer =
      core->loops.at(0).timers().add(Clock::now() + delay, Duration::zero(), [weak](TimePoint) {
        if (auto self = weak.lock()) self->attempt_now();
      });
}

void ClientCore::attempt_now() {
  std::size_t n;
  {
    std::lock_guard lock(mutex);
    retry_timer = 0;
    if (deliberate || stopped) return;
    attempting = true;
    n = attempt;
  }
  if (on_reconnect) {
    try {
      on_reconnect(n);
    } catch (const std::exception& e) {
      logger()->error("client: on_reconnect threw: {}", e.what());
    }
  }
  Loop& loop = core->loops.next();
  auto op = std::make_shared<ConnectOp>(core, loop);
  std::weak_ptr<ClientCore> weak = weak_from_this();
  op->completion = [weak](std::error_code ec, ConnectionPtr c) {
    auto self = weak.lock();
    if (!self) {
      if (c) c->close();
      return;
    }
    if (!ec) {
      {
        std::lock_guard lock(self->mutex);
        self->attempting = false;
      }
      if (self->adopt(std::move(c)))
        logger()->info("client: reconnected to {}:{}", self->opts.host, self->opts.port);
      return;
    }
    logger()->debug("client: reconnect to {}:{} failed: {}", self->opts.host, self->opts.port,
                    ec.message());
    std::lock_guard lock(self->mutex);
    self->attempting = false;
    self->schedule_retry_locked();
  };
  {
    std::lock_guard lock(mutex);
    in_flight = op;
  }
  asio::post(loop.context(), [op, host = opts.host, port = opts.port, t = opts.connect_timeout] {
    op->run(host, port, t);
  });
}

void ClientCore::on_connection_closed(Connection& c) {
  std::lock_guard lock(mutex);
  if (!opts.reconnect || conn.get() != &c) return;
  // A connection that lasted max_delay was a stable one: start the backoff over.
  if (Clock::now() - connected_at >= opts.reconnect->max_delay) attempt = 0;
  schedule_retry_locked();
}

} // namespace detail

void Client::on_reconnect(std::function<void(std::size_t)> fn) {
  core_->on_reconnect = std::move(fn);
}

std::error_code Client::connect() {
  auto& cc = *core_;
  std::shared_ptr<detail::ConnectOp> op;
  {
    std::lock_guard lock(cc.mutex);
    if (cc.stopped) return errc::stopped;
    if (cc.conn && cc.conn->is_open()) return {};
    // Blocking here would wait for the very thread that has to complete the connect.
    if (cc.core && cc.core->in_own_thread())
      return std::make_error_code(std::errc::resource_deadlock_would_occur);
    if (cc.attempting) return std::make_error_code(std::errc::operation_in_progress);
    if (cc.retry_timer != 0) cc.core->loops.at(0).timers().cancel(cc.retry_timer);
    cc.retry_timer = 0;
    cc.deliberate = false;
    if (!cc.core) cc.start_core(dispatch_);
    op = std::make_shared<detail::ConnectOp>(cc.core, cc.core->loops.next());
    cc.in_flight = op;
  }
  detail::Loop& loop = op->loop;
  std::promise<std::error_code> result;
  auto fut = result.get_future();
  // Adopted on the loop, before the connection reads anything: a peer that closes at once is
  // then seen as the current connection's close (and reconnects).
  op->completion = [&result, &cc](std::error_code ec, ConnectionPtr c) {
    if (!ec) cc.adopt(std::move(c));
    result.set_value(ec);
  };
  asio::post(loop.context(), [op, host = cc.opts.host, port = cc.opts.port,
                              t = cc.opts.connect_timeout] { op->run(host, port, t); });
  const std::error_code ec = fut.get();
  if (ec) {
    logger()->debug("client: connect to {}:{} failed: {}", cc.opts.host, cc.opts.port,
                    ec.message());
    if (cc.opts.reconnect) { // keep trying in the background
      std::lock_guard lock(cc.mutex);
      cc.schedule_retry_locked();
    }
    return ec;
  }
  return {};
}

std::error_code Client::write_disconnected(MessageType type,
                                           detail::FunctionRef<void(Buffer&)> payload) {
  auto& cc = *core_;
  std::lock_guard lock(cc.mutex);
  if (cc.conn && cc.conn->is_open()) { // connected meanwhile: the queue is already flushed
    Buffer& b = detail::scratch_buffer();
    b.clear();
    if (auto ec = cc.codec->encode(type, payload, b)) return ec;
    return cc.conn->write_encoded(b.view());
  }
  if (!cc.opts.reconnect || cc.opts.reconnect->queue_bytes == 0 || cc.deliberate || cc.stopped)
    return errc::not_connected;
  if (cc.queued.size() >= cc.opts.reconnect->queue_bytes) return errc::send_queue_full;
  return cc.codec->encode(type, payload, cc.queued);
}

std::error_code Client::write(const RawMessage& msg) {
  ConnectionPtr c = connection();
  if (c && c->is_open()) return c->write(msg);
  return write_disconnected(msg.type, [&msg](Buffer& b) { b.append(msg.payload); });
}

ConnectionPtr Client::connection() const {
  std::lock_guard lock(core_->mutex);
  return core_->conn;
}

bool Client::connected() const {
  auto c = connection();
  return c && c->is_open();
}

bool Client::wait_closed(std::chrono::milliseconds timeout) {
  if (!core_->core) return true;
  // Capped so that "forever" does not overflow the clock.
  const auto capped = std::min<std::chrono::milliseconds>(timeout, std::chrono::hours(24 * 365));
  const auto deadline = std::chrono::steady_clock::now() + capped;
  return core_->core->wait_no_connections(deadline);
}

void Client::close() {
  ConnectionPtr c;
  {
    std::lock_guard lock(core_->mutex);
    core_->deliberate = true;
    core_->cancel_attempts_locked();
    core_->queued = Buffer();
    c = core_->conn;
  }
  if (c) c->close();
}

void Client::stop() {
  std::shared_ptr<detail::Core> core;
  {
    std::lock_guard lock(core_->mutex);
    if (core_->stopped) return;
    core_->deliberate = true;
    core_->cancel_attempts_locked();
    core = core_->core;
    if (core && core->in_own_thread()) {
      // From a handler: close now; stop() from outside (or the destructor) joins later.
      if (core_->conn) core_->conn->close();
      return;
    }
    core_->stopped = true;
  }
  if (core) core->shutdown();
  std::unique_ptr<detail::MetricsHttpServer> http;
  {
    std::lock_guard lock(core_->mutex);
    http = std::move(core_->http);
  }
  http.reset(); // outside the lock: a scrape in progress takes it
}

WorkerPool* Client::workers() noexcept {
  return core_->core ? core_->core->workers.get() : nullptr;
}
const ClientOptions& Client::options() const noexcept { return core_->opts; }

MetricsSnapshot Client::metrics() const { return core_->metrics(); }

std::uint16_t Client::metrics_port() const noexcept { return core_->metrics_port; }

} // namespace tao
