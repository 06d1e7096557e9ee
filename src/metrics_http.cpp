#include "metrics_http.hpp"

#include <atomic>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>

#include <tao/log.hpp>

#include "accept_trouble.hpp"

namespace tao::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class MetricsHttpSession;

struct MetricsHttpServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(const MetricsHttpOptions& o, Render r) : opts(o), render(std::move(r)) {}

  const MetricsHttpOptions opts;
  const Render render;
  std::size_t active = 0; // endpoint thread only: HTTP connections open now
  std::vector<std::weak_ptr<MetricsHttpSession>> sessions; // endpoint thread only
  std::atomic<std::uint16_t> port{0};
  asio::io_context ctx{1}; // after what sessions use: destroyed (with them) first
  std::optional<tcp::acceptor> acceptor;
  asio::steady_timer retry{ctx}; // accept_next() again after an exhausted accept()
  AcceptTrouble accept_trouble;  // endpoint thread only
  std::thread thread;

  void accept_next();
};

class MetricsHttpSession : public std::enable_shared_from_this<MetricsHttpSession> {
public:
  MetricsHttpSession(MetricsHttpServer::Impl& owner, tcp::socket socket)
      : owner_(owner), stream_(std::move(socket)),
        // Room for the largest allowed header plus some of a pipelined next request, so the
        // parser's header limit (431) is what trips, not the buffer (which would only close).
        buffer_(owner.opts.max_header_bytes + 4096) {
    ++owner_.active;
  }
  ~MetricsHttpSession() { --owner_.active; }

  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(owner_.opts.max_header_bytes, UINT32_MAX)));
    stream_.expires_after(owner_.opts.read_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [s = shared_from_this()](beast::error_code ec, std::size_t) { s->on_read(ec); });
  }

private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      close(); // the peer left, went quiet, or we are stopping: nothing to answer
      return;
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      respond(http::status::request_header_fields_too_large, "request headers too large\n", false);
      return;
    }
    if (ec.category() == beast::http::make_error_code(http::error::bad_method).category()) {
      respond(http::status::bad_request, "bad request: " + ec.message() + "\n", false);
      return;
    }
    if (ec) {
      close();
      return;
    }
    const auto& req = parser_->get();
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));
    const bool again = req.keep_alive() && ++served_ < owner_.opts.max_requests_per_connection;
    if (target != "/metrics") {
      respond(http::status::not_found, "not found; metrics are at /metrics\n", again);
    } else if (req.method() != http::verb::get) {
      respond(http::status::method_not_allowed, "only GET\n", again);
    } else {
      std::string body;
      try {
        body = owner_.render();
      } catch (const std::exception& e) {
        logger()->error("metrics endpoint: rendering failed: {}", e.what());
        respond(http::status::internal_server_error, "internal error\n", false);
        return;
      }
      respond(http::status::ok, std::move(body), again, "text/plain; version=0.0.4; charset=utf-8");
    }
  }

  void respond(http::status status, std::string body, bool keep_alive,
               const char* type = "text/plain; charset=utf-8") {
    res_.emplace(status, 11);
    res_->set(http::field::server, "tao");
    res_->set(http::field::content_type, type);
    if (status == http::status::method_not_allowed) res_->set(http::field::allow, "GET");
    res_->body() = std::move(body);
    res_->keep_alive(keep_alive);
    res_->prepare_payload();
    stream_.expires_after(owner_.opts.read_timeout);
    http::async_write(stream_, *res_,
                      [s = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                        if (ec || !keep_alive) {
                          s->close();
                          return;
                        }
                        s->read();
                      });
  }

public:
  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  MetricsHttpServer::Impl& owner_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::optional<http::response<http::string_body>> res_;
  std::size_t served_ = 0;
};

void MetricsHttpServer::Impl::accept_next() {
  acceptor->async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (!self->acceptor->is_open()) return;
    if (ec && accept_exhausted(ec)) {
      // Retrying at once would spin: the connection waits in the backlog, readable at once.
      self->accept_trouble.failed(ec);
      self->retry.expires_after(accept_retry_delay);
      self->retry.async_wait([self](const boost::system::error_code& e) {
        if (!e && self->acceptor->is_open()) self->accept_next();
      });
      return;
    }
    if (ec) {
      if (ec != asio::error::operation_aborted)
        logger()->warn("metrics endpoint: accept: {}", ec.message());
      self->accept_next();
      return;
    }
    self->accept_trouble.succeeded();
    if (self->active >= self->opts.max_connections) {
      logger()->debug("metrics endpoint: {} connections open (the maximum); closing a new one",
                      self->active);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      auto s = std::make_shared<MetricsHttpSession>(*self, std::move(socket));
      std::erase_if(self->sessions, [](const auto& w) { return w.expired(); });
      self->sessions.push_back(s);
      s->read();
    }
    self->accept_next();
  });
}

MetricsHttpServer::MetricsHttpServer(const MetricsHttpOptions& options, Render render)
    : impl_(std::make_shared<Impl>(options, std::move(render))) {
  if (options.max_connections == 0 || options.max_header_bytes < 256 ||
      options.read_timeout.count() <= 0 || options.max_requests_per_connection == 0)
    throw std::invalid_argument("tao: metrics http options: max_connections, "
                                "max_requests_per_connection and read_timeout must be > 0, "
                                "max_header_bytes >= 256");
  Impl& m = *impl_;
  beast::error_code ec;
  tcp::resolver resolver(m.ctx);
  auto results = resolver.resolve(options.host, std::to_string(options.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty())
    throw std::system_error(ec,
                            fmt::format("tao: metrics endpoint: cannot resolve {}", options.host));
  const tcp::endpoint ep = results.begin()->endpoint();
  m.acceptor.emplace(m.ctx);
  m.accept_trouble.who = "metrics endpoint";
  auto fail = [&](const char* what) {
    throw std::system_error(ec, fmt::format("tao: metrics endpoint: cannot {} {}:{}", what,
                                            options.host, options.port));
  };
  m.acceptor->open(ep.protocol(), ec);
  if (ec) fail("open a socket for");
  m.acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  m.acceptor->bind(ep, ec);
  if (ec) fail("bind");
  m.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on");
  m.port = m.acceptor->local_endpoint(ec).port();
  m.accept_next();
  m.thread = std::thread([&m] {
    for (;;) {
      try {
        m.ctx.run();
        return;
      } catch (const std::exception& e) {
        logger()->error("metrics endpoint: unexpected exception: {}", e.what());
      }
    }
  });
  logger()->info("metrics endpoint on http://{}:{}/metrics", options.host, port());
}

MetricsHttpServer::~MetricsHttpServer() {
  Impl& m = *impl_;
  asio::post(m.ctx, [&m] {
    beast::error_code ignored;
    m.acceptor->close(ignored);
    m.retry.cancel();
    for (auto& w : m.sessions)
      if (auto s = w.lock()) s->close();
    m.ctx.stop();
  });
  if (m.thread.joinable()) m.thread.join();
  // Run the cancelled operations here: the accept handler (which holds the Impl) and every
  // session finish now, so nothing is left pending when the io_context goes.
  m.ctx.restart();
  m.ctx.poll();
  m.sessions.clear();
}

std::uint16_t MetricsHttpServer::port() const noexcept { return impl_->port.load(); }

} // namespace tao::detail
