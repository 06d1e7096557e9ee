// LengthFieldCodec and LineCodec through a real server and client on 127.0.0.1.
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using test::RawPeer;
using test::Text;

/// An echo server (type 1 = Text) on `codec`, recording errors.
struct CodecServer {
  explicit CodecServer(std::shared_ptr<const tao::Codec> codec, std::size_t workers = 0)
      : server([&] {
          auto o = test::local_server(workers);
          o.codec = std::move(codec);
          return o;
        }()) {
    server.handle<Text>([](tao::Connection& c, const Text& m) { c.write(Text{"echo " + m.text}); });
    server.on_error(errors.recorder());
    server.start();
  }
  test::ErrorLog errors;
  tao::Server server;
};

/// 2-byte big-endian length | body.
std::string be16(std::string_view body) {
  std::string s;
  s.push_back(static_cast<char>(body.size() >> 8));
  s.push_back(static_cast<char>(body.size() & 0xff));
  s.append(body);
  return s;
}

TEST(LengthFieldNet, RawPeerFramesAreCutReassembledAndAnswered) {
  auto codec = std::make_shared<tao::LengthFieldCodec>(
      tao::LengthFieldOptions{.length_field_length = 2, .max_frame_length = 1024});
  CodecServer s(codec);
  RawPeer p(s.server.port());
  // Two frames in one write, then one split byte by byte.
  ASSERT_TRUE(p.send(be16("one") + be16("two")));
  for (char ch : be16("three")) {
    ASSERT_TRUE(p.send(std::string(1, ch)));
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(p.read_exact(be16("echo one").size()), be16("echo one"));
  EXPECT_EQ(p.read_exact(be16("echo two").size()), be16("echo two"));
  EXPECT_EQ(p.read_exact(be16("echo three").size()), be16("echo three"));
}

TEST(LengthFieldNet, ClientAndServerTalkThroughTheSameCodec) {
  auto codec = std::make_shared<tao::LengthFieldCodec>(tao::LengthFieldOptions{
      .length_field_offset = 2, .length_field_length = 4, .byte_order = std::endian::little});
  std::mutex m;
  std::vector<std::string> got;
  CodecServer s(codec, 2);
  auto o = test::local_client(s.server.port());
  o.codec = codec;
  o.heartbeat.interval = 0ms; // the frames carry no type, so no heartbeat can be sent
  tao::Client client(o);
  client.handle<Text>([&](tao::Connection&, const Text& t) {
    std::lock_guard l(m);
    got.push_back(t.text);
  });
  ASSERT_FALSE(client.connect());
  for (int i = 0; i < 100; ++i)
    ASSERT_FALSE(client.write(Text{std::to_string(i)}));
  EXPECT_EQ(client.write(tao::RawMessage{5, "x"}), tao::errc::unsupported_message_type);
  ASSERT_TRUE(test::eventually([&] {
    std::lock_guard l(m);
    return got.size() == 100;
  }));
  std::lock_guard l(m);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(got[static_cast<std::size_t>(i)], "echo " + std::to_string(i));
}

TEST(LengthFieldNet, OversizeAndTruncatedFramesCloseOnlyThatConnection) {
  auto codec = std::make_shared<tao::LengthFieldCodec>(
      tao::LengthFieldOptions{.length_field_length = 2, .max_frame_length = 100});
  CodecServer s(codec);
  RawPeer good(s.server.port());
  {
    RawPeer big(s.server.port());
    big.send(std::string("\x00\x63", 2)); // 99 + 2 > 100: refused before the body arrives
    EXPECT_TRUE(big.closed_by_peer());
  }
  EXPECT_TRUE(test::eventually([&] { return s.errors.has(tao::errc::frame_too_large); }));
  {
    RawPeer cut(s.server.port());
    cut.send(be16("a frame that never ends").substr(0, 7));
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(test::eventually([&] { return s.errors.has(tao::errc::truncated_frame); }));
  ASSERT_TRUE(good.send(be16("still here")));
  EXPECT_EQ(good.read_exact(be16("echo still here").size()), be16("echo still here"));
}

TEST(LineNet, LinesWithLfOrCrLfInAnyPiecesAreAnsweredLineByLine) {
  CodecServer s(std::make_shared<tao::LineCodec>(tao::LineOptions{.delimiter = "\r\n"}), 2);
  RawPeer p(s.server.port());
  ASSERT_TRUE(p.send("hello\r\nwor"));
  std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(p.send("ld\n\n"));
  const std::string want = "echo hello\r\necho world\r\necho \r\n";
  EXPECT_EQ(p.read_exact(want.size()), want);
}

TEST(LineNet, ALineWithoutDelimiterPastTheMaximumClosesTheConnection) {
  CodecServer s(std::make_shared<tao::LineCodec>(tao::LineOptions{.max_line_length = 64}));
  RawPeer good(s.server.port());
  RawPeer bad(s.server.port());
  bad.send(std::string(1000, 'x'));
  EXPECT_TRUE(bad.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return s.errors.has(tao::errc::frame_too_large); }));
  {
    RawPeer cut(s.server.port());
    cut.send("no newline before the peer leaves");
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(test::eventually([&] { return s.errors.has(tao::errc::truncated_frame); }));
  good.send("fine\n");
  EXPECT_EQ(good.read_exact(10), "echo fine\n");
  // A reply that would not be one line is refused at write(), nothing is sent.
  tao::Client client([&] {
    auto o = test::local_client(s.server.port());
    o.codec = std::make_shared<tao::LineCodec>();
    o.heartbeat.interval = 0ms;
    return o;
  }());
  ASSERT_FALSE(client.connect());
  EXPECT_EQ(client.write(Text{"two\nlines"}), tao::errc::malformed_frame);
}

} // namespace
