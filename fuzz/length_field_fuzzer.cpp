// LengthFieldCodec with options chosen by the input's first bytes, over the rest of the input.
#include <tao/length_field_codec.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in{data, size};
  static constexpr std::size_t lengths[] = {1, 2, 3, 4, 8};
  tao::LengthFieldOptions o;
  o.length_field_length = lengths[in.byte() % 5];
  o.byte_order = (in.byte() & 1) ? std::endian::little : std::endian::big;
  o.length_field_offset = in.byte() % 5;
  o.length_adjustment = static_cast<std::int8_t>(in.byte()) % 17;
  const std::uint8_t strip = in.byte();
  o.initial_bytes_to_strip =
      strip >= 200 ? tao::LengthFieldOptions::strip_header : static_cast<std::size_t>(strip % 16);
  o.max_frame_length =
      o.length_field_offset + o.length_field_length + (static_cast<std::size_t>(in.byte()) << 4);
  const tao::LengthFieldCodec codec(o);

  const tao::ByteView stream(in.data, in.size);
  fuzz::for_each_frame(codec, stream, [&](const tao::Frame& f, std::size_t off, auto r) {
    fuzz::check(r.consumed <= o.max_frame_length);
    fuzz::check(f.payload.end() == stream.data() + off + r.consumed);
    fuzz::check(f.type == o.message_type);
    // The payload written back makes a frame of the same size that decodes to the same size.
    tao::Buffer out;
    const auto ec = codec.encode(
        o.message_type, [&](tao::Buffer& b) { b.append(f.payload); }, out);
    fuzz::check(!ec);
    fuzz::check(out.size() == r.consumed);
    tao::Frame again;
    const auto r2 = codec.decode(out.view(), again);
    fuzz::check(r2.status == tao::DecodeResult::frame && r2.consumed == out.size());
    fuzz::check(again.payload.size() == f.payload.size());
  });
  return 0;
}
