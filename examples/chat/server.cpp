// Chat server: every chat message goes to every connected client (Go Tao's examples/chat).
#include "common/chat.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao chat server"};
  example::Flags f;
  f.zero_workers_means_hardware = true; // the handlers always run on a worker pool
  example::add_common_flags(app, f, true);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);
  return example::run_chat_server(f, std::nullopt);
}
