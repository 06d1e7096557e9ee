// Conversions between Asio endpoints and tao::Endpoint.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <tao/connection.hpp>

namespace tao::detail {

inline Endpoint endpoint_of(const boost::asio::ip::tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    addr = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6());
  return Endpoint{addr.to_string(), ep.port()};
}

} // namespace tao::detail
