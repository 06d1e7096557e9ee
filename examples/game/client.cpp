// Game client (FlatBuffers): joins as --name, moves right --moves times, prints every world
// state it receives and exits 0 once the server shows it at its destination.
#include <chrono>
#include <future>

#include "game/messages.hpp"

using namespace example::game_msg;

int main(int argc, char** argv) {
  CLI::App app{"tao game client (FlatBuffers)"};
  example::Flags f;
  f.io_threads = 1;
  example::add_common_flags(app, f, false);
  std::string name = "player";
  int moves = 3;
  app.add_option("--name", name, "player name")->capture_default_str();
  app.add_option("--moves", moves, "steps to the right (at most 9)")
      ->capture_default_str()
      ->check(CLI::Range(0, board_size - 1));
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);

  tao::Client client({.host = f.host, .port = f.port, .io_threads = 1, .workers = f.workers});
  std::promise<void> arrived;
  bool done = false; // handlers run in order on the client's loop
  client.handle<State>([&](tao::Connection&, const State& s) {
    std::string line = fmt::format("tick {}:", s->tick());
    bool me_there = false;
    for (const game::Player* p : *s->players()) {
      line += fmt::format(" {}({},{})", p->name()->str(), p->pos()->x(), p->pos()->y());
      if (p->name()->str() == name && p->pos()->x() == moves) me_there = true;
    }
    fmt::print("{}\n", line);
    std::fflush(stdout);
    if (me_there && !done) {
      done = true;
      arrived.set_value();
    }
  });
  if (auto ec = client.connect()) {
    fmt::print(stderr, "cannot connect to {}:{}: {}\n", f.host, f.port, ec.message());
    return 1;
  }
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(game::CreateJoin(fbb, fbb.CreateString(name)));
  client.write(Join(fbb));
  for (int i = 0; i < moves; ++i) {
    fbb.Clear(); // write() encoded the last message already: the builder can be reused
    fbb.Finish(game::CreateMove(fbb, 1, 0));
    if (auto ec = client.write(Move(fbb))) {
      fmt::print(stderr, "write failed: {}\n", ec.message());
      return 1;
    }
  }
  if (arrived.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    fmt::print(stderr, "the server never showed {} at ({},0)\n", name, moves);
    return 1;
  }
  fmt::print("{} reached ({},0)\n", name, moves);
  client.stop();
  return 0;
}
