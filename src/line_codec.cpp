#include <tao/line_codec.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <tao/error.hpp>

namespace tao {

LineCodec::LineCodec(LineOptions options) : o_(std::move(options)) {
  if (o_.delimiter != "\n" && o_.delimiter != "\r\n")
    throw std::invalid_argument(R"(tao: LineCodec delimiter must be "\n" or "\r\n")");
  if (o_.max_line_length == 0)
    throw std::invalid_argument("tao: LineCodec max_line_length must be > 0");
}

DecodeResult LineCodec::decode(ByteView in, Frame& out) const {
  // The longest valid line is max_line_length bytes and "\r\n", so its "\n" is within this window.
  const std::size_t window = std::min(in.size(), o_.max_line_length + 2);
  const void* nl = window == 0 ? nullptr : std::memchr(in.data(), '\n', window);
  if (!nl) {
    if (in.size() >= o_.max_line_length + 2)
      return {DecodeResult::invalid, 0, make_error_code(errc::frame_too_large)};
    return {DecodeResult::need_more, 0, {}};
  }
  const auto end = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data());
  const std::size_t length = end > 0 && in[end - 1] == '\r' ? end - 1 : end;
  if (length > o_.max_line_length)
    return {DecodeResult::invalid, 0, make_error_code(errc::frame_too_large)};
  out.type = o_.message_type;
  out.payload = in.subview(0, length);
  return {DecodeResult::frame, end + 1, {}};
}

std::error_code LineCodec::encode(MessageType type,
                                  detail::FunctionRef<void(Buffer&)> write_payload,
                                  Buffer& out) const {
  if (type != o_.message_type) return make_error_code(errc::unsupported_message_type);
  const std::size_t start = out.size();
  write_payload(out);
  const std::size_t length = out.size() - start;
  std::error_code ec;
  if (length > o_.max_line_length) {
    ec = make_error_code(errc::frame_too_large);
  } else if (length > 0 && std::memchr(out.data() + start, '\n', length)) {
    ec = make_error_code(errc::malformed_frame);
  }
  if (ec) {
    out.resize(start);
    return ec;
  }
  out.append(o_.delimiter);
  return {};
}

} // namespace tao
