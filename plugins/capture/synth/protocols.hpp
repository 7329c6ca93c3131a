// Application payloads byte for byte as real clients and servers send them.
#pragma once
#include <string>
#include <string_view>

#include "packet_builder.hpp"

namespace trafficid::synth {

// TLS 1.3 ClientHello in a TLS record, with the extensions a current browser sends (SNI, ALPN,
// supported groups and versions, key share, signature algorithms, ...).
Bytes tls_client_hello(Random& random, std::string_view server_name);
// ServerHello (TLS 1.3), then ChangeCipherSpec.
Bytes tls_server_hello(Random& random);
// One application-data record of `length` encrypted-looking bytes.
Bytes tls_application_data(Random& random, std::size_t length);

Bytes dns_query(Random& random, std::uint16_t id, std::string_view name, std::uint16_t type);
Bytes dns_response(Random& random, std::uint16_t id, std::string_view name, std::uint16_t type);

std::string http_request(std::string_view host, std::string_view path);
std::string http_response(Random& random, std::size_t body_length);

std::string ssh_banner(bool client);
Bytes ssh_kexinit(Random& random, bool client);
// SSH_MSG_KEX_ECDH_INIT (curve25519 public key), its reply (ed25519 host key, server public key,
// signature) and SSH_MSG_NEWKEYS, framed as the binary packet protocol sends them.
Bytes ssh_ecdh_init(Random& random);
Bytes ssh_ecdh_reply(Random& random);
Bytes ssh_newkeys(Random& random);

Bytes bittorrent_handshake(Random& random, std::span<const std::uint8_t> info_hash);
Bytes bittorrent_message(Random& random, std::uint8_t id, std::size_t length);

Bytes stun_binding_request(Random& random, std::array<std::uint8_t, 12>& transaction);
Bytes stun_binding_response(const std::array<std::uint8_t, 12>& transaction, const Endpoint& mapped);

Bytes ntp_packet(Random& random, bool client, std::int64_t now_ns);

}  // namespace trafficid::synth
