// TLS options for servers and clients (OpenSSL 3 through Asio's SSL stream). Set
// ServerOptions::tls or ClientOptions::tls; everything else about a connection stays the same.
// Modern by default: TLS 1.2 at least, TLS 1.3 preferred, only AEAD ECDHE cipher suites for 1.2,
// no compression, no renegotiation.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace tao {

/// A TLS protocol version.
enum class TlsVersion {
  tls1_2, ///< TLS 1.2
  tls1_3, ///< TLS 1.3
};

/// Certificates, verification and protocol limits of a TLS server or client.
/// Thread safety: a plain value; copied at construction.
struct TlsOptions {
  /// This side's certificate chain (PEM): a file, or the PEM text itself.
  std::string certificate_chain_file{};
  std::string certificate_chain_pem{}; ///< The chain as PEM text instead of a file.
  /// Its private key (PEM, unencrypted): a file, or the PEM text itself.
  std::string private_key_file{};
  std::string private_key_pem{}; ///< The key as PEM text instead of a file.
  /// CAs that sign the peer's certificate (PEM file or text). A client without either uses the
  /// system's default CA store.
  std::string ca_file{};
  std::string ca_pem{}; ///< The CAs as PEM text instead of a file.
  /// Verify the peer's certificate. Clients: on by default. Servers: see
  /// require_client_certificate.
  bool verify_peer = true;
  /// Server: mutual TLS; a client without a certificate signed by `ca` is refused.
  bool require_client_certificate = false;
  /// Client: the name sent as SNI and checked against the server's certificate; empty = the
  /// host the client connects to. Hostname checking is skipped only with verify_peer = false.
  std::string server_name{};
  TlsVersion min_version = TlsVersion::tls1_2; ///< The oldest version accepted.
  TlsVersion max_version = TlsVersion::tls1_3; ///< The newest version offered.
  /// ALPN protocols, most preferred first (optional). A server picks the first of its own list
  /// that the client offers; Connection::alpn() tells the result.
  std::vector<std::string> alpn{};
  /// A peer that has not finished the handshake by then is closed.
  std::chrono::milliseconds handshake_timeout{10000};
  /// How long a graceful close waits for the peer's close_notify; then (or when it came) the
  /// close goes on as over plain TCP: FIN, and the socket closes once the peer has everything
  /// (see ConnectionOptions::close_timeout, which bounds the whole close).
  std::chrono::milliseconds shutdown_timeout{1000};
};

} // namespace tao
