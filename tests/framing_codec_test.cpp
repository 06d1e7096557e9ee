// LengthFieldCodec (Netty's LengthFieldBasedFrameDecoder semantics) and LineCodec, byte by byte.
#include <gtest/gtest.h>

#include "support.hpp"

namespace {

using tao::ByteView;
using tao::DecodeResult;
using tao::Frame;
using tao::LengthFieldCodec;
using tao::LengthFieldOptions;
using tao::LineCodec;
using tao::LineOptions;

const std::string hello = "HELLO, WORLD";

struct Decoded {
  DecodeResult r;
  Frame f;
};

Decoded decode(const tao::Codec& c, std::string_view bytes) {
  Decoded d;
  d.r = c.decode(ByteView(bytes), d.f);
  return d;
}

std::string encode(const tao::Codec& c, std::string_view payload, std::error_code* ec = nullptr,
                   tao::MessageType type = 1) {
  tao::Buffer out;
  out.append("prefix"); // encode appends; what was there stays
  auto e = c.encode(
      type, [&](tao::Buffer& b) { b.append(payload); }, out);
  if (ec) *ec = e;
  EXPECT_EQ(out.str().substr(0, 6), "prefix");
  return out.str().substr(6);
}

/// Decodes `wire` whole, checks the payload, then checks that every proper prefix needs more.
void expect_frame(const tao::Codec& c, const std::string& wire, const std::string& payload) {
  const std::string stream = wire + "trailing bytes of the next frame";
  auto d = decode(c, stream);
  ASSERT_EQ(d.r.status, DecodeResult::frame) << d.r.error.message();
  EXPECT_EQ(d.r.consumed, wire.size());
  EXPECT_EQ(d.f.payload.str(), payload);
  EXPECT_EQ(d.f.type, 1);
  for (std::size_t n = 0; n < wire.size(); ++n)
    EXPECT_EQ(decode(c, wire.substr(0, n)).r.status, DecodeResult::need_more) << n;
}

// The seven examples of Netty's LengthFieldBasedFrameDecoder documentation.
TEST(LengthFieldCodec, NettyExample1_TwoByteLengthNothingStripped) {
  LengthFieldCodec c({.length_field_length = 2, .initial_bytes_to_strip = 0});
  const std::string wire = std::string("\x00\x0c", 2) + hello;
  expect_frame(c, wire, wire);
  EXPECT_EQ(encode(c, wire), wire); // the codec fills the length field inside the payload
  EXPECT_EQ(encode(c, std::string("\xff\xff", 2) + hello), wire);
}

TEST(LengthFieldCodec, NettyExample2_TwoByteLengthStripped) {
  LengthFieldCodec c({.length_field_length = 2}); // strips the header by default
  const std::string wire = std::string("\x00\x0c", 2) + hello;
  expect_frame(c, wire, hello);
  EXPECT_EQ(encode(c, hello), wire);
}

TEST(LengthFieldCodec, NettyExample3_LengthCountsTheWholeFrame) {
  LengthFieldCodec c(
      {.length_field_length = 2, .length_adjustment = -2, .initial_bytes_to_strip = 0});
  const std::string wire = std::string("\x00\x0e", 2) + hello;
  expect_frame(c, wire, wire);
  EXPECT_EQ(encode(c, wire), wire);
}

TEST(LengthFieldCodec, NettyExample4_HeaderBeforeAThreeByteLength) {
  LengthFieldCodec c(
      {.length_field_offset = 2, .length_field_length = 3, .initial_bytes_to_strip = 0});
  const std::string wire = std::string("\xca\xfe\x00\x00\x0c", 5) + hello;
  expect_frame(c, wire, wire);
  EXPECT_EQ(encode(c, wire), wire); // the magic stays: it is part of the payload
}

TEST(LengthFieldCodec, NettyExample5_HeaderAfterTheLength) {
  LengthFieldCodec c(
      {.length_field_length = 3, .length_adjustment = 2, .initial_bytes_to_strip = 0});
  const std::string wire = std::string("\x00\x00\x0c\xca\xfe", 5) + hello;
  expect_frame(c, wire, wire);
  EXPECT_EQ(encode(c, wire), wire);
}

TEST(LengthFieldCodec, NettyExample6_StripTheFirstHeaderAndTheLength) {
  LengthFieldCodec c({.length_field_offset = 1,
                      .length_field_length = 2,
                      .length_adjustment = 1,
                      .initial_bytes_to_strip = 3});
  const std::string wire = std::string("\xca\x00\x0c\xfe", 4) + hello;
  expect_frame(c, wire, "\xfe" + hello);
  // Written back, the stripped header byte is zero (the codec cannot know it).
  EXPECT_EQ(encode(c, "\xfe" + hello), std::string("\x00\x00\x0c\xfe", 4) + hello);
}

TEST(LengthFieldCodec, NettyExample7_LengthCountsTheWholeFrameAndHeadersAreStripped) {
  LengthFieldCodec c({.length_field_offset = 1,
                      .length_field_length = 2,
                      .length_adjustment = -3,
                      .initial_bytes_to_strip = 3});
  const std::string wire = std::string("\xca\x00\x10\xfe", 4) + hello;
  expect_frame(c, wire, "\xfe" + hello);
  EXPECT_EQ(encode(c, "\xfe" + hello), std::string("\x00\x00\x10\xfe", 4) + hello);
}

TEST(LengthFieldCodec, EveryFieldSizeAndByteOrderRoundTrips) {
  for (std::size_t n : {1u, 2u, 3u, 4u, 8u}) {
    for (auto order : {std::endian::big, std::endian::little}) {
      SCOPED_TRACE(testing::Message() << n << (order == std::endian::big ? " BE" : " LE"));
      LengthFieldCodec c({.length_field_length = n, .byte_order = order});
      for (std::size_t size : {0u, 1u, 200u}) {
        const std::string payload(size, 'p');
        const std::string wire = encode(c, payload);
        ASSERT_EQ(wire.size(), n + size);
        // The value sits in the expected byte: last for big-endian, first for little-endian.
        const auto low = static_cast<unsigned char>(wire[order == std::endian::big ? n - 1 : 0]);
        EXPECT_EQ(low, size);
        expect_frame(c, wire, payload);
      }
    }
  }
}

TEST(LengthFieldCodec, LittleEndianFourByteFieldReadsLikeGoTaosLength) {
  LengthFieldCodec c({.length_field_length = 4, .byte_order = std::endian::little});
  expect_frame(c, std::string("\x05\x00\x00\x00hello", 9), "hello");
}

TEST(LengthFieldCodec, OversizeLengthFailsAtOnceWithoutWaitingForTheBody) {
  LengthFieldCodec c({.length_field_length = 4, .max_frame_length = 1000});
  // 996 + 4 = 1000 is the maximum (inclusive, the whole frame counts)
  auto ok = decode(c, std::string("\x00\x00\x03\xe4", 4));
  EXPECT_EQ(ok.r.status, DecodeResult::need_more);
  auto big = decode(c, std::string("\x00\x00\x03\xe5", 4));
  EXPECT_EQ(big.r.status, DecodeResult::invalid);
  EXPECT_EQ(big.r.error, tao::errc::frame_too_large);
  auto huge = decode(c, std::string("\xff\xff\xff\xff", 4));
  EXPECT_EQ(huge.r.error, tao::errc::frame_too_large);
}

TEST(LengthFieldCodec, EightByteLengthsNearTheTopNeitherOverflowNorPass) {
  LengthFieldCodec c({.length_field_length = 8, .length_adjustment = -8});
  EXPECT_EQ(decode(c, std::string(8, '\xff')).r.error, tao::errc::malformed_frame); // "negative"
  EXPECT_EQ(decode(c, std::string("\x7f\xff\xff\xff\xff\xff\xff\xff", 8)).r.error,
            tao::errc::frame_too_large);
}

TEST(LengthFieldCodec, AdjustedLengthShorterThanTheHeaderIsMalformed) {
  LengthFieldCodec c(
      {.length_field_length = 2, .length_adjustment = -2, .initial_bytes_to_strip = 0});
  auto d = decode(c, std::string("\x00\x01", 2)); // claims 1 byte in all, less than the field
  EXPECT_EQ(d.r.status, DecodeResult::invalid);
  EXPECT_EQ(d.r.error, tao::errc::malformed_frame);
}

TEST(LengthFieldCodec, StrippingMoreThanTheFrameIsMalformed) {
  LengthFieldCodec c({.length_field_length = 1, .initial_bytes_to_strip = 4});
  auto d = decode(c, std::string("\x01x", 2)); // a 2-byte frame, 4 bytes to strip
  EXPECT_EQ(d.r.error, tao::errc::malformed_frame);
  // A frame long enough is fine.
  expect_frame(c,
               std::string("\x05"
                           "abcde",
                           6),
               "de");
}

TEST(LengthFieldCodec, EncodeRefusesAndLeavesTheBufferAsItWas) {
  LengthFieldCodec c({.length_field_length = 1, .max_frame_length = 1000});
  std::error_code ec;
  EXPECT_EQ(encode(c, std::string(255, 'x'), &ec).size(), 256u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(encode(c, std::string(256, 'x'), &ec), ""); // does not fit one byte
  EXPECT_EQ(ec, tao::errc::frame_too_large);
  LengthFieldCodec small({.length_field_length = 2, .max_frame_length = 10});
  EXPECT_EQ(encode(small, std::string(9, 'x'), &ec), "");
  EXPECT_EQ(ec, tao::errc::frame_too_large);
  EXPECT_EQ(encode(small, "x", &ec, 2), ""); // a type the codec does not carry
  EXPECT_EQ(ec, tao::errc::unsupported_message_type);
  LengthFieldCodec whole({.length_field_length = 4, .initial_bytes_to_strip = 0});
  EXPECT_EQ(encode(whole, "ab", &ec), ""); // too short to hold its own length field
  EXPECT_EQ(ec, tao::errc::malformed_frame);
}

TEST(LengthFieldCodec, FramesCarryTheConfiguredType) {
  LengthFieldCodec c({.message_type = 42});
  auto d = decode(c, std::string("\x00\x00\x00\x01x", 5));
  EXPECT_EQ(d.f.type, 42);
  std::error_code ec;
  EXPECT_EQ(encode(c, "x", &ec, 42), std::string("\x00\x00\x00\x01x", 5));
  EXPECT_EQ(c.max_payload(), (std::size_t{1} << 23) - 4);
}

TEST(LengthFieldCodec, BadOptionsAreASetupError) {
  EXPECT_THROW(LengthFieldCodec({.length_field_length = 5}), std::invalid_argument);
  EXPECT_THROW(LengthFieldCodec({.length_field_length = 0}), std::invalid_argument);
  EXPECT_THROW(LengthFieldCodec({.max_frame_length = 0}), std::invalid_argument);
  EXPECT_THROW(LengthFieldCodec({.length_adjustment = std::int64_t{1} << 40}),
               std::invalid_argument);
}

TEST(LineCodec, SplitsOnLfAndCrLfWithoutTheDelimiter) {
  LineCodec c;
  expect_frame(c, "hello\n", "hello");
  expect_frame(c, "hello\r\n", "hello");
  expect_frame(c, "\n", "");
  expect_frame(c, "a\rb\n", "a\rb"); // a lone \r inside the line is data
  const std::string two = "one\r\ntwo\n";
  auto d = decode(c, two);
  ASSERT_EQ(d.r.status, DecodeResult::frame);
  EXPECT_EQ(d.f.payload.str(), "one");
  auto d2 = decode(c, std::string_view(two).substr(d.r.consumed));
  EXPECT_EQ(d2.f.payload.str(), "two");
}

TEST(LineCodec, TheMaximumIsInclusiveAndAnythingLongerFails) {
  LineCodec c({.max_line_length = 8});
  expect_frame(c, "12345678\n", "12345678");
  expect_frame(c, "12345678\r\n", "12345678");
  auto over = decode(c, "123456789\n");
  EXPECT_EQ(over.r.status, DecodeResult::invalid);
  EXPECT_EQ(over.r.error, tao::errc::frame_too_large);
}

TEST(LineCodec, AMissingDelimiterFailsAsSoonAsNoValidLineCanFit) {
  LineCodec c({.max_line_length = 8});
  EXPECT_EQ(decode(c, "123456789").r.status, DecodeResult::need_more); // could still be "...\r\n"?
  auto d = decode(c, "1234567890");                                    // no: 10 bytes, no "\n"
  EXPECT_EQ(d.r.status, DecodeResult::invalid);
  EXPECT_EQ(d.r.error, tao::errc::frame_too_large);
  // A megabyte without a newline is rejected after looking at max + 2 bytes only.
  EXPECT_EQ(decode(c, std::string(1 << 20, 'x')).r.error, tao::errc::frame_too_large);
  EXPECT_EQ(decode(c, "").r.status, DecodeResult::need_more);
}

TEST(LineCodec, EncodeAppendsTheDelimiterAndRefusesWhatCannotBeALine) {
  LineCodec lf;
  LineCodec crlf({.delimiter = "\r\n"});
  std::error_code ec;
  EXPECT_EQ(encode(lf, "hi", &ec), "hi\n");
  EXPECT_EQ(encode(crlf, "hi", &ec), "hi\r\n");
  EXPECT_EQ(encode(lf, "two\nlines", &ec), "");
  EXPECT_EQ(ec, tao::errc::malformed_frame);
  LineCodec small({.max_line_length = 4});
  EXPECT_EQ(encode(small, "12345", &ec), "");
  EXPECT_EQ(ec, tao::errc::frame_too_large);
  EXPECT_EQ(encode(lf, "hi", &ec, tao::heartbeat_type), ""); // lines have no type field
  EXPECT_EQ(ec, tao::errc::unsupported_message_type);
}

TEST(LineCodec, BadOptionsAreASetupError) {
  EXPECT_THROW(LineCodec({.delimiter = "\r"}), std::invalid_argument);
  EXPECT_THROW(LineCodec({.max_line_length = 0}), std::invalid_argument);
}

} // namespace
