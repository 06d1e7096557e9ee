// Typed messages: a plain C++ type with a type number, encode and decode.
// Thread safety: stateless; encode/decode run on whichever thread writes or reads.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include <tao/buffer.hpp>

namespace tao {

/// A frame's type number (Go Tao's int32). Type 0 is the heartbeat.
using MessageType = std::int32_t;

/// The heartbeat's type number (Go Tao's HeartBeat).
inline constexpr MessageType heartbeat_type = 0;

/// A message type: `static constexpr tao::MessageType type`, `void encode(Buffer&) const`, and
/// `static T decode(ByteView)` (which may throw) or `static std::optional<T> decode(ByteView)`
/// (empty = cannot decode). A decode failure is a protocol error on that connection.
/// A message whose decode views the payload instead of copying it (tao::Flat) also has
/// `void detach()`, which makes it own its bytes; handle<T> calls it before the message goes to
/// the worker pool, since the payload is only valid during the read that delivered it.
/// Adapters for schema messages: tao::Flat (tao/flatbuffers.hpp), tao::Proto (tao/protobuf.hpp).
template <class T>
concept Message = requires(const T& m, Buffer& out, ByteView in) {
  { T::type } -> std::convertible_to<MessageType>;
  m.encode(out);
  T::decode(in);
};

/// A frame as it arrived: its type and payload. The payload views the connection's read buffer
/// (or a copy owned by the task, for handlers on the worker pool) and is valid for the call only.
struct Frame {
  MessageType type = 0; ///< The frame's type number.
  ByteView payload;     ///< Its payload bytes.
};

/// A message with a runtime type number and raw bytes, for writing frames the registry does not
/// know about (Go Tao's raw Message + type).
struct RawMessage {
  MessageType type = 0; ///< The frame's type number.
  std::string payload;  ///< Its payload bytes, written as they are.
};

/// The heartbeat message (type 0): the sender's clock as int64 nanoseconds since the Unix epoch.
struct Heartbeat {
  static constexpr MessageType type = heartbeat_type; ///< 0.
  std::int64_t timestamp_ns = 0;                      ///< The sender's clock.
  /// The timestamp as 8 bytes, little-endian.
  void encode(Buffer& out) const { out.append_le(timestamp_ns); }
  /// Reads the first 8 bytes; longer payloads are accepted, shorter ones fail (as in Go Tao).
  static std::optional<Heartbeat> decode(ByteView in) {
    if (in.size() < 8) return std::nullopt;
    return Heartbeat{in.read_le<std::int64_t>(0)};
  }
};

namespace detail {
/// Decodes T from a payload, whichever decode style T has. Empty on failure (exceptions included).
template <Message T> std::optional<T> decode_message(ByteView in) {
  using R = decltype(T::decode(in));
  try {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, std::optional<T>>) {
      return T::decode(in);
    } else {
      return std::optional<T>(T::decode(in));
    }
  } catch (...) {
    return std::nullopt;
  }
}
} // namespace detail

} // namespace tao
