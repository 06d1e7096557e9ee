#include <tao/codec.hpp>

#include <tao/error.hpp>

namespace tao {

DecodeResult TlvCodec::decode(ByteView in, Frame& out) const {
  if (in.size() < header_size) return {DecodeResult::need_more, 0, {}};
  const auto type = in.read_le<std::int32_t>(0);
  const auto length = in.read_le<std::uint32_t>(4);
  // Checked before waiting for the payload, as Go Tao does: an oversize length is an error at once.
  if (length > max_payload_)
    return {DecodeResult::invalid, 0, make_error_code(errc::frame_too_large)};
  if (in.size() - header_size < length) return {DecodeResult::need_more, 0, {}};
  out.type = type;
  out.payload = in.subview(header_size, length);
  return {DecodeResult::frame, header_size + length, {}};
}

std::error_code TlvCodec::encode(MessageType type, detail::FunctionRef<void(Buffer&)> write_payload,
                                 Buffer& out) const {
  const std::size_t start = out.size();
  out.append_le<std::int32_t>(type);
  out.append_le<std::uint32_t>(0);
  write_payload(out);
  const std::size_t length = out.size() - start - header_size;
  if (length > max_payload_) {
    out.resize(start);
    return make_error_code(errc::frame_too_large);
  }
  out.write_le_at<std::uint32_t>(start + 4, static_cast<std::uint32_t>(length));
  return {};
}

} // namespace tao
