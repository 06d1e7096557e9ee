// What the fuzz targets share: a connection without a network, and reading fuzz input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include <tao/codec.hpp>
#include <tao/connection.hpp>

namespace fuzz {

/// A Connection that is never connected to anything: writes are encoded (through its codec, so
/// encoding is fuzzed too) and dropped; timers are refused.
class NullConnection final : public tao::Connection {
public:
  explicit NullConnection(std::shared_ptr<const tao::Codec> codec)
      : Connection(tao::next_connection_id(), "fuzz", {}, {}, std::move(codec)) {}
  std::error_code write_encoded(tao::ByteView frames) override {
    written += frames.size();
    return {};
  }
  void close() override { open = false; }
  void abort() override { open = false; }
  bool is_open() const noexcept override { return open; }
  bool is_tls() const noexcept override { return false; }
  std::string alpn() const override { return {}; }
  std::size_t queued_bytes() const noexcept override { return 0; }
  std::size_t pending_tasks() const noexcept override { return 0; }
  tao::TimerId run_at(tao::TimePoint, tao::TimerCallback) override { return 0; }
  tao::TimerId run_every(tao::Duration, tao::TimerCallback) override { return 0; }
  bool cancel_timer(tao::TimerId) override { return false; }

  std::size_t written = 0;
  bool open = true;
};

/// Takes bytes from the front of the fuzz input (to choose options); 0 when it runs out.
struct Input {
  const std::uint8_t* data;
  std::size_t size;
  std::uint8_t byte() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
};

/// A failed property: abort, so libFuzzer saves the input.
inline void check(bool ok) {
  if (!ok) std::abort();
}

/// Cuts frames from `stream` with `codec` as the read path does, checking what every codec must
/// hold: a frame consumes at least one byte and no more than what is left, and a stop that is
/// not a frame is need_more or carries an error. Each frame goes to on_frame(frame, offset,
/// result) (offset: where it starts in `stream`); the stop goes to on_stop(offset, result).
template <class OnFrame, class OnStop>
void for_each_frame(const tao::Codec& codec, tao::ByteView stream, OnFrame on_frame,
                    OnStop on_stop) {
  std::size_t off = 0;
  while (off < stream.size()) {
    tao::Frame f;
    const auto r = codec.decode(stream.subview(off), f);
    if (r.status != tao::DecodeResult::frame) {
      check(r.status == tao::DecodeResult::need_more || r.error);
      on_stop(off, r);
      return;
    }
    check(r.consumed > 0 && r.consumed <= stream.size() - off);
    on_frame(f, off, r);
    off += r.consumed;
  }
}

template <class OnFrame>
void for_each_frame(const tao::Codec& codec, tao::ByteView stream, OnFrame on_frame) {
  for_each_frame(codec, stream, on_frame, [](std::size_t, const tao::DecodeResult&) {});
}

} // namespace fuzz
