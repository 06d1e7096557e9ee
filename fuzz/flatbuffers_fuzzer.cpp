// tao::Flat on arbitrary bytes, aligned and misaligned: whatever the verifier accepts must be
// readable in full without leaving the buffer (AddressSanitizer watches), and handlers on the
// loop or on a worker (detach) see the same message.
#include <cstring>
#include <vector>

#include <tao/flatbuffers.hpp>
#include <tao/handlers.hpp>

#include "fuzz_support.hpp"
#include "test_game_generated.h"

namespace {

using State = tao::Flat<tao_test::GameState, 7>;

std::uint64_t walk(const State& s) {
  std::uint64_t sum = s->tick();
  if (const auto* players = s->players()) {
    for (const tao_test::Player* p : *players) {
      sum += p->id() + static_cast<std::uint64_t>(p->hp());
      if (p->name()) sum += p->name()->str().size();
      if (p->pos()) sum += static_cast<std::uint64_t>(p->pos()->x() > 0);
      if (p->inventory())
        for (const auto* item : *p->inventory())
          sum += item->size();
    }
  }
  return sum;
}

struct Registry : tao::Handlers {
  std::uint64_t seen = 0;
  Registry() {
    handle<State>([this](tao::Connection& c, const State& s) {
      seen = walk(s);
      c.write(s);
    });
  }
  const tao::detail::Dispatch& dispatch() const { return *dispatch_; }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Registry registry;
  static const auto codec = std::make_shared<tao::TlvCodec>();
  fuzz::NullConnection conn(codec);
  // Copies at offsets 0 and 3 of 8-byte aligned storage: read in place, and copied to align.
  std::vector<std::uint64_t> store(size / 8 + 2);
  for (std::size_t shift : {0, 3}) {
    char* p = reinterpret_cast<char*>(store.data()) + shift;
    if (size > 0) std::memcpy(p, data, size);
    const tao::ByteView payload(p, size);
    auto s = State::decode(payload);
    if (s) {
      fuzz::check(s->owns_bytes() == (shift != 0));
      const std::uint64_t direct = walk(*s);
      const auto* e = registry.dispatch().find(State::type);
      tao::detail::Task later;
      fuzz::check(e->dispatch(conn, payload, true, later));
      fuzz::check(registry.seen == direct);
      registry.seen = 0;
      fuzz::check(e->dispatch(conn, payload, false, later) && later);
      std::memset(p, 0xee, size); // the read buffer is reused before the worker runs
      later(conn);
      fuzz::check(registry.seen == direct);
    }
  }
  return 0;
}
