// Codecs cut frames out of a byte stream and write frames into one. The default is Go Tao's
// type-length-value codec; implement Codec for a custom wire format.
// Thread safety: a Codec is shared by every connection of a server or client and is called from
// several threads at once, so implementations must be stateless (or internally synchronised).
#pragma once

#include <cstddef>
#include <memory>
#include <system_error>

#include <tao/buffer.hpp>
#include <tao/detail/function_ref.hpp>
#include <tao/message.hpp>

namespace tao {

/// The outcome of Codec::decode.
struct DecodeResult {
  /// The possible outcomes.
  enum Status {
    frame,     ///< A whole frame: `out` is set and `consumed` bytes make it.
    need_more, ///< No whole frame yet: call again with more input.
    invalid,   ///< The input is not a valid frame: `error` says why; the connection is closed.
  };
  /// What decode found.
  Status status = need_more;
  std::size_t consumed = 0; ///< Bytes the frame took from the input (status == frame).
  std::error_code error;    ///< Why the input is bad (status == invalid).
};

/// Frames a byte stream. Implement it for a custom wire format (docs/custom-codec.md).
/// Thread safety: one codec is shared by all connections and called from several threads at
/// once; implementations must be stateless (or internally synchronised).
class Codec {
public:
  virtual ~Codec() = default; ///< Codecs are owned through std::shared_ptr<const Codec>.

  /// Cuts one frame from the front of `in`. On `frame`, `out.payload` views bytes inside `in`
  /// and `consumed` says how many bytes the frame took. `need_more` asks for more input; `error`
  /// is a protocol error and the connection will be closed.
  virtual DecodeResult decode(ByteView in, Frame& out) const = 0;

  /// Appends one whole frame of `type` to `out`; `write_payload` appends the payload. Returns an
  /// error (and leaves `out` as it was) if the frame cannot be encoded, e.g. too large.
  virtual std::error_code encode(MessageType type, detail::FunctionRef<void(Buffer&)> write_payload,
                                 Buffer& out) const = 0;

  /// The largest payload this codec accepts, in bytes.
  virtual std::size_t max_payload() const noexcept = 0;
};

/// Go Tao's TypeLengthValueCodec: int32 LE type | uint32 LE payload length | payload.
/// A length over max_payload (default 8 MiB, inclusive) is a protocol error, as in Go Tao.
/// Thread safety: stateless; safe from any thread.
class TlvCodec final : public Codec {
public:
  /// Type and length: 4 + 4 bytes (Go Tao's MessageTypeBytes + MessageLenBytes).
  static constexpr std::size_t header_size = 8;
  /// 8 MiB (Go Tao's MessageMaxBytes).
  static constexpr std::size_t default_max_payload = std::size_t{1} << 23;

  /// A codec that accepts payloads up to `max_payload` bytes, inclusive.
  explicit TlvCodec(std::size_t max_payload = default_max_payload) noexcept
      : max_payload_(max_payload) {}

  DecodeResult decode(ByteView in, Frame& out) const override;
  std::error_code encode(MessageType type, detail::FunctionRef<void(Buffer&)> write_payload,
                         Buffer& out) const override;
  std::size_t max_payload() const noexcept override { return max_payload_; }

private:
  std::size_t max_payload_;
};

} // namespace tao
