// The worked example of docs/custom-codec.md, run for real: the codec below is the one the page
// shows (keep them the same). A server and a client that share it exchange messages, and bad
// input (a wrong magic, an oversize length) gets a protocol error and a close.
#include <algorithm>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using namespace std::chrono_literals;

// ---- from docs/custom-codec.md ----
/// | 'T' 'A' | type: uint16 big-endian | length: uint32 big-endian | payload |
class TaggedCodec final : public tao::Codec {
public:
  static constexpr std::size_t header_size = 8;

  explicit TaggedCodec(std::size_t max_payload = 64 * 1024) noexcept : max_payload_(max_payload) {}

  tao::DecodeResult decode(tao::ByteView in, tao::Frame& out) const override {
    if (in.size() < header_size) return {tao::DecodeResult::need_more, 0, {}};
    if (in[0] != 'T' || in[1] != 'A')
      return {tao::DecodeResult::invalid, 0, make_error_code(tao::errc::malformed_frame)};
    const std::uint32_t length = be(in, 4, 4);
    // Checked from the header, before waiting for the payload: memory stays bounded.
    if (length > max_payload_)
      return {tao::DecodeResult::invalid, 0, make_error_code(tao::errc::frame_too_large)};
    if (in.size() - header_size < length) return {tao::DecodeResult::need_more, 0, {}};
    out.type = static_cast<tao::MessageType>(be(in, 2, 2));
    out.payload = in.subview(header_size, length); // a view: no copy
    return {tao::DecodeResult::frame, header_size + length, {}};
  }

  std::error_code encode(tao::MessageType type,
                         tao::detail::FunctionRef<void(tao::Buffer&)> write_payload,
                         tao::Buffer& out) const override {
    if (type < 0 || type > 0xffff) return make_error_code(tao::errc::malformed_frame);
    const std::size_t start = out.size();
    out.append("TA");
    put_be(out, static_cast<std::uint32_t>(type), 2);
    put_be(out, 0, 4); // the length, patched below
    write_payload(out);
    const std::size_t length = out.size() - start - header_size;
    if (length > max_payload_) {
      out.resize(start); // leave `out` as it was
      return make_error_code(tao::errc::frame_too_large);
    }
    for (int i = 0; i < 4; ++i)
      out.data()[start + 4 + i] = static_cast<char>(length >> (8 * (3 - i)));
    return {};
  }

  std::size_t max_payload() const noexcept override { return max_payload_; }

private:
  static std::uint32_t be(tao::ByteView in, std::size_t at, std::size_t n) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
      v = (v << 8) | static_cast<unsigned char>(in[at + i]);
    return v;
  }
  static void put_be(tao::Buffer& out, std::uint32_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out.push_back(static_cast<char>(v >> (8 * i)));
  }

  std::size_t max_payload_;
};
// ---- end of the page's code ----

std::string tagged(std::uint16_t type, std::string_view payload) {
  tao::Buffer b;
  TaggedCodec().encode(
      type, [&](tao::Buffer& o) { o.append(payload); }, b);
  return b.str();
}

TEST(CustomCodecDoc, EncodesTheDocumentedBytes) {
  EXPECT_EQ(tagged(0x0102, "hi"), std::string("TA\x01\x02\x00\x00\x00\x02hi", 10));
  tao::Frame f;
  const std::string bytes = tagged(7, "hello");
  EXPECT_EQ(TaggedCodec().decode(tao::ByteView(bytes).subview(0, 9), f).status,
            tao::DecodeResult::need_more);
  const tao::DecodeResult r = TaggedCodec().decode(tao::ByteView(bytes), f);
  ASSERT_EQ(r.status, tao::DecodeResult::frame);
  EXPECT_EQ(r.consumed, bytes.size());
  EXPECT_EQ(f.type, 7);
  EXPECT_EQ(f.payload.view(), "hello");
  tao::Buffer out;
  EXPECT_EQ(TaggedCodec().encode(
                70000, [](tao::Buffer&) {}, out),
            tao::errc::malformed_frame);
  EXPECT_TRUE(out.empty());
}

struct TaggedEcho {
  TaggedEcho() : server(options()) {
    server.handle<test::Text>([](tao::Connection& c, const test::Text& m) { c.write(m); });
    server.on_error([this](tao::Connection&, const tao::Error& e) {
      std::lock_guard l(mutex);
      errors.push_back(e.code);
    });
    server.start();
  }
  static tao::ServerOptions options() {
    tao::ServerOptions o = test::local_server();
    o.codec = std::make_shared<const TaggedCodec>();
    return o;
  }
  bool has_error(tao::errc e) {
    std::lock_guard l(mutex);
    return std::find(errors.begin(), errors.end(), e) != errors.end();
  }
  std::mutex mutex;
  std::vector<std::error_code> errors;
  tao::Server server;
};

TEST(CustomCodecDoc, ServerAndClientTalkThroughIt) {
  TaggedEcho echo;
  tao::ClientOptions o = test::local_client(echo.server.port());
  o.codec = std::make_shared<const TaggedCodec>();
  tao::Client client(o);
  std::promise<std::string> got;
  client.handle<test::Text>([&](tao::Connection&, const test::Text& m) { got.set_value(m.text); });
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.write(test::Text{"through the tagged codec"}));
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), "through the tagged codec");

  // The bytes on the wire are the codec's own.
  test::RawPeer raw(echo.server.port());
  ASSERT_TRUE(raw.send(tagged(1, "raw")));
  EXPECT_EQ(raw.read_exact(11), tagged(1, "raw"));
}

TEST(CustomCodecDoc, BadMagicAndOversizeLengthAreProtocolErrors) {
  TaggedEcho echo;
  test::RawPeer bad_magic(echo.server.port());
  ASSERT_TRUE(bad_magic.send(test::frame(1, "a TLV frame is not ours")));
  EXPECT_TRUE(bad_magic.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return echo.has_error(tao::errc::malformed_frame); }));

  test::RawPeer oversize(echo.server.port());
  ASSERT_TRUE(oversize.send(std::string("TA\x00\x01\x7f\xff\xff\xff", 8)));
  EXPECT_TRUE(oversize.closed_by_peer());
  EXPECT_TRUE(test::eventually([&] { return echo.has_error(tao::errc::frame_too_large); }));

  test::RawPeer good(echo.server.port()); // the server keeps serving
  ASSERT_TRUE(good.send(tagged(1, "still here")));
  EXPECT_EQ(good.read_exact(18), tagged(1, "still here"));
}

} // namespace
