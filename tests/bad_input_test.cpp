// What peers can send that they should not: every case gets on_error with a reason and, where
// the stream cannot go on, a close; the server keeps serving everyone else.
#include <atomic>
#include <mutex>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Text;

/// An echo server that records on_error and on_close.
struct Watched {
  explicit Watched(tao::ServerOptions o = test::local_server()) : server(std::move(o)) {
    // (server is declared last, so it is constructed last too; the callbacks below may use the
    // members above.)
    server.handle<Text>([](tao::Connection& c, const Text& m) { c.write(m); });
    server.handle<test::Seq>([](tao::Connection& c, const test::Seq& m) { c.write(m); });
    server.on_error(errors.recorder());
    server.on_close(closes.recorder());
    server.start();
  }
  bool has_error(tao::errc e) const { return errors.has(e); }
  /// The server still echoes for a fresh client.
  bool still_serving() {
    RawPeer p(server.port());
    p.send(test::frame(1, "ping"));
    auto f = p.read_frame();
    return f && f->second == "ping";
  }
  test::ErrorLog errors;
  test::CloseLog closes;
  tao::Server server; // last: destroyed (and stopped) first, while what its callbacks use lives
};

TEST(BadInput, OversizeLengthGetsOnErrorAndACloseWhileOthersAreServed) {
  Watched w;
  RawPeer good(w.server.port());
  RawPeer bad(w.server.port());
  bad.send(test::from_hex("0100000001008000")); // length 8 MiB + 1 (golden vector)
  EXPECT_TRUE(bad.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return w.has_error(tao::errc::frame_too_large); }));
  {
    const std::vector<tao::Error> errors = w.errors.all();
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].message.find("0100000001008000"), std::string::npos) << errors[0].message;
  }
  good.send(test::frame(1, "still fine"));
  EXPECT_EQ(good.read_frame()->second, "still fine");
  EXPECT_TRUE(w.still_serving());
}

TEST(BadInput, LengthOxFFFFFFFFIsRejectedWithoutAllocating) {
  Watched w;
  RawPeer bad(w.server.port());
  bad.send(test::from_hex("01000000ffffffff"));
  EXPECT_TRUE(bad.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return w.has_error(tao::errc::frame_too_large); }));
}

TEST(BadInput, ExactlyTheMaximumIsAccepted) {
  auto o = test::local_server();
  o.max_payload = 1 << 20; // keep the test light; the limit is inclusive whatever its value
  Watched w(o);
  RawPeer p(w.server.port());
  std::string payload(1 << 20, 'm');
  p.send(test::frame(1, payload));
  auto f = p.read_frame(10s);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->second.size(), payload.size());
}

TEST(BadInput, PeerThatDisconnectsMidFrame) {
  Watched w;
  {
    RawPeer p(w.server.port());
    std::string f = test::frame(1, "this frame never ends");
    p.send(f.substr(0, 12));
    std::this_thread::sleep_for(50ms);
  } // closed mid-frame
  EXPECT_TRUE(test::eventually([&] { return w.has_error(tao::errc::truncated_frame); }));
  EXPECT_TRUE(test::eventually([&] { return w.closes.count() == 1; }));
  { EXPECT_EQ(w.closes.reason(0), tao::errc::truncated_frame); }
  EXPECT_TRUE(w.still_serving());
}

TEST(BadInput, PeerThatDisconnectsMidHeader) {
  Watched w;
  {
    RawPeer p(w.server.port());
    p.send(std::string("\x01\x00\x00", 3));
  }
  EXPECT_TRUE(test::eventually([&] { return w.has_error(tao::errc::truncated_frame); }));
  EXPECT_TRUE(w.still_serving());
}

TEST(BadInput, RandomGarbageNeverHurtsTheServer) {
  Watched w;
  std::mt19937 rng(12345);
  for (int i = 0; i < 50; ++i) {
    RawPeer p(w.server.port());
    std::string junk(1 + rng() % 4096, '\0');
    for (auto& ch : junk)
      ch = static_cast<char>(rng());
    p.send(junk);
    if (i % 2) p.reset();
  }
  EXPECT_TRUE(test::eventually([&] { return w.server.connection_count() == 0; }, 10s))
      << w.server.connection_count();
  EXPECT_TRUE(w.still_serving());
}

TEST(BadInput, UnknownTypeWithoutOnMessageIsReportedAndTheConnectionStays) {
  Watched w;
  RawPeer p(w.server.port());
  p.send(test::from_hex("6300000003000000616263")); // type 99 (golden vector)
  p.send(test::from_hex("ffffffff020000007a7a"));   // type -1
  p.send(test::frame(1, "after"));
  auto f = p.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->second, "after");
  EXPECT_TRUE(test::eventually([&] { return w.has_error(tao::errc::unknown_message_type); }));
  EXPECT_EQ(w.closes.count(), 0u);
}

TEST(BadInput, AFloodOfUnknownTypesCannotFloodTheErrorCallbacks) {
  tao::Server s(test::local_server(2));
  std::atomic<int> reports{0};
  s.on_error([&](tao::Connection&, const tao::Error& e) {
    if (e.code == tao::errc::unknown_message_type) ++reports;
  });
  s.start();
  RawPeer p(s.port());
  std::string flood;
  for (int i = 0; i < 10000; ++i)
    flood += test::frame(77, "");
  p.send(flood);
  p.send(test::frame(1, "")); // unregistered in this server too: the last one
  EXPECT_TRUE(test::eventually([&] { return reports.load() >= 8; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_LE(reports.load(), 8 + 10001 / 1024); // the first few, then every 1024th
  EXPECT_EQ(s.connection_count(), 1u);         // and the connection stays, as in Go Tao
}

TEST(BadInput, UnknownTypeGoesToOnMessage) {
  for (std::size_t workers : {0u, 2u}) {
    tao::Server s(test::local_server(workers));
    std::mutex m;
    std::vector<std::pair<int, std::string>> seen;
    s.on_message([&](tao::Connection& c, const tao::Frame& f) {
      std::lock_guard l(m);
      seen.emplace_back(f.type, f.payload.str());
      c.write_raw(f.type, f.payload);
    });
    s.start();
    RawPeer p(s.port());
    p.send(test::from_hex("6300000003000000616263"));
    auto f = p.read_frame();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->first, 99);
    EXPECT_EQ(f->second, "abc");
    std::lock_guard l(m);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0], std::pair(99, std::string("abc")));
  }
}

TEST(BadInput, PayloadThatFailsToDecodeIsAProtocolError) {
  Watched w;
  RawPeer p(w.server.port());
  p.send(test::frame(2, "not twelve bytes")); // Seq needs exactly 12
  EXPECT_TRUE(p.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return w.has_error(tao::errc::decode_failed); }));
  EXPECT_TRUE(w.still_serving());
}

TEST(BadInput, HeartbeatFramesAreAbsorbedAndShortOnesClose) {
  Watched w;
  RawPeer p(w.server.port());
  p.send(test::from_hex("000000000800000015cd853dfe9c9717"));         // valid heartbeat
  p.send(test::from_hex("000000000c000000050000000000000058585858")); // longer: accepted
  p.send(test::frame(1, "alive"));
  EXPECT_EQ(p.read_frame()->first, 0); // the server answers each heartbeat (heartbeat_reply)
  EXPECT_EQ(p.read_frame()->first, 0);
  EXPECT_EQ(p.read_frame()->second, "alive");
  p.send(test::from_hex("000000000400000001020304")); // short: protocol error
  EXPECT_TRUE(p.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return w.has_error(tao::errc::bad_heartbeat); }));
}

TEST(BadInput, AHandlerThatThrowsClosesOnlyItsConnection) {
  for (std::size_t workers : {0u, 2u}) {
    tao::Server s(test::local_server(workers));
    std::atomic<int> errors{0};
    s.handle<Text>([](tao::Connection& c, const Text& m) {
      if (m.text == "throw") throw std::runtime_error("handler failed");
      c.write(m);
    });
    s.on_error([&](tao::Connection&, const tao::Error& e) {
      if (e.code == tao::errc::handler_exception &&
          e.message.find("handler failed") != std::string::npos)
        ++errors;
    });
    s.start();
    RawPeer other(s.port());
    RawPeer p(s.port());
    p.send(test::frame(1, "throw"));
    EXPECT_TRUE(p.closed_by_peer());
    EXPECT_TRUE(test::eventually([&] { return errors == 1; }));
    other.send(test::frame(1, "ok"));
    EXPECT_EQ(other.read_frame()->second, "ok");
  }
}

} // namespace
