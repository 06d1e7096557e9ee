// tao-bench-asio-echo: the raw Asio baseline tao is measured against. It is the echo server an
// Asio user writes first: one io_context per thread, connections spread round robin, and per
// connection a 16 KiB buffer, async_read_some -> async_write of what arrived -> read again. No
// framing, no coalescing: it echoes bytes verbatim, so it serves TLV frames unchanged.
#include <array>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                    boost::system::error_code ec, std::size_t n) {
      if (!ec) self->write(n);
    });
  }

private:
  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buf_, n),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  tcp::socket socket_;
  std::array<char, 16 * 1024> buf_;
};

class Server {
public:
  Server(const std::string& host, std::uint16_t port, std::size_t threads)
      : loops_(make_loops(threads)), acceptor_(*loops_.front()),
        signals_(*loops_.front(), SIGINT, SIGTERM) {
    const tcp::endpoint ep(asio::ip::make_address(host), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    signals_.async_wait([this](boost::system::error_code, int) { stop(); });
    accept();
  }

  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void run() {
    std::vector<std::jthread> threads;
    for (std::size_t i = 1; i < loops_.size(); ++i)
      threads.emplace_back([this, i] { run_loop(*loops_[i]); });
    run_loop(*loops_.front());
  }

private:
  static std::vector<std::unique_ptr<asio::io_context>> make_loops(std::size_t n) {
    std::vector<std::unique_ptr<asio::io_context>> loops;
    // Concurrency hint 1: each io_context is run by exactly one thread, as in tao.
    for (std::size_t i = 0; i < n; ++i)
      loops.push_back(std::make_unique<asio::io_context>(1));
    return loops;
  }

  static void run_loop(asio::io_context& loop) {
    auto guard = asio::make_work_guard(loop); // loops without connections must keep running
    loop.run();
  }

  void accept() {
    // The socket is created on the next loop, so the whole connection lives on that loop.
    auto& loop = *loops_[next_++ % loops_.size()];
    acceptor_.async_accept(loop, [this, &loop](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        asio::post(loop, [s = std::make_shared<Session>(std::move(socket))] { s->read(); });
      }
      accept();
    });
  }

  void stop() {
    acceptor_.close();
    for (auto& loop : loops_)
      loop->stop();
  }

  std::vector<std::unique_ptr<asio::io_context>> loops_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  std::size_t next_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"raw Asio echo server (benchmark baseline)"};
  std::string host = "127.0.0.1";
  std::uint16_t port = 12346;
  std::size_t threads = 1;
  app.add_option("--host", host, "address to listen on")->capture_default_str();
  app.add_option("--port", port, "TCP port (0: an ephemeral one, printed)")->capture_default_str();
  app.add_option("--threads", threads, "threads, one io_context each")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{256}));
  CLI11_PARSE(app, argc, argv);

  try {
    Server server(host, port, threads);
    std::printf("asio echo server listening on %s:%u\n",
                server.local_endpoint().address().to_string().c_str(),
                static_cast<unsigned>(server.local_endpoint().port()));
    std::fflush(stdout);
    server.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio echo server: %s\n", e.what());
    return 1;
  }
  return 0;
}
