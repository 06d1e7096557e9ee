#include <tao/server.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include <tao/log.hpp>

#include "accept_trouble.hpp"
#include "core.hpp"
#include "endpoint.hpp"
#include "metrics_http.hpp"
#include "tcp_connection.hpp"
#include "tls.hpp"

namespace tao {
namespace asio = boost::asio;
namespace detail {

using tcp = asio::ip::tcp;

class ServerCore : public std::enable_shared_from_this<ServerCore> {
public:
  explicit ServerCore(ServerOptions o) : opts(std::move(o)) {}

  ServerOptions opts;
  std::shared_ptr<Core> core;
  std::unique_ptr<tcp::acceptor> acceptor;     // loop 0 only
  std::unique_ptr<asio::steady_timer> backoff; // loop 0 only
  AcceptTrouble accept_trouble;                // loop 0 only
  LogEvery refusal_log;                        // loop 0 only: max_connections
  std::unique_ptr<asio::signal_set> signals;   // loop 0 only
  bool signals_armed = false;                  // stop_on_signals() ran (caller's thread)
  std::atomic<std::uint64_t> refused{0};
  Endpoint local;

  std::mutex mutex;
  std::condition_variable cv;
  bool started = false;        // guarded by mutex
  bool stop_requested = false; // guarded by mutex
  bool stopped = false;        // guarded by mutex
  std::mutex stop_mutex;       // serialises complete_stop()
  std::atomic<std::uint16_t> metrics_port{0};
  std::unique_ptr<MetricsHttpServer> http; // last: stopped before what it reads goes

  MetricsSnapshot metrics() const {
    MetricsSnapshot m = core ? core->metrics() : MetricsSnapshot{};
    m.connections_refused = refused.load(std::memory_order_relaxed);
    return m;
  }

  Loop& acceptor_loop() { return core->loops.at(0); }

  void accept_next() {
    Loop& target = core->loops.next();
    acceptor->async_accept(
        target.context(),
        [self = shared_from_this(), &target](const boost::system::error_code& ec, Socket socket) {
          self->on_accept(ec, std::move(socket), target);
        });
  }

  void on_accept(const boost::system::error_code& ec, Socket socket, Loop& target) {
    if (!acceptor || !acceptor->is_open() || ec == asio::error::operation_aborted) return;
    if (ec) {
      if (accept_exhausted(ec)) {
        accept_trouble.failed(ec);
        backoff->expires_after(accept_retry_delay);
        backoff->async_wait([self = shared_from_this()](const boost::system::error_code& e) {
          if (!e && self->acceptor && self->acceptor->is_open()) self->accept_next();
        });
      } else {
        logger()->warn("server {}: accept: {}", local.to_string(), ec.message());
        accept_next();
      }
      return;
    }
    accept_trouble.succeeded();
    admit(std::move(socket), target);
    // Take what else is waiting now, so a burst of connects is not served one per loop cycle
    // (each async accept completes behind all the I/O handlers queued on a busy loop).
    for (int more = 0; more < 64 && acceptor->is_open() && !core->stopping.load(); ++more) {
      Loop& next = core->loops.next();
      Socket s(next.context());
      boost::system::error_code e;
      acceptor->accept(s, e);
      if (e) break; // would_block (nothing waiting), or an error the async accept will report
      admit(std::move(s), next);
    }
    accept_next();
  }

  void admit(Socket socket, Loop& target) {
    boost::system::error_code ignored;
    if (core->stopping.load()) {
      socket.close(ignored);
      return;
    }
    if (opts.max_connections != 0 && core->open_connections() >= opts.max_connections) {
      const auto n = refused.fetch_add(1) + 1;
      // A flood of connections must not become a flood of log lines: at most one every 10 s.
      if (refusal_log.due()) {
        logger()->warn("server {}: refused a connection from {}: max_connections ({}) reached "
                       "({} refused so far; logged at most every 10 s)",
                       local.to_string(), endpoint_of(socket.remote_endpoint(ignored)).to_string(),
                       opts.max_connections, n);
      }
      socket.close(ignored);
      return;
    }
    core->connection_created();
    Endpoint here = endpoint_of(socket.local_endpoint(ignored));
    Endpoint peer = endpoint_of(socket.remote_endpoint(ignored));
    auto conn = std::make_shared<TcpConnection>(
        core, target, std::move(socket), next_connection_id(), std::move(here), std::move(peer));
    asio::post(target.context(), [conn] { conn->start(); });
  }

  void request_stop() {
    std::lock_guard lock(mutex);
    stop_requested = true;
    cv.notify_all();
  }

  void complete_stop() {
    std::lock_guard stop_lock(stop_mutex);
    {
      std::lock_guard lock(mutex);
      if (!started || stopped) return;
    }
    std::promise<void> closed;
    auto closed_future = closed.get_future();
    asio::post(acceptor_loop().context(), [this, &closed] {
      boost::system::error_code ignored;
      acceptor->close(ignored);
      backoff->cancel();
      if (signals) signals->cancel(ignored);
      closed.set_value();
    });
    closed_future.wait();
    core->shutdown();
    http.reset(); // after the connections closed, so a scrape during the stop still answers
    acceptor.reset();
    backoff.reset();
    signals.reset();
    logger()->debug("server {}: stopped", local.to_string());
    std::lock_guard lock(mutex);
    stopped = true;
    cv.notify_all();
  }
};

} // namespace detail

Server::Server(ServerOptions options)
    : codec_(options.codec ? options.codec : std::make_shared<const TlvCodec>(options.max_payload)),
      core_(std::make_shared<detail::ServerCore>(std::move(options))) {
  auto& o = core_->opts;
  if (o.io_threads == hardware_threads)
    o.io_threads = std::max(1u, std::thread::hardware_concurrency());
  if (o.workers == hardware_threads) o.workers = std::max(1u, std::thread::hardware_concurrency());
  if (o.io_threads == 0) throw std::invalid_argument("tao::Server: io_threads must be at least 1");
  if (o.read_chunk < 512) throw std::invalid_argument("tao::Server: read_chunk must be >= 512");
  if (o.connection.resume_reading_at > o.connection.pause_reading_at)
    throw std::invalid_argument("tao::Server: resume_reading_at must be <= pause_reading_at");
  if (!o.log_level.empty()) set_log_level(o.log_level);
  detail::raise_malloc_trim_threshold(o.malloc_trim_threshold);
}

Server::~Server() {
  if (core_->core && core_->core->in_own_thread()) {
    // Destroyed from one of its own handlers: this thread cannot wait for itself, so the stop is
    // completed on a thread of its own (which keeps what it needs alive).
    std::thread([c = core_] {
      try {
        c->complete_stop();
      } catch (const std::exception& e) {
        logger()->error("server: stop after destruction failed: {}", e.what());
      }
    }).detach();
    return;
  }
  try {
    core_->complete_stop();
  } catch (const std::exception& e) {
    logger()->error("server: stop in destructor failed: {}", e.what());
  }
}

void Server::start() {
  using detail::tcp;
  auto& sc = *core_;
  {
    std::lock_guard lock(sc.mutex);
    if (sc.started) throw std::logic_error("tao::Server: start() called twice");
  }
  const auto& o = sc.opts;
  sc.core = std::make_shared<detail::Core>(detail::CoreConfig{
      "server", o.io_threads, o.workers, o.read_chunk, dispatch_, codec_, o.connection, o.heartbeat,
      o.heartbeat_reply, o.tls ? detail::make_tls_config(*o.tls, true, o.host) : nullptr,
      o.metrics.handler_timing});

  detail::Loop& loop0 = sc.acceptor_loop();
  boost::system::error_code ec;
  tcp::resolver resolver(loop0.context());
  auto results = resolver.resolve(o.host, std::to_string(o.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty())
    throw std::system_error(ec, fmt::format("tao::Server: cannot resolve {}", o.host));
  const tcp::endpoint ep = results.begin()->endpoint();
  auto acc = std::make_unique<tcp::acceptor>(loop0.context());
  auto fail = [&](const char* what) {
    throw std::system_error(ec, fmt::format("tao::Server: cannot {} {}:{}", what, o.host, o.port));
  };
  acc->open(ep.protocol(), ec);
  if (ec) fail("open a socket for");
  acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (ep.address().is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
  acc->bind(ep, ec);
  if (ec) fail("bind");
  acc->listen(o.backlog, ec);
  if (ec) fail("listen on");
  acc->non_blocking(true, ec); // lets on_accept drain the queue without blocking
  sc.local = detail::endpoint_of(acc->local_endpoint(ec));
  sc.accept_trouble.who = "server " + sc.local.to_string();
  sc.acceptor = std::move(acc);
  sc.backoff = std::make_unique<asio::steady_timer>(loop0.context());
  if (o.metrics.http) {
    // The endpoint is owned by (and stopped before) the ServerCore it reads.
    sc.http = std::make_unique<detail::MetricsHttpServer>(
        *o.metrics.http, [p = &sc] { return to_prometheus(p->metrics()); });
    sc.metrics_port = sc.http->port();
  }

  sc.core->start_threads();
  {
    std::lock_guard lock(sc.mutex);
    sc.started = true;
  }
  asio::post(loop0.context(), [c = core_] { c->accept_next(); });
  logger()->info("server listening on {} ({} I/O thread(s), {})", sc.local.to_string(),
                 o.io_threads,
                 o.workers ? fmt::format("{} worker(s)", o.workers) : "handlers on the loops");
}

int Server::run() {
  if (!running()) start();
  wait();
  return 0;
}

int Server::run_until_signal() {
  stop_on_signals();
  wait();
  return 0;
}

void Server::stop_on_signals() {
  if (!running()) start();
  if (core_->signals_armed) return;
  core_->signals_armed = true;
  std::promise<void> armed;
  auto armed_future = armed.get_future();
  asio::post(core_->acceptor_loop().context(), [c = core_, &armed] {
    c->signals = std::make_unique<asio::signal_set>(c->acceptor_loop().context(), SIGINT, SIGTERM);
    c->signals->async_wait([c](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      logger()->info("server {}: signal {} received, stopping", c->local.to_string(), sig);
      c->request_stop();
    });
    armed.set_value();
  });
  armed_future.wait();
}

void Server::stop() {
  if (!core_->core) return;
  if (core_->core->in_own_thread()) {
    core_->request_stop(); // completing here would wait for this very thread
    return;
  }
  core_->complete_stop();
}

void Server::wait() {
  {
    std::unique_lock lock(core_->mutex);
    if (!core_->started) return;
    core_->cv.wait(lock, [this] { return core_->stop_requested || core_->stopped; });
  }
  core_->complete_stop();
}

std::uint16_t Server::port() const noexcept { return core_->local.port; }
Endpoint Server::local_endpoint() const { return core_->local; }

bool Server::running() const noexcept {
  std::lock_guard lock(core_->mutex);
  return core_->started && !core_->stopped;
}

ConnectionPtr Server::connection(ConnectionId id) const {
  if (!core_->core) return nullptr;
  return core_->core->connections.get(id).value_or(nullptr);
}

std::size_t Server::connection_count() const noexcept {
  return core_->core ? core_->core->connections.size() : 0;
}

void Server::for_each_connection(const std::function<void(const ConnectionPtr&)>& fn) const {
  if (!core_->core) return;
  core_->core->connections.for_each([&](ConnectionId, const ConnectionPtr& c) { fn(c); });
}

std::uint64_t Server::refused_connections() const noexcept { return core_->refused.load(); }

MetricsSnapshot Server::metrics() const { return core_->metrics(); }

std::uint16_t Server::metrics_port() const noexcept { return core_->metrics_port.load(); }

std::size_t Server::broadcast_encoded(ByteView frames) {
  if (!core_->core) return 0;
  std::size_t accepted = 0;
  core_->core->connections.for_each([&](ConnectionId, const ConnectionPtr& c) {
    if (!c->write_encoded(frames)) ++accepted;
  });
  return accepted;
}

WorkerPool* Server::workers() noexcept {
  return core_->core ? core_->core->workers.get() : nullptr;
}
const ServerOptions& Server::options() const noexcept { return core_->opts; }

} // namespace tao
