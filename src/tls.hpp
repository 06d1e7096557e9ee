// Building OpenSSL contexts from TlsOptions. Set-up errors throw with the file name.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include <tao/tls.hpp>

namespace tao::detail {

struct TlsConfig {
  std::shared_ptr<boost::asio::ssl::context> context;
  TlsOptions options;
  bool server = false;
  std::string server_name; // client: SNI and hostname check
  std::shared_ptr<std::string> alpn_wire;
};

/// Throws std::runtime_error naming the file (or "PEM text") that is missing, unreadable or does
/// not match.
std::shared_ptr<TlsConfig> make_tls_config(const TlsOptions& o, bool server,
                                           const std::string& default_server_name);

/// The OpenSSL reason for a handshake failure, e.g. "certificate verify failed".
std::string describe_tls_error(const boost::system::error_code& ec);

} // namespace tao::detail
