// Issue 6: heartbeats and dead-peer detection on both sides.
#include <sys/resource.h>

#include <atomic>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Text;

tao::ServerOptions with_timeout(std::chrono::milliseconds timeout, std::size_t workers = 0) {
  auto o = test::local_server(workers);
  o.heartbeat.timeout = timeout;
  return o;
}

std::string heartbeat_frame() {
  tao::Buffer b;
  tao::TlvCodec().encode(
      0, [](tao::Buffer& o) { tao::Heartbeat{42}.encode(o); }, b);
  return b.str();
}

/// Records close reasons and errors.
struct Recorder {
  test::CloseLog closes;
  test::ErrorLog errors;
  void attach(tao::Handlers& h) {
    h.on_close(closes.recorder());
    h.on_error(errors.recorder());
  }
};

TEST(Heartbeat, ASilentPeerIsClosedWithinTheTimeoutPlusOneCheck) {
  Recorder r;
  tao::Server s(with_timeout(40ms));
  r.attach(s);
  s.start();
  // t0 before connecting: the server may accept (and start the silence clock) before connect()
  // returns here, and the close must still come no sooner than the timeout after t0.
  const auto t0 = std::chrono::steady_clock::now();
  RawPeer silent(s.port());
  ASSERT_TRUE(silent.closed_by_peer(5s));
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 40ms);
  // timeout + one check period (10 ms) + slack for scheduling delays (larger under sanitizers,
  // which run several times slower on a shared, loaded machine)
  const auto slack = test::under_sanitizer ? 900ms : 300ms;
  EXPECT_LT(took, 40ms + 10ms + slack);
  ASSERT_TRUE(test::eventually([&] { return r.closes.count() == 1; }));
  EXPECT_EQ(r.closes.reason(0), tao::errc::heartbeat_timeout);
  const std::vector<tao::Error> errors = r.errors.all();
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].message.find("heartbeat timeout"), std::string::npos);
}

TEST(Heartbeat, ChattyAndHeartbeatOnlyPeersAreKept) {
  // A frame every 10 ms against a 500 ms timeout: only a stall of half a second (this thread or
  // the server's) could make a peer look silent, not the scheduling noise of a loaded machine.
  tao::Server s(with_timeout(500ms));
  s.handle<Text>([](tao::Connection&, const Text&) {});
  s.start();
  RawPeer chatty(s.port()), beating(s.port());
  for (int i = 0; i < 150; ++i) { // 1.5 s: three timeouts long
    chatty.send(test::frame(1, "hi"));
    beating.send(heartbeat_frame());
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(s.connection_count(), 2u);
  // The server answers each heartbeat (heartbeat_reply is on by default).
  auto f = beating.read_frame(1s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->first, 0);
  EXPECT_EQ(f->second.size(), 8u);
}

TEST(Heartbeat, AnIdleTaoClientKeepsItsConnectionByHeartbeating) {
  // Heartbeats every 50 ms against 500 ms timeouts (a stall of a loop thread shorter than that
  // must not count as silence).
  tao::Server s(with_timeout(500ms));
  s.start();
  auto co = test::local_client(s.port());
  co.heartbeat.interval = 50ms;
  co.heartbeat.timeout = 500ms; // the server answers, so the client hears something too
  tao::Client c(co);
  std::atomic<int> closes{0};
  c.on_close([&](tao::Connection&) { ++closes; });
  ASSERT_FALSE(c.connect());
  std::this_thread::sleep_for(1500ms); // three timeouts; the application sends nothing at all
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(closes, 0);
  EXPECT_EQ(s.connection_count(), 1u);
}

TEST(Heartbeat, HalfOpenConnectionIsDetectedByTheServer) {
  Recorder r;
  tao::Server s(with_timeout(50ms));
  r.attach(s);
  s.start();
  auto co = test::local_client(s.port());
  co.heartbeat.interval = 0ms; // a peer that stops writing without closing
  tao::Client c(co);
  ASSERT_FALSE(c.connect());
  ASSERT_TRUE(test::eventually([&] { return r.closes.count() == 1; }, 10s));
  EXPECT_EQ(r.closes.reason(0), tao::errc::heartbeat_timeout);
}

TEST(Heartbeat, HalfOpenConnectionIsDetectedByTheClient) {
  // A listener that accepts and then never sends nor reads: a dead server behind a live socket.
  test::RawListener listener(4);
  auto co = test::local_client(listener.port());
  co.heartbeat.interval = 10ms;
  co.heartbeat.timeout = 50ms;
  tao::Client c(co);
  Recorder r;
  r.attach(c);
  ASSERT_FALSE(c.connect());
  EXPECT_TRUE(c.wait_closed(10s));
  ASSERT_EQ(r.closes.count(), 1u);
  { EXPECT_EQ(r.closes.reason(0), tao::errc::heartbeat_timeout); }
  EXPECT_EQ(c.write(Text{"x"}), tao::errc::not_connected);
}

TEST(Heartbeat, SlowLorisIsClosedAndOthersAreServed) {
  Recorder r;
  tao::Server s(with_timeout(50ms));
  s.handle<Text>([](tao::Connection& c, const Text& m) { c.write(m); });
  r.attach(s);
  s.start();
  RawPeer loris(s.port());
  const std::string f = test::frame(1, std::string(200, 'z'));
  std::atomic<bool> closed{false};
  std::thread trickle([&] {
    for (std::size_t i = 0; i < f.size() && !closed; ++i) { // one byte every 5 ms: 1 s a frame
      if (!loris.send(std::string_view(&f[i], 1))) break;
      std::this_thread::sleep_for(5ms);
    }
  });
  ASSERT_TRUE(test::eventually([&] { return r.closes.count() == 1; }, 10s));
  closed = true;
  trickle.join();
  { EXPECT_EQ(r.closes.reason(0), tao::errc::heartbeat_timeout); }
  RawPeer good(s.port());
  good.send(test::frame(1, "served"));
  EXPECT_EQ(good.read_frame()->second, "served");
}

TEST(Heartbeat, GoldenHeartbeatFramesAreAcceptedAndShortOnesClose) {
  Recorder r;
  // A timeout long enough that `ok` cannot time out (and be the first close) before `bad` does.
  tao::Server s(with_timeout(10s));
  r.attach(s);
  s.start();
  RawPeer ok(s.port());
  ok.send(test::from_hex("000000000800000015cd853dfe9c9717"));
  ok.send(test::from_hex("000000000c000000050000000000000058585858"));
  ASSERT_TRUE(ok.read_frame(5s)); // two replies
  ASSERT_TRUE(ok.read_frame(5s));
  RawPeer bad(s.port());
  bad.send(test::from_hex("0000000000000000")); // empty heartbeat payload
  EXPECT_TRUE(bad.closed_by_peer(5s));
  ASSERT_TRUE(test::eventually([&] { return r.closes.count() == 1; }));
  EXPECT_EQ(r.closes.reason(0), tao::errc::bad_heartbeat);
}

TEST(Heartbeat, UserRegisteredTypeZeroSeesTheFrames) {
  tao::Server s(with_timeout(500ms));
  std::atomic<std::int64_t> seen{0};
  s.handle<tao::Heartbeat>(
      [&](tao::Connection&, const tao::Heartbeat& h) { seen = h.timestamp_ns; });
  s.start();
  RawPeer p(s.port());
  p.send(test::from_hex("000000000800000015cd853dfe9c9717"));
  EXPECT_TRUE(test::eventually([&] { return seen == 1700000000123456789; }));
  EXPECT_FALSE(p.read_frame(100ms)); // the framework does not answer what the user handles
}

using test::thread_count;

TEST(Heartbeat, AThousandIdleHeartbeatingConnectionsCostNoThreadEach) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 2200 && lim.rlim_max >= 2200) {
    lim.rlim_cur = 2200;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  const int n = lim.rlim_cur >= 2200 ? 1000 : static_cast<int>(lim.rlim_cur / 2 - 50);
  // A 1 s timeout, heartbeats every 200 ms: under sanitizers on a loaded machine a round of 1,000
  // frames (and 1,000 replies) takes the server's two loops a while to get through.
  tao::Server s(with_timeout(1s, 2));
  s.start();
  const int before = thread_count();
  std::vector<std::unique_ptr<RawPeer>> peers;
  for (int i = 0; i < n; ++i)
    peers.push_back(std::make_unique<RawPeer>(s.port()));
  ASSERT_TRUE(
      test::eventually([&] { return s.connection_count() == static_cast<std::size_t>(n); }));
  const std::string hb = heartbeat_frame();
  for (int round = 0; round < 15; ++round) { // 3 s of heartbeats, three timeouts long
    for (auto& p : peers)
      p->send(hb);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(s.connection_count(), static_cast<std::size_t>(n));
  EXPECT_EQ(thread_count(), before);
}

} // namespace
