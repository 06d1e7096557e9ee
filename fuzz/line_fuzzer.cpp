// LineCodec with a maximum chosen by the input's first byte, over the rest of the input.
#include <cstring>

#include <tao/line_codec.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in{data, size};
  const std::uint8_t b = in.byte();
  const tao::LineCodec codec({.max_line_length = static_cast<std::size_t>(1 + (b >> 1)),
                              .delimiter = (b & 1) ? "\r\n" : "\n"});

  const tao::ByteView stream(in.data, in.size);
  auto on_line = [&](const tao::Frame& f, std::size_t off, auto r) {
    fuzz::check(f.payload.size() <= codec.options().max_line_length);
    fuzz::check(!std::memchr(f.payload.data(), '\n', f.payload.size()));
    fuzz::check(r.consumed == f.payload.size() + 1 || r.consumed == f.payload.size() + 2);
    fuzz::check(stream[off + r.consumed - 1] == '\n');
    // A line written back reads back the same (unless it ends in "\r", which "\n" would turn
    // into a "\r\n" delimiter).
    tao::Buffer out;
    fuzz::check(!codec.encode(
        1, [&](tao::Buffer& o) { o.append(f.payload); }, out));
    tao::Frame again;
    fuzz::check(codec.decode(out.view(), again).status == tao::DecodeResult::frame);
    if (f.payload.empty() || f.payload[f.payload.size() - 1] != '\r')
      fuzz::check(again.payload == f.payload);
  };
  auto on_stop = [&](std::size_t off, auto r) {
    // need_more only while a valid line could still fit.
    if (r.status == tao::DecodeResult::need_more)
      fuzz::check(stream.size() - off < codec.options().max_line_length + 2);
  };
  fuzz::for_each_frame(codec, stream, on_line, on_stop);
  return 0;
}
