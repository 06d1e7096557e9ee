// Issue 7: TLS servers and clients, with real OpenSSL handshakes on 127.0.0.1.
#include <atomic>
#include <fstream>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Text;

const std::string certs = TAO_TEST_CERTS;

tao::TlsOptions server_tls() {
  tao::TlsOptions t;
  t.certificate_chain_file = certs + "/server.pem";
  t.private_key_file = certs + "/server.key";
  t.ca_file = certs + "/ca.pem";
  return t;
}

tao::TlsOptions client_tls() {
  tao::TlsOptions t;
  t.ca_file = certs + "/ca.pem";
  t.server_name = "localhost";
  return t;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct TlsEcho {
  explicit TlsEcho(tao::TlsOptions t = server_tls(), std::size_t workers = 0) {
    auto o = test::local_server(workers);
    o.tls = std::move(t);
    server = std::make_unique<tao::Server>(o);
    server->handle<Text>([](tao::Connection& c, const Text& msg) { c.write(msg); });
    server->on_error([this](tao::Connection&, const tao::Error& e) {
      std::lock_guard l(m);
      errors.push_back(e);
    });
    server->start();
  }
  bool has_error(tao::errc e) {
    std::lock_guard l(m);
    for (auto& x : errors)
      if (x.code == e) return true;
    return false;
  }
  std::mutex m;
  std::vector<tao::Error> errors;
  std::unique_ptr<tao::Server> server;
};

/// Connects a TLS client, sends one Text and returns the echo (empty on failure).
std::string echo_once(std::uint16_t port, tao::TlsOptions t,
                      std::error_code* connect_ec = nullptr) {
  auto co = test::local_client(port);
  co.tls = std::move(t);
  tao::Client c(co);
  std::promise<std::string> got;
  std::atomic<bool> answered{false};
  c.handle<Text>([&](tao::Connection&, const Text& m) {
    if (!answered.exchange(true)) got.set_value(m.text);
  });
  // TLS 1.3 servers may refuse a client certificate after the client's handshake is done.
  c.on_close([&](tao::Connection&) {
    if (!answered.exchange(true)) got.set_value("");
  });
  auto ec = c.connect();
  if (connect_ec) *connect_ec = ec;
  if (ec) return {};
  EXPECT_TRUE(c.connection()->is_tls());
  c.write(Text{"over tls"});
  auto f = got.get_future();
  if (f.wait_for(5s) != std::future_status::ready) return {};
  return f.get();
}

TEST(Tls, HandshakeAndEchoOverTls13) {
  auto st = server_tls();
  st.min_version = tao::TlsVersion::tls1_3;
  TlsEcho s(st);
  EXPECT_EQ(echo_once(s.server->port(), client_tls()), "over tls");
}

TEST(Tls, HandshakeAndEchoOverTls12) {
  auto st = server_tls();
  st.max_version = tao::TlsVersion::tls1_2;
  TlsEcho s(st);
  EXPECT_EQ(echo_once(s.server->port(), client_tls()), "over tls");
  // A client that insists on 1.3 cannot talk to a 1.2-only server.
  auto ct = client_tls();
  ct.min_version = tao::TlsVersion::tls1_3;
  std::error_code ec;
  EXPECT_EQ(echo_once(s.server->port(), ct, &ec), "");
  EXPECT_EQ(ec, tao::errc::tls_handshake_failed);
}

TEST(Tls, CertificatesFromPemTextInMemory) {
  tao::TlsOptions st;
  st.certificate_chain_pem = read_file(certs + "/server.pem");
  st.private_key_pem = read_file(certs + "/server.key");
  TlsEcho s(st);
  tao::TlsOptions ct;
  ct.ca_pem = read_file(certs + "/ca.pem");
  ct.server_name = "localhost";
  EXPECT_EQ(echo_once(s.server->port(), ct), "over tls");
}

TEST(Tls, WrongCaIsRejected) {
  TlsEcho s;
  auto ct = client_tls();
  ct.ca_file = certs + "/other-ca.pem";
  std::error_code ec;
  EXPECT_EQ(echo_once(s.server->port(), ct, &ec), "");
  EXPECT_EQ(ec, tao::errc::tls_handshake_failed);
  EXPECT_TRUE(test::eventually([&] { return s.has_error(tao::errc::tls_handshake_failed); }));
}

TEST(Tls, HostnameMismatchIsRejected) {
  TlsEcho s;
  auto ct = client_tls();
  ct.server_name = "not-the-server.example";
  std::error_code ec;
  EXPECT_EQ(echo_once(s.server->port(), ct, &ec), "");
  EXPECT_EQ(ec, tao::errc::tls_handshake_failed);
  // The IP address the certificate names is accepted.
  ct.server_name = "127.0.0.1";
  EXPECT_EQ(echo_once(s.server->port(), ct), "over tls");
}

TEST(Tls, MutualTlsRequiresAClientCertificate) {
  auto st = server_tls();
  st.require_client_certificate = true;
  TlsEcho s(st);
  std::error_code ec;
  EXPECT_EQ(echo_once(s.server->port(), client_tls(), &ec), "");
  EXPECT_TRUE(test::eventually([&] { return s.has_error(tao::errc::tls_handshake_failed); }));
  auto ct = client_tls();
  ct.certificate_chain_file = certs + "/client.pem";
  ct.private_key_file = certs + "/client.key";
  EXPECT_EQ(echo_once(s.server->port(), ct), "over tls");
}

TEST(Tls, APlaintextClientIsClosedAndTlsClientsAreStillServed) {
  TlsEcho s;
  RawPeer plain(s.server->port());
  plain.send(test::frame(1, "no tls here"));
  EXPECT_TRUE(plain.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return s.has_error(tao::errc::tls_handshake_failed); }));
  EXPECT_EQ(echo_once(s.server->port(), client_tls()), "over tls");
}

TEST(Tls, AClientThatNeverHandshakesIsClosedAtTheDeadline) {
  auto st = server_tls();
  st.handshake_timeout = 100ms;
  TlsEcho s(st);
  RawPeer silent(s.server->port());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent.closed_by_peer(3s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 90ms);
  EXPECT_TRUE(test::eventually([&] { return s.has_error(tao::errc::tls_handshake_timeout); }));
  EXPECT_TRUE(test::eventually([&] { return s.server->connection_count() == 0; }));
}

TEST(Tls, SetupErrorsNameTheFile) {
  auto o = test::local_server();
  o.tls = server_tls();
  o.tls->certificate_chain_file = certs + "/missing.pem";
  tao::Server missing(o);
  try {
    missing.start();
    FAIL() << "a missing certificate must be a set-up error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
  o.tls = server_tls();
  o.tls->private_key_file = certs + "/client.key"; // not the server certificate's key
  tao::Server mismatch(o);
  try {
    mismatch.start();
    FAIL() << "a key that does not match must be a set-up error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("client.key"), std::string::npos) << e.what();
  }
}

TEST(Tls, AlpnIsNegotiated) {
  auto st = server_tls();
  st.alpn = {"tao/1"};
  TlsEcho s(st);
  auto co = test::local_client(s.server->port());
  co.tls = client_tls();
  co.tls->alpn = {"h2", "tao/1"};
  tao::Client c(co);
  ASSERT_FALSE(c.connect());
  EXPECT_EQ(c.connection()->alpn(), "tao/1");
}

TEST(Tls, ManyMessagesInOrderAndHeartbeatAndGracefulStop) {
  auto o = test::local_server(2);
  o.tls = server_tls();
  o.heartbeat.timeout = 1s; // 20 heartbeat intervals: a stalled thread does not end `c`
  tao::Server server(o);
  server.handle<test::Seq>([](tao::Connection& c, const test::Seq& q) { c.write(q); });
  std::atomic<int> timeouts{0};
  server.on_close([&](tao::Connection& c) {
    if (c.close_reason() == tao::errc::heartbeat_timeout) ++timeouts;
  });
  server.start();

  auto co = test::local_client(server.port());
  co.tls = client_tls();
  std::mutex m;
  std::vector<std::int64_t> got;
  co.heartbeat.interval = 50ms; // keeps this client alive through the server's timeout
  tao::Client c(co);
  c.handle<test::Seq>([&](tao::Connection&, const test::Seq& q) {
    std::lock_guard l(m);
    got.push_back(q.n);
  });
  ASSERT_FALSE(c.connect());
  constexpr int n = 5000;
  for (int i = 0; i < n; ++i) {
    std::error_code ec;
    while ((ec = c.write(test::Seq{0, i})) == tao::errc::send_queue_full)
      std::this_thread::sleep_for(1ms);
    ASSERT_FALSE(ec);
  }
  ASSERT_TRUE(test::eventually(
      [&] {
        std::lock_guard l(m);
        return got.size() == n;
      },
      20s));
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(got[i], i);

  // A silent TLS client (no heartbeats) is timed out; the heartbeating one is not.
  auto silent_o = test::local_client(server.port());
  silent_o.tls = client_tls();
  silent_o.heartbeat.interval = 0ms;
  tao::Client silent(silent_o);
  ASSERT_FALSE(silent.connect());
  EXPECT_TRUE(silent.wait_closed(10s));
  // The server's on_close runs on its worker, maybe just after the client saw the close.
  EXPECT_TRUE(test::eventually([&] { return timeouts == 1; }));
  EXPECT_TRUE(c.connected());
}

TEST(Tls, StopDeliversPendingWritesOverTls) {
  auto o = test::local_server(1);
  o.tls = server_tls();
  tao::Server server(o);
  constexpr int n = 3000;
  const std::string kib(1024, 'k');
  std::promise<int> accepted;
  server.handle<Text>([&](tao::Connection& c, const Text&) {
    int ok = 0;
    for (int i = 0; i < n; ++i)
      ok += !c.write(Text{std::to_string(i) + kib});
    accepted.set_value(ok);
  });
  server.start();
  auto co = test::local_client(server.port());
  co.tls = client_tls();
  tao::Client c(co);
  std::atomic<int> got{0}, wrong{0};
  std::promise<void> first;
  c.handle<Text>([&](tao::Connection&, const Text& m) {
    if (m.text != std::to_string(got.load()) + kib) ++wrong;
    if (++got == 1) first.set_value();
    if (got == 1) std::this_thread::sleep_for(200ms); // let the server's queue fill meanwhile
  });
  ASSERT_FALSE(c.connect());
  c.write(Text{"go"});
  first.get_future().wait();
  const int queued = accepted.get_future().get();
  EXPECT_EQ(queued, n);
  server.stop(); // 3 MiB queued or in flight: all of it must arrive before the close
  EXPECT_TRUE(c.wait_closed(10s));
  EXPECT_EQ(got, queued);
  EXPECT_EQ(wrong, 0);
}

TEST(Tls, AClientSilentForOverASecondThatSendsAgainStillGetsEveryReply) {
  // The TLS twin of LingeringClose in stress_test.cpp: the server queues replies and closes; the
  // client reads nothing (its handler is busy) past the close_notify wait, then sends again. The
  // kernel resets a closed socket that receives data and drops what it had not sent yet, so the
  // server must not close the socket while the client has not acknowledged everything.
  constexpr int replies = 1000; // 1 MiB: more than the client's receive window on any host
  const std::string kib(1024, 'k');
  auto o = test::local_server(0, 1);
  o.tls = server_tls();
  o.connection.close_timeout = 5s;
  test::ErrorLog errors;
  test::CloseLog closes;
  tao::Server server(o);
  server.on_error(errors.recorder());
  server.on_close(closes.recorder());
  server.handle<Text>([&](tao::Connection& c, const Text& t) {
    if (t.text != "go") return;
    for (int i = 0; i < replies; ++i)
      c.write(Text{std::to_string(i) + kib});
    c.close();
  });
  server.start();
  auto co = test::local_client(server.port());
  co.tls = client_tls();
  tao::Client c(co);
  std::atomic<int> got{0}, wrong{0};
  c.handle<Text>([&](tao::Connection& conn, const Text& t) {
    if (t.text != std::to_string(got.load()) + kib) ++wrong;
    if (++got == 1) {
      std::this_thread::sleep_for(1600ms); // past shutdown_timeout and the second of silence
      conn.write(Text{"again"});
    }
  });
  ASSERT_FALSE(c.connect());
  c.write(Text{"go"});
  EXPECT_TRUE(c.wait_closed(10s));
  EXPECT_EQ(got, replies);
  EXPECT_EQ(wrong, 0);
  // The server's side closes too, on its own (not by the stop at the end of the test).
  EXPECT_TRUE(test::eventually([&] { return closes.count() == 1; }, 3s));
  for (const auto& e : errors.all())
    ADD_FAILURE() << "server on_error: " << e.message;
}

} // namespace
