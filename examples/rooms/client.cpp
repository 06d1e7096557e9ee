// Multi-room chat client: the chat client (each stdin line is sent, every message received is
// printed, "bye" or end of input leaves); the commands are interpreted by the server.
#include "common/chat.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao multi-room chat client"};
  example::Flags f;
  example::add_common_flags(app, f, false);
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);
  return example::run_chat_client(f, std::nullopt);
}
