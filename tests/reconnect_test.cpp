// Issue 8: client reconnect with backoff.
#include <atomic>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::Seq;
using test::Text;

/// A port that was free a moment ago.
std::uint16_t free_port() {
  tao::Server s(test::local_server());
  s.start();
  return s.port();
}

tao::ServerOptions on_port(std::uint16_t port) {
  auto o = test::local_server(0, 1);
  o.port = port;
  return o;
}

tao::ClientOptions reconnecting(std::uint16_t port, std::size_t queue_bytes = 0) {
  auto o = test::local_client(port);
  o.reconnect = tao::ReconnectOptions{.initial_delay = 10ms,
                                      .max_delay = 50ms,
                                      .multiplier = 2.0,
                                      .max_attempts = 0,
                                      .queue_bytes = queue_bytes};
  return o;
}

TEST(Reconnect, AClientStartedBeforeItsServerConnectsOnceTheServerAppears) {
  const auto port = free_port();
  tao::Client c(reconnecting(port));
  std::atomic<int> connects{0};
  std::promise<std::string> echoed;
  c.on_connect([&](tao::Connection&) {
    ++connects;
    return true;
  });
  c.handle<Text>([&](tao::Connection&, const Text& m) { echoed.set_value(m.text); });
  EXPECT_TRUE(c.connect()); // nobody listens yet
  EXPECT_FALSE(c.connected());
  std::this_thread::sleep_for(100ms);
  tao::Server s(on_port(port));
  s.handle<Text>([](tao::Connection& conn, const Text& m) { conn.write(m); });
  s.start();
  ASSERT_TRUE(test::eventually([&] { return c.connected(); }, 5s));
  EXPECT_EQ(connects, 1);
  ASSERT_FALSE(c.write(Text{"late server"}));
  auto f = echoed.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), "late server");
}

TEST(Reconnect, ServerRestartOnTheSamePortAndQueuedWritesArriveOnceInOrder) {
  const auto port = free_port();
  std::mutex m;
  std::vector<std::int64_t> handled;
  auto make_server = [&] {
    auto s = std::make_unique<tao::Server>(on_port(port));
    s->handle<Seq>([&](tao::Connection&, const Seq& q) {
      std::lock_guard l(m);
      handled.push_back(q.n);
    });
    s->start();
    return s;
  };
  auto server = make_server();
  tao::Client c(reconnecting(port, 1 << 20));
  std::atomic<int> connects{0}, reconnects{0};
  c.on_connect([&](tao::Connection&) {
    ++connects;
    return true;
  });
  c.on_reconnect([&](std::size_t) { ++reconnects; });
  ASSERT_FALSE(c.connect());
  std::int64_t n = 0;
  for (; n < 100; ++n)
    ASSERT_FALSE(c.write(Seq{0, n}));
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard l(m);
    return handled.size() == 100;
  }));
  server->stop(); // graceful: the client sees the close and starts retrying
  ASSERT_TRUE(test::eventually([&] { return !c.connected(); }));
  for (; n < 200; ++n)
    ASSERT_FALSE(c.write(Seq{0, n})); // queued during the outage
  server.reset();
  std::this_thread::sleep_for(60ms);
  server = make_server();
  ASSERT_TRUE(test::eventually([&] { return c.connected(); }, 5s));
  for (; n < 300; ++n)
    ASSERT_FALSE(c.write(Seq{0, n}));
  ASSERT_TRUE(test::eventually(
      [&] {
        std::lock_guard l(m);
        return handled.size() == 300;
      },
      5s));
  std::lock_guard l(m);
  for (std::int64_t i = 0; i < 300; ++i)
    ASSERT_EQ(handled[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(connects, 2); // on_connect ran again
  EXPECT_GE(reconnects, 1);
}

TEST(Reconnect, WithoutTheQueueWritesWhileDisconnectedSayNotConnected) {
  const auto port = free_port();
  tao::Client c(reconnecting(port));
  EXPECT_TRUE(c.connect());
  EXPECT_EQ(c.write(Text{"nobody"}), tao::errc::not_connected);
  c.close();
}

TEST(Reconnect, AttemptTimesGrowAreCappedAndJitterStaysInBounds) {
  // A listener that accepts and closes at once, recording when each attempt arrived.
  test::RawListener listener(16);
  const int lfd = listener.fd();
  std::mutex m;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  std::atomic<bool> done{false};
  std::thread acceptor([&] {
    while (!done) {
      pollfd p{lfd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(lfd, nullptr, nullptr);
      if (fd < 0) continue;
      {
        std::lock_guard l(m);
        arrivals.push_back(std::chrono::steady_clock::now());
      }
      ::close(fd);
    }
  });
  std::vector<std::size_t> numbers;
  auto o = test::local_client(listener.port());
  o.reconnect = tao::ReconnectOptions{
      .initial_delay = 20ms, .max_delay = 160ms, .multiplier = 2.0, .max_attempts = 8};
  tao::Client c(o);
  c.on_reconnect([&](std::size_t k) {
    std::lock_guard l(m);
    numbers.push_back(k);
  });
  ASSERT_FALSE(c.connect());
  EXPECT_TRUE(test::eventually(
      [&] {
        std::lock_guard l(m);
        return arrivals.size() >= 9; // the first connect and 8 attempts, then it gives up
      },
      10s));
  std::this_thread::sleep_for(400ms);
  done = true;
  acceptor.join();
  std::lock_guard l(m);
  EXPECT_EQ(arrivals.size(), 9u) << "max_attempts must stop the attempts";
  ASSERT_EQ(numbers.size(), 8u);
  for (std::size_t k = 0; k < numbers.size(); ++k)
    EXPECT_EQ(numbers[k], k + 1);
  // Attempt k waits at most min(160, 20 * 2^(k-1)) ms (full jitter: anything from 0 up), plus
  // the time the close takes to be noticed and the timer to run, the connect to be made and the
  // acceptor thread to see it: several times longer under sanitizers on a loaded machine (an
  // uncapped delay would still show: up to 320, 640, 1280 and 2560 ms for the last four).
  const std::vector<int> caps = {20, 40, 80, 160, 160, 160, 160, 160};
  const int overhead = test::under_sanitizer ? 250 : 60;
  std::chrono::milliseconds total{0};
  for (std::size_t k = 1; k < arrivals.size(); ++k) {
    const auto gap =
        std::chrono::duration_cast<std::chrono::milliseconds>(arrivals[k] - arrivals[k - 1]);
    EXPECT_LE(gap.count(), caps[k - 1] + overhead) << "attempt " << k;
    total += gap;
  }
  // With 8 uniform delays the sum is very unlikely to be tiny: the delays really grow.
  EXPECT_GT(total.count(), 100);
}

TEST(Reconnect, CloseDuringBackoffReturnsPromptlyAndStopsTheAttempts) {
  const auto port = free_port();
  auto o = test::local_client(port);
  o.reconnect = tao::ReconnectOptions{.initial_delay = 300ms, .max_delay = 300ms};
  tao::Client c(o);
  std::atomic<int> attempts{0};
  c.on_reconnect([&](std::size_t) { ++attempts; });
  EXPECT_TRUE(c.connect()); // fails; a retry is now pending
  const auto t0 = std::chrono::steady_clock::now();
  c.close();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  tao::Server s(on_port(port)); // even once a server appears, no attempt is made
  s.start();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(attempts, 0);
  EXPECT_FALSE(c.connected());
  EXPECT_EQ(s.connection_count(), 0u);
}

TEST(Reconnect, ADeliberateCloseDoesNotReconnectButAServerCloseDoes) {
  const auto port = free_port();
  tao::Server s(on_port(port));
  s.handle<Text>([](tao::Connection& conn, const Text&) { conn.close(); }); // "kick me"
  s.start();
  tao::Client c(reconnecting(port));
  std::atomic<int> connects{0};
  c.on_connect([&](tao::Connection&) {
    ++connects;
    return true;
  });
  ASSERT_FALSE(c.connect());
  c.write(Text{"kick me"});
  ASSERT_TRUE(test::eventually([&] { return connects == 2 && c.connected(); }, 5s));
  c.close();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(connects, 2);
  EXPECT_FALSE(c.connected());
}

TEST(Reconnect, WorksOverTls) {
  tao::TlsOptions st;
  st.certificate_chain_file = std::string(TAO_TEST_CERTS) + "/server.pem";
  st.private_key_file = std::string(TAO_TEST_CERTS) + "/server.key";
  const auto port = free_port();
  auto so = on_port(port);
  so.tls = st;
  auto server = std::make_unique<tao::Server>(so);
  server->start();
  auto co = reconnecting(port);
  co.tls = tao::TlsOptions{};
  co.tls->ca_file = std::string(TAO_TEST_CERTS) + "/ca.pem";
  co.tls->server_name = "localhost";
  tao::Client c(co);
  std::atomic<int> connects{0};
  c.on_connect([&](tao::Connection&) {
    ++connects;
    return true;
  });
  ASSERT_FALSE(c.connect());
  server.reset(); // stops
  ASSERT_TRUE(test::eventually([&] { return !c.connected(); }));
  server = std::make_unique<tao::Server>(so);
  server->start();
  ASSERT_TRUE(test::eventually([&] { return c.connected() && connects == 2; }, 5s));
  EXPECT_TRUE(c.connection()->is_tls());
}

} // namespace

namespace {

TEST(ClientLifetime, AClientDestroyedFromItsOwnOnCloseDoesNotCrash) {
  tao::Server s(test::local_server(0, 1));
  s.handle<test::Text>([](tao::Connection& c, const test::Text&) { c.close(); });
  s.start();
  const int threads_before = test::thread_count();
  auto holder = std::make_shared<std::unique_ptr<tao::Client>>(
      std::make_unique<tao::Client>(test::local_client(s.port())));
  std::promise<void> destroyed;
  (*holder)->on_close([holder, &destroyed](tao::Connection&) {
    holder->reset(); // the client goes away inside its own callback
    destroyed.set_value();
  });
  ASSERT_FALSE((*holder)->connect());
  (*holder)->write(test::Text{"close me"});
  auto f = destroyed.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  // The stop finishes on a thread of its own: the test (and the process) ends once it and the
  // client's threads are gone, not while they may still be running.
  EXPECT_TRUE(test::eventually([&] { return test::thread_count() == threads_before; }, 10s));
}

TEST(ClientLifetime, StopWhileConnectIsBlockedInATlsHandshakeReturnsPromptly) {
  // A listener that accepts and never answers: the client's handshake waits for it.
  test::RawListener listener(4);
  auto o = test::local_client(listener.port());
  o.tls = tao::TlsOptions{};
  o.tls->ca_file = std::string(TAO_TEST_CERTS) + "/ca.pem";
  tao::Client c(o);
  auto connecting = std::async(std::launch::async, [&] { return c.connect(); });
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  c.stop();
  ASSERT_EQ(connecting.wait_for(3s), std::future_status::ready);
  EXPECT_TRUE(connecting.get());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

} // namespace
