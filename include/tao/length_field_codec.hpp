// A length-prefixed codec with the semantics of Netty's LengthFieldBasedFrameDecoder (and, for
// writing, its LengthFieldPrepender): the length field's size, byte order and position, an
// adjustment of its value, header bytes stripped before the handler sees the frame, a maximum.
// Thread safety: immutable after construction; safe to share between connections and threads.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>

#include <tao/codec.hpp>

namespace tao {

/// The options of LengthFieldCodec, named after Netty's constructor arguments.
struct LengthFieldOptions {
  /// Default for initial_bytes_to_strip: strip everything up to the end of the length field.
  static constexpr std::size_t strip_header = std::numeric_limits<std::size_t>::max();

  /// Bytes before the length field (a magic number, a version, ...).
  std::size_t length_field_offset = 0;
  /// Size of the length field: 1, 2, 3, 4 or 8 bytes (unsigned; an 8-byte value over INT64_MAX
  /// is malformed, as Netty reads it as a negative long).
  std::size_t length_field_length = 4;
  /// Byte order of the length field (Netty's default: big-endian, network order).
  std::endian byte_order = std::endian::big;
  /// Added to the field's value to get the number of bytes that follow the length field: e.g.
  /// -4 when the value counts a 4-byte length field itself, +2 when a 2-byte header field
  /// follows the length field and is not counted.
  std::int64_t length_adjustment = 0;
  /// Bytes cut from the front of each frame before the handler sees it; strip_header = offset +
  /// length field size (the handler sees the body only). 0 keeps the whole frame.
  std::size_t initial_bytes_to_strip = strip_header;
  /// The largest whole frame (header included, before stripping). A length over it is a
  /// protocol error at once; unlike Netty (which discards the frame and goes on) tao closes
  /// the connection, as for its own TLV frames.
  std::size_t max_frame_length = std::size_t{1} << 23;
  /// Frames carry no type: every frame decodes as this type, and only this type can be written
  /// (others are refused with errc::unsupported_message_type).
  MessageType message_type = 1;
};

/// Frames prefixed by a length field, Netty style. The payload a handler sees is the frame
/// minus its first initial_bytes_to_strip bytes.
///
/// Writing is the inverse of reading: the codec writes initial_bytes_to_strip zero bytes, then
/// the payload, then puts the right value into the length field, wherever it lies: in the
/// header the codec wrote, or (strip 0) inside the payload, whose bytes there are overwritten.
/// Header bytes other than the length field are zero; a protocol with a magic number or a
/// version there keeps them in the payload (strip fewer bytes) and writes them itself.
class LengthFieldCodec final : public Codec {
public:
  /// Throws std::invalid_argument for a length field size other than 1, 2, 3, 4, 8, a zero
  /// max_frame_length (or one over 2^62), an adjustment beyond +-2^32.
  explicit LengthFieldCodec(LengthFieldOptions options = {});

  DecodeResult decode(ByteView in, Frame& out) const override;
  std::error_code encode(MessageType type, detail::FunctionRef<void(Buffer&)> write_payload,
                         Buffer& out) const override;
  std::size_t max_payload() const noexcept override;

  /// The options it was made with.
  const LengthFieldOptions& options() const noexcept { return o_; }

private:
  std::uint64_t read_field(const char* p) const noexcept;
  void write_field(char* p, std::uint64_t v) const noexcept;

  LengthFieldOptions o_;
  std::size_t end_; // offset + length field size
};

} // namespace tao
