// The chat server over TLS. Certificates: the build makes throwaway ones (scripts/make-certs.sh)
// under build/<preset>/examples/certs, which are the defaults here.
#include "common/chat.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tao TLS chat server"};
  example::Flags f;
  f.zero_workers_means_hardware = true; // the handlers always run on a worker pool
  example::add_common_flags(app, f, true);
  tao::TlsOptions tls;
  tls.certificate_chain_file = TAO_EXAMPLE_CERTS "/server.pem";
  tls.private_key_file = TAO_EXAMPLE_CERTS "/server.key";
  std::string client_ca;
  app.add_option("--cert", tls.certificate_chain_file, "certificate chain (PEM)")
      ->capture_default_str();
  app.add_option("--key", tls.private_key_file, "private key (PEM)")->capture_default_str();
  app.add_option("--client-ca", client_ca, "require client certificates signed by this CA (PEM)");
  CLI11_PARSE(app, argc, argv);
  tao::set_log_level(f.log_level);
  if (!client_ca.empty()) {
    tls.ca_file = client_ca;
    tls.require_client_certificate = true;
  }
  try {
    return example::run_chat_server(f, tls);
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 1;
  }
}
