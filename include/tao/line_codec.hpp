// A text-line codec: each frame is one line ended by "\n" or "\r\n", as telnet and nc send them.
// Thread safety: immutable after construction; safe to share between connections and threads.
#pragma once

#include <cstddef>
#include <string>

#include <tao/codec.hpp>

namespace tao {

/// The options of a LineCodec.
struct LineOptions {
  /// The longest line, delimiter excluded. A longer line, or this many bytes (plus room for the
  /// delimiter) without a "\n", is a protocol error (errc::frame_too_large) and closes the
  /// connection.
  std::size_t max_line_length = 8192;
  /// Appended to each line written: "\n" or "\r\n" (what telnet clients expect).
  std::string delimiter = "\n";
  /// Lines carry no type: every line decodes as this type, and only this type can be written
  /// (others are refused with errc::unsupported_message_type).
  MessageType message_type = 1;
};

/// Reads lines ended by "\n" or "\r\n" (the delimiter is not part of the payload) and writes a
/// payload followed by the configured delimiter. A payload that contains "\n" cannot be written
/// (errc::malformed_frame): it would arrive as two lines.
class LineCodec final : public Codec {
public:
  /// Throws std::invalid_argument if the delimiter is not "\n" or "\r\n", or the maximum is 0.
  explicit LineCodec(LineOptions options = {});

  DecodeResult decode(ByteView in, Frame& out) const override;
  std::error_code encode(MessageType type, detail::FunctionRef<void(Buffer&)> write_payload,
                         Buffer& out) const override;
  std::size_t max_payload() const noexcept override { return o_.max_line_length; }

  /// The options it was made with.
  const LineOptions& options() const noexcept { return o_; }

private:
  LineOptions o_;
};

} // namespace tao
