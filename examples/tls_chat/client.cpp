// The chat client over TLS: verifies the server against --ca and the host name.
#include "common/chat.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao TLS chat client"};
  example::Flags f;
  example::add_common_flags(app, f, false);
  tao::TlsOptions tls;
  tls.ca_file = TAO_EXAMPLE_CERTS "/ca.pem";
  app.add_option("--ca", tls.ca_file, "CA that signed the server's certificate (PEM)")
      ->capture_default_str();
  app.add_option("--server-name", tls.server_name, "name to verify (default: --host)");
  app.add_option("--cert", tls.certificate_chain_file, "client certificate, for mutual TLS");
  app.add_option("--key", tls.private_key_file, "client private key, for mutual TLS");
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);
  try {
    return example::run_chat_client(f, tls);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
}
