// The TLV codec against the golden frames captured from Go Tao v1.6.
#include <fstream>
#include <sstream>

#include <boost/json/src.hpp> // header-only Boost.JSON, compiled into this test only
#include <gtest/gtest.h>

#include "support.hpp"

namespace {

struct Vector {
  std::string name;
  std::string bytes;
  bool valid;
  std::int32_t type;
  std::uint32_t length;
  std::optional<std::string> payload; // null for header-only (8 MiB) entries
};

std::vector<Vector> load_vectors() {
  std::ifstream in(TAO_TEST_DATA "/tao-go-v1.6-frames.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = boost::json::parse(ss.str());
  std::vector<Vector> out;
  for (const auto& e : doc.as_array()) {
    const auto& o = e.as_object();
    const auto& d = o.at("decoded").as_object();
    Vector v;
    v.name = o.at("name").as_string().c_str();
    v.bytes = test::from_hex(o.at("hex").as_string().c_str());
    v.valid = o.at("valid").as_bool();
    v.type = static_cast<std::int32_t>(d.at("type").to_number<std::int64_t>());
    v.length = static_cast<std::uint32_t>(d.at("length").to_number<std::int64_t>());
    if (!d.at("payload_hex").is_null())
      v.payload = test::from_hex(d.at("payload_hex").as_string().c_str());
    out.push_back(std::move(v));
  }
  return out;
}

TEST(GoldenFrames, FileHasTheCapturedFrames) {
  auto vs = load_vectors();
  EXPECT_GE(vs.size(), 13u);
}

TEST(GoldenFrames, ValidFramesDecodeAndReencodeByteForByte) {
  tao::TlvCodec codec;
  int checked = 0;
  for (const auto& v : load_vectors()) {
    if (!v.valid || !v.payload) continue;
    SCOPED_TRACE(v.name);
    tao::Frame f;
    auto r = codec.decode(tao::ByteView(v.bytes), f);
    ASSERT_EQ(r.status, tao::DecodeResult::frame);
    EXPECT_EQ(r.consumed, v.bytes.size());
    EXPECT_EQ(f.type, v.type);
    EXPECT_EQ(f.payload.size(), v.length);
    EXPECT_EQ(f.payload.str(), *v.payload);

    tao::Buffer out;
    ASSERT_FALSE(codec.encode(
        f.type, [&](tao::Buffer& b) { b.append(f.payload); }, out));
    EXPECT_EQ(out.str(), v.bytes);
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

TEST(GoldenFrames, HeartbeatsDecodeAsGoTaoDoes) {
  for (const auto& v : load_vectors()) {
    if (v.type != tao::heartbeat_type || !v.payload) continue;
    SCOPED_TRACE(v.name);
    auto hb = tao::Heartbeat::decode(tao::ByteView(*v.payload));
    EXPECT_EQ(hb.has_value(), v.valid); // shorter than 8 bytes: rejected; longer: first 8 bytes
    if (v.name == "heartbeat_ts_1700000000123456789") {
      ASSERT_TRUE(hb);
      EXPECT_EQ(hb->timestamp_ns, 1700000000123456789);
      tao::Buffer out;
      tao::TlvCodec().encode(
          0, [&](tao::Buffer& b) { hb->encode(b); }, out);
      EXPECT_EQ(out.str(), v.bytes);
    }
  }
}

TEST(GoldenFrames, LengthLimitIsInclusiveAtEightMiB) {
  tao::TlvCodec codec;
  for (const auto& v : load_vectors()) {
    if (v.payload) continue; // the header-only entries
    SCOPED_TRACE(v.name);
    tao::Frame f;
    auto r = codec.decode(tao::ByteView(v.bytes), f);
    if (v.valid) {
      EXPECT_EQ(v.length, 8388608u);
      EXPECT_EQ(r.status, tao::DecodeResult::need_more);
      std::string whole = v.bytes + std::string(v.length, 'x');
      r = codec.decode(tao::ByteView(whole), f);
      ASSERT_EQ(r.status, tao::DecodeResult::frame);
      EXPECT_EQ(f.payload.size(), v.length);
    } else {
      EXPECT_EQ(r.status, tao::DecodeResult::invalid);
      EXPECT_EQ(r.error, tao::errc::frame_too_large);
    }
  }
}

TEST(TlvCodec, NeedsMoreUntilTheWholeFrameIsThere) {
  tao::TlvCodec codec;
  std::string f = test::frame(7, "abcdef");
  for (std::size_t i = 0; i < f.size(); ++i) {
    tao::Frame out;
    EXPECT_EQ(codec.decode(tao::ByteView(f.data(), i), out).status, tao::DecodeResult::need_more)
        << i;
  }
}

TEST(TlvCodec, CutsSeveralFramesFromOneBuffer) {
  tao::TlvCodec codec;
  std::string all = test::frame(1, "a") + test::frame(2, "") + test::frame(-1, "zz");
  tao::ByteView in(all);
  std::vector<std::pair<int, std::string>> got;
  while (!in.empty()) {
    tao::Frame f;
    auto r = codec.decode(in, f);
    ASSERT_EQ(r.status, tao::DecodeResult::frame);
    got.emplace_back(f.type, f.payload.str());
    in = in.subview(r.consumed);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], std::pair(1, std::string("a")));
  EXPECT_EQ(got[1], std::pair(2, std::string()));
  EXPECT_EQ(got[2], std::pair(-1, std::string("zz")));
}

TEST(TlvCodec, EncodeRefusesPayloadsOverTheMaximumAndLeavesTheBufferAlone) {
  tao::TlvCodec codec(16);
  tao::Buffer out;
  out.append("keep");
  auto ec = codec.encode(
      1, [](tao::Buffer& b) { b.append(std::string(17, 'x')); }, out);
  EXPECT_EQ(ec, tao::errc::frame_too_large);
  EXPECT_EQ(out.str(), "keep");
  EXPECT_FALSE(codec.encode(
      1, [](tao::Buffer& b) { b.append(std::string(16, 'x')); }, out));
}

TEST(TlvCodec, ConfigurableMaximum) {
  tao::TlvCodec codec(100);
  tao::Frame f;
  std::string h = test::frame(1, std::string(101, 'x'));
  auto r = codec.decode(tao::ByteView(h), f);
  EXPECT_EQ(r.status, tao::DecodeResult::invalid);
  EXPECT_EQ(r.error, tao::errc::frame_too_large);
  EXPECT_EQ(codec.max_payload(), 100u);
}

TEST(Errors, HaveATaoCategoryAndReadableMessages) {
  std::error_code ec = tao::errc::send_queue_full;
  EXPECT_STREQ(ec.category().name(), "tao");
  EXPECT_NE(ec.message().find("send queue full"), std::string::npos);
  EXPECT_EQ(ec, tao::errc::send_queue_full);
}

struct Throws {
  static constexpr tao::MessageType type = 9;
  void encode(tao::Buffer&) const {}
  static Throws decode(tao::ByteView) { throw std::runtime_error("bad"); }
};

TEST(Messages, DecodeFailuresBecomeEmpty) {
  EXPECT_FALSE(tao::detail::decode_message<Throws>(tao::ByteView("x")));
  EXPECT_FALSE(tao::detail::decode_message<test::Seq>(tao::ByteView("short")));
  EXPECT_EQ(tao::detail::decode_message<test::Text>(tao::ByteView("hi"))->text, "hi");
}

} // namespace
