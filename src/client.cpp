#include <tao/client.hpp>

#include <future>
#include <mutex>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <tao/log.hpp>

#include "core.hpp"
#include "endpoint.hpp"
#include "tcp_connection.hpp"
#include "tls.hpp"

namespace tao {
namespace asio = boost::asio;
namespace detail {

using tcp = asio::ip::tcp;

class ClientCore {
public:
  explicit ClientCore(ClientOptions o) : opts(std::move(o)) {}

  ClientOptions opts;
  std::shared_ptr<const Codec> codec;
  std::shared_ptr<TlsConfig> tls; // built at construction, so set-up errors throw there
  std::shared_ptr<Core> core;
  mutable std::mutex mutex;
  ConnectionPtr conn; // guarded by mutex
  bool stopped = false;
};

// One connect attempt: resolve, connect, start; whichever of it and the deadline ends first wins.
struct ConnectOp : std::enable_shared_from_this<ConnectOp> {
  ConnectOp(std::shared_ptr<Core> c, Loop& l)
      : core(std::move(c)), loop(l), resolver(l.context()), socket(l.context()),
        timer(l.context()) {}

  std::shared_ptr<Core> core;
  Loop& loop;
  tcp::resolver resolver;
  tcp::socket socket;
  asio::steady_timer timer;
  bool done = false;
  std::promise<std::pair<std::error_code, ConnectionPtr>> result;

  void finish(std::error_code ec, ConnectionPtr c = nullptr) {
    if (done) return;
    done = true;
    timer.cancel();
    result.set_value({ec, std::move(c)});
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
    boost::system::error_code ignored;
    Endpoint here = endpoint_of(socket.local_endpoint(ignored));
    Endpoint peer = endpoint_of(socket.remote_endpoint(ignored));
    core->connection_created();
    auto conn = std::make_shared<TcpConnection>(core, loop, std::move(socket), next_connection_id(),
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
  core_->codec = o.codec ? o.codec : std::make_shared<const TlvCodec>(o.max_payload);
  if (o.tls) core_->tls = detail::make_tls_config(*o.tls, false, o.host);
}

Client::~Client() {
  try {
    stop();
  } catch (const std::exception& e) {
    logger()->error("client: stop in destructor failed: {}", e.what());
  }
}

std::error_code Client::connect() {
  auto& cc = *core_;
  {
    std::lock_guard lock(cc.mutex);
    if (cc.stopped) return errc::stopped;
    if (cc.conn && cc.conn->is_open()) return {};
    if (!cc.core) {
      const auto& o = cc.opts;
      cc.core = std::make_shared<detail::Core>(
          detail::CoreConfig{"client", o.io_threads, o.workers, o.read_chunk, dispatch_, cc.codec,
                             o.connection, o.heartbeat, false, cc.tls});
      cc.core->start_threads();
    }
  }
  detail::Loop& loop = cc.core->loops.next();
  auto op = std::make_shared<detail::ConnectOp>(cc.core, loop);
  auto fut = op->result.get_future();
  asio::post(loop.context(), [op, host = cc.opts.host, port = cc.opts.port,
                              t = cc.opts.connect_timeout] { op->run(host, port, t); });
  auto [ec, conn] = fut.get();
  if (ec) {
    logger()->debug("client: connect to {}:{} failed: {}", cc.opts.host, cc.opts.port,
                    ec.message());
    return ec;
  }
  std::lock_guard lock(cc.mutex);
  cc.conn = std::move(conn);
  return {};
}

std::error_code Client::write(const RawMessage& msg) {
  ConnectionPtr c = connection();
  if (!c || !c->is_open()) return errc::not_connected;
  return c->write(msg);
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
  if (auto c = connection()) c->close();
}

void Client::stop() {
  std::shared_ptr<detail::Core> core;
  {
    std::lock_guard lock(core_->mutex);
    if (core_->stopped) return;
    core_->stopped = true;
    core = core_->core;
  }
  if (!core) return;
  if (core->in_own_thread()) {
    // From a handler: close now, the destructor joins.
    {
      std::lock_guard lock(core_->mutex);
      core_->stopped = false;
    }
    close();
    return;
  }
  core->shutdown();
}

WorkerPool* Client::workers() noexcept {
  return core_->core ? core_->core->workers.get() : nullptr;
}
const ClientOptions& Client::options() const noexcept { return core_->opts; }

} // namespace tao
