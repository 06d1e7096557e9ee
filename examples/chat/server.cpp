// Chat server: every chat message goes to every connected client (Go Tao's examples/chat).
#include "common/chat.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao chat server"};
  example::Flags f;
  example::add_common_flags(app, f, true);
  app.get_option("--workers")
      ->description("worker threads for handlers (0 = one per hardware thread)");
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);
  return example::run_chat_server(f, std::nullopt);
}
