// The frames the load generator sends, and what it expects back.
//
// Frame: | type 1 (int32 LE) | length S (uint32 LE) | seq (uint64 LE, cut to S bytes if S < 8) |
//        | pattern bytes |
// The pattern slice starts at an offset that depends on the stream (connection) and the
// sequence number, so a lost, duplicated, reordered or cross-connection frame does not compare
// equal, and checking an echo is a memcmp against a table, cheap enough for the client core.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace bench {

class FrameMaker {
public:
  static constexpr std::size_t kHeader = 8;
  static constexpr std::size_t kMaxHead = 16; // header + sequence number

  explicit FrameMaker(std::uint32_t payload) : payload_(payload) {
    pattern_.resize(payload + kOffsets);
    std::uint64_t x = 0x9E3779B97F4A7C15ull; // xorshift: any fixed, byte-diverse sequence will do
    for (auto& b : pattern_) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<char>(x);
    }
  }

  std::size_t frame_size() const { return kHeader + payload_; }
  std::size_t head_size() const { return kHeader + std::min<std::size_t>(payload_, 8); }

  /// Writes the first head_size() bytes of the frame (header and sequence number) to out.
  void head(std::uint64_t seq, char* out) const {
    put_le(out, 1, 4);
    put_le(out + 4, payload_, 4);
    put_le(out + kHeader, seq, head_size() - kHeader);
  }

  /// The rest of the frame after head_size() bytes.
  const char* body(std::uint32_t stream, std::uint64_t seq) const {
    return pattern_.data() + (stream * 131u + seq * 7u) % kOffsets;
  }
  std::size_t body_size() const { return frame_size() - head_size(); }

  void append(std::vector<char>& out, std::uint32_t stream, std::uint64_t seq) const {
    std::array<char, kMaxHead> h{};
    head(seq, h.data());
    out.insert(out.end(), h.data(), h.data() + head_size());
    const char* b = body(stream, seq);
    out.insert(out.end(), b, b + body_size());
  }

  /// Reads the sequence number back from a frame's first head_size() bytes.
  std::uint64_t seq_of(const char* frame) const {
    std::uint64_t seq = 0;
    for (std::size_t i = head_size(); i-- > kHeader;)
      seq = (seq << 8) | static_cast<unsigned char>(frame[i]);
    return seq;
  }

private:
  static constexpr std::size_t kOffsets = 251; // prime, so offsets cycle through all slots

  static void put_le(char* out, std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = static_cast<char>(v >> (8 * i));
  }

  std::uint32_t payload_;
  std::vector<char> pattern_;
};

} // namespace bench
