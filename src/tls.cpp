#include "tls.hpp"

#include <fstream>

#include <boost/asio/ssl/error.hpp>
#include <stdexcept>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace tao::detail {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2 suites: forward secrecy and AEAD only (no RC4, 3DES, CBC, RSA key exchange).
constexpr const char* tls12_ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

int openssl_version(TlsVersion v) {
  return v == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

void check_readable(const std::string& file, const char* what) {
  std::ifstream in(file);
  if (!in)
    throw std::runtime_error(fmt::format("tao TLS: cannot read the {} file '{}'", what, file));
}

std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Server side of ALPN: the first protocol of ours that the client offers.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const auto& wire = *static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

} // namespace

std::shared_ptr<TlsConfig> make_tls_config(const TlsOptions& o, bool server,
                                           const std::string& default_server_name) {
  auto cfg = std::make_shared<TlsConfig>();
  cfg->options = o;
  cfg->server = server;
  cfg->server_name = o.server_name.empty() ? default_server_name : o.server_name;
  cfg->context =
      std::make_shared<ssl::context>(server ? ssl::context::tls_server : ssl::context::tls_client);
  ssl::context& ctx = *cfg->context;
  SSL_CTX* native = ctx.native_handle();
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::no_compression);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (o.min_version > o.max_version)
    throw std::invalid_argument("tao TLS: min_version is above max_version");
  SSL_CTX_set_min_proto_version(native, openssl_version(o.min_version));
  SSL_CTX_set_max_proto_version(native, openssl_version(o.max_version));
  if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1)
    throw std::runtime_error("tao TLS: cipher list rejected: " + openssl_reason());

  boost::system::error_code ec;
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(
        fmt::format("tao TLS: {}: {}", what, ec ? ec.message() : openssl_reason()));
  };
  if (!o.certificate_chain_file.empty()) {
    check_readable(o.certificate_chain_file, "certificate chain");
    ctx.use_certificate_chain_file(o.certificate_chain_file, ec);
    if (ec) fail(fmt::format("bad certificate chain file '{}'", o.certificate_chain_file));
  } else if (!o.certificate_chain_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(o.certificate_chain_pem), ec);
    if (ec) fail("bad certificate chain PEM text");
  }
  auto key_mismatch = [&] {
    return std::runtime_error(fmt::format(
        "tao TLS: the private key {} does not match the certificate {}",
        o.private_key_file.empty() ? std::string("(PEM text)") : "'" + o.private_key_file + "'",
        o.certificate_chain_file.empty() ? std::string("(PEM text)")
                                         : "'" + o.certificate_chain_file + "'"));
  };
  if (!o.private_key_file.empty()) {
    check_readable(o.private_key_file, "private key");
    ctx.use_private_key_file(o.private_key_file, ssl::context::pem, ec);
    if (ec && ec.message().find("mismatch") != std::string::npos) throw key_mismatch();
    if (ec) fail(fmt::format("bad private key file '{}'", o.private_key_file));
  } else if (!o.private_key_pem.empty()) {
    ctx.use_private_key(asio::buffer(o.private_key_pem), ssl::context::pem, ec);
    if (ec && ec.message().find("mismatch") != std::string::npos) throw key_mismatch();
    if (ec) fail("bad private key PEM text");
  }
  const bool has_cert = !o.certificate_chain_file.empty() || !o.certificate_chain_pem.empty();
  const bool has_key = !o.private_key_file.empty() || !o.private_key_pem.empty();
  if (server && (!has_cert || !has_key))
    throw std::invalid_argument("tao TLS: a server needs a certificate chain and a private key");
  if (has_cert != has_key)
    throw std::invalid_argument("tao TLS: a certificate needs its private key and the reverse");
  if (has_cert && SSL_CTX_check_private_key(native) != 1) throw key_mismatch();

  if (!o.ca_file.empty()) {
    check_readable(o.ca_file, "CA");
    ctx.load_verify_file(o.ca_file, ec);
    if (ec) fail(fmt::format("bad CA file '{}'", o.ca_file));
  } else if (!o.ca_pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(o.ca_pem), ec);
    if (ec) fail("bad CA PEM text");
  } else if (!server && o.verify_peer) {
    ctx.set_default_verify_paths(ec);
  }

  if (server) {
    if (o.require_client_certificate)
      ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    else
      ctx.set_verify_mode(ssl::verify_none);
  } else {
    ctx.set_verify_mode(o.verify_peer ? ssl::verify_peer : ssl::verify_none);
  }

  if (!o.alpn.empty()) {
    // ALPN wire format: length-prefixed names.
    auto wire = std::make_shared<std::string>();
    for (const auto& p : o.alpn) {
      if (p.empty() || p.size() > 255) throw std::invalid_argument("tao TLS: bad ALPN name");
      wire->push_back(static_cast<char>(p.size()));
      *wire += p;
    }
    if (server) {
      SSL_CTX_set_alpn_select_cb(native, select_alpn, wire.get());
    } else if (SSL_CTX_set_alpn_protos(native, reinterpret_cast<const unsigned char*>(wire->data()),
                                       static_cast<unsigned>(wire->size())) != 0) {
      throw std::runtime_error("tao TLS: ALPN list rejected");
    }
    // The callback's argument must live as long as the context.
    cfg->alpn_wire = wire;
  }
  return cfg;
}

std::string describe_tls_error(const boost::system::error_code& ec) {
  std::string text = ec.message();
  if (ec.category() == asio::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
    text = buf;
  }
  return text;
}

} // namespace tao::detail
