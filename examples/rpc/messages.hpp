// The request/response example's messages. A request carries an id that the reply repeats, so the
// client can match replies to requests that are still waiting (correlation id), in any order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <tao/tao.hpp>

namespace rpc {

/// Asks the server to upper-case `text`, taking `work_ms` milliseconds (a slow backend, simulated).
/// Payload: id (uint64 LE) | work_ms (uint32 LE) | text.
struct Request {
  static constexpr tao::MessageType type = 2;
  std::uint64_t id = 0;
  std::uint32_t work_ms = 0;
  std::string text;

  void encode(tao::Buffer& out) const {
    out.append_le(id);
    out.append_le(work_ms);
    out.append(text);
  }
  static std::optional<Request> decode(tao::ByteView in) {
    if (in.size() < 12) return std::nullopt; // a protocol error: the connection is closed
    return Request{in.read_le<std::uint64_t>(0), in.read_le<std::uint32_t>(8),
                   in.subview(12).str()};
  }
};

/// The answer to request `id`. Payload: id (uint64 LE) | text.
struct Reply {
  static constexpr tao::MessageType type = 3;
  std::uint64_t id = 0;
  std::string text;

  void encode(tao::Buffer& out) const {
    out.append_le(id);
    out.append(text);
  }
  static std::optional<Reply> decode(tao::ByteView in) {
    if (in.size() < 8) return std::nullopt;
    return Reply{in.read_le<std::uint64_t>(0), in.subview(8).str()};
  }
};

} // namespace rpc
