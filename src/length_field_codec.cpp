#include <tao/length_field_codec.hpp>

#include <stdexcept>

#include <tao/error.hpp>

namespace tao {

namespace {
constexpr std::int64_t max_adjustment = std::int64_t{1} << 32;
} // namespace

LengthFieldCodec::LengthFieldCodec(LengthFieldOptions options) : o_(options) {
  const std::size_t n = o_.length_field_length;
  if (n != 1 && n != 2 && n != 3 && n != 4 && n != 8)
    throw std::invalid_argument(
        "tao: LengthFieldCodec length_field_length must be 1, 2, 3, 4 or 8");
  if (o_.max_frame_length == 0 || o_.max_frame_length > (std::size_t{1} << 62))
    throw std::invalid_argument("tao: LengthFieldCodec max_frame_length must be in [1, 2^62]");
  if (o_.length_adjustment > max_adjustment || o_.length_adjustment < -max_adjustment)
    throw std::invalid_argument("tao: LengthFieldCodec length_adjustment must be within +-2^32");
  if (o_.length_field_offset > o_.max_frame_length)
    throw std::invalid_argument(
        "tao: LengthFieldCodec length_field_offset is over max_frame_length");
  end_ = o_.length_field_offset + n;
  if (o_.initial_bytes_to_strip == LengthFieldOptions::strip_header)
    o_.initial_bytes_to_strip = end_;
}

std::size_t LengthFieldCodec::max_payload() const noexcept {
  return o_.max_frame_length > o_.initial_bytes_to_strip
             ? o_.max_frame_length - o_.initial_bytes_to_strip
             : 0;
}

std::uint64_t LengthFieldCodec::read_field(const char* p) const noexcept {
  const std::size_t n = o_.length_field_length;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto byte = static_cast<std::uint64_t>(static_cast<unsigned char>(p[i]));
    if (o_.byte_order == std::endian::big) {
      v = (v << 8) | byte;
    } else {
      v |= byte << (8 * i);
    }
  }
  return v;
}

void LengthFieldCodec::write_field(char* p, std::uint64_t v) const noexcept {
  const std::size_t n = o_.length_field_length;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t shift = o_.byte_order == std::endian::big ? 8 * (n - 1 - i) : 8 * i;
    p[i] = static_cast<char>((v >> shift) & 0xff);
  }
}

DecodeResult LengthFieldCodec::decode(ByteView in, Frame& out) const {
  if (in.size() < end_) return {DecodeResult::need_more, 0, {}};
  const std::uint64_t value = read_field(in.data() + o_.length_field_offset);
  // Checked before waiting for the rest of the frame, so a huge length fails at once.
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return {DecodeResult::invalid, 0, make_error_code(errc::malformed_frame)}; // Netty: negative
  if (value > o_.max_frame_length + static_cast<std::uint64_t>(max_adjustment))
    return {DecodeResult::invalid, 0, make_error_code(errc::frame_too_large)};
  const std::int64_t frame =
      static_cast<std::int64_t>(value) + o_.length_adjustment + static_cast<std::int64_t>(end_);
  if (frame < static_cast<std::int64_t>(end_))
    return {DecodeResult::invalid, 0, make_error_code(errc::malformed_frame)};
  const auto length = static_cast<std::size_t>(frame);
  if (length > o_.max_frame_length)
    return {DecodeResult::invalid, 0, make_error_code(errc::frame_too_large)};
  if (o_.initial_bytes_to_strip > length)
    return {DecodeResult::invalid, 0, make_error_code(errc::malformed_frame)};
  if (in.size() < length) return {DecodeResult::need_more, 0, {}};
  out.type = o_.message_type;
  out.payload = in.subview(o_.initial_bytes_to_strip, length - o_.initial_bytes_to_strip);
  return {DecodeResult::frame, length, {}};
}

std::error_code LengthFieldCodec::encode(MessageType type,
                                         detail::FunctionRef<void(Buffer&)> write_payload,
                                         Buffer& out) const {
  if (type != o_.message_type) return make_error_code(errc::unsupported_message_type);
  const std::size_t start = out.size();
  out.resize(start + o_.initial_bytes_to_strip); // zeros: the header the reader strips
  write_payload(out);
  const std::size_t length = out.size() - start;
  std::error_code ec;
  const std::int64_t value =
      static_cast<std::int64_t>(length) - static_cast<std::int64_t>(end_) - o_.length_adjustment;
  const unsigned bits = static_cast<unsigned>(8 * o_.length_field_length);
  if (length > o_.max_frame_length) {
    ec = make_error_code(errc::frame_too_large);
  } else if (length < end_ || value < 0) {
    ec = make_error_code(errc::malformed_frame); // too short to hold its own length field
  } else if (bits < 64 && static_cast<std::uint64_t>(value) >= (std::uint64_t{1} << bits)) {
    ec = make_error_code(errc::frame_too_large); // does not fit the length field
  }
  if (ec) {
    out.resize(start);
    return ec;
  }
  write_field(out.data() + start + o_.length_field_offset, static_cast<std::uint64_t>(value));
  return {};
}

} // namespace tao
