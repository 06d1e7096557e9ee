// The default read path without sockets: the TLV codec cuts frames from arbitrary bytes, the
// message registry finds each type and decodes it, handlers reply (encoding through the codec).
#include <string>

#include <tao/handlers.hpp>

#include "fuzz_support.hpp"

namespace {

struct Text {
  static constexpr tao::MessageType type = 1;
  std::string text;
  void encode(tao::Buffer& out) const { out.append(text); }
  static Text decode(tao::ByteView in) { return {in.str()}; }
};

struct Pair {
  static constexpr tao::MessageType type = 2;
  std::int32_t a = 0;
  std::int64_t b = 0;
  void encode(tao::Buffer& out) const {
    out.append_le(a);
    out.append_le(b);
  }
  static std::optional<Pair> decode(tao::ByteView in) {
    if (in.size() != 12) return std::nullopt;
    return Pair{in.read_le<std::int32_t>(0), in.read_le<std::int64_t>(4)};
  }
};

/// The registry of a server, without the server.
struct Registry : tao::Handlers {
  Registry() {
    handle<Text>([](tao::Connection& c, const Text& m) { c.write(m); });
    handle<Pair>([](tao::Connection& c, const Pair& m) { c.write(Pair{m.b > 0 ? 1 : 0, m.a}); });
    handle<tao::Heartbeat>([](tao::Connection& c, const tao::Heartbeat& h) { c.write(h); });
    handle_raw(-1, [](tao::Connection& c, const tao::Frame& f) { c.write_raw(3, f.payload); });
  }
  const tao::detail::Dispatch& dispatch() const { return *dispatch_; }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Registry registry;
  static const auto codec = std::make_shared<tao::TlvCodec>(std::size_t{1} << 16);
  fuzz::NullConnection conn(codec);
  const tao::ByteView in(data, size);
  fuzz::for_each_frame(*codec, in, [&](const tao::Frame& f, std::size_t off, auto r) {
    fuzz::check(r.consumed >= tao::TlvCodec::header_size);
    fuzz::check(f.payload.data() >= in.data() + off && f.payload.end() <= in.end());
    if (const auto* e = registry.dispatch().find(f.type)) {
      tao::detail::Task later;
      // Handlers run now (on the loop) for even types, through a deferred task for odd ones.
      const bool now = (f.type & 1) == 0;
      if (e->dispatch(conn, f.payload, now, later) && !now && later) later(conn);
    }
    // Whatever was cut re-encodes to the same bytes.
    tao::Buffer out;
    fuzz::check(!codec->encode(
        f.type, [&](tao::Buffer& b) { b.append(f.payload); }, out));
    fuzz::check(out.view() == in.subview(off, r.consumed));
  });
  return 0;
}
