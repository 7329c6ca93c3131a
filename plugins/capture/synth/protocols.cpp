#include "protocols.hpp"

#include <array>
#include <fmt/format.h>

namespace trafficid::synth {

namespace {
Bytes random_bytes(Random& random, std::size_t n) {
  Bytes b(n);
  random.fill(b);
  return b;
}

std::uint32_t crc32(std::span<const std::uint8_t> data) {
  std::uint32_t crc = 0xffffffffu;
  for (auto byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_name(Bytes& b, std::string_view name) {
  std::size_t start = 0;
  while (start < name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    put8(b, static_cast<std::uint8_t>(dot - start));
    put(b, name.substr(start, dot - start));
    start = dot + 1;
  }
  put8(b, 0);
}
}  // namespace

Bytes tls_client_hello(Random& random, std::string_view server_name) {
  Bytes b;
  put8(b, 0x16);  // handshake record
  put16(b, 0x0301);
  std::size_t record_length = b.size();
  put16(b, 0);
  put8(b, 0x01);  // ClientHello
  std::size_t hello_length = b.size();
  put24(b, 0);
  put16(b, 0x0303);
  put(b, random_bytes(random, 32));  // random
  put8(b, 32);
  put(b, random_bytes(random, 32));  // legacy session id
  const std::uint16_t suites[] = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030,
                                  0xc00a, 0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
  put16(b, sizeof suites);
  for (auto s : suites) put16(b, s);
  put8(b, 1);
  put8(b, 0);  // null compression
  std::size_t extensions = b.size();
  put16(b, 0);
  // server_name
  put16(b, 0x0000);
  std::size_t ext = b.size();
  put16(b, 0);
  std::size_t list = b.size();
  put16(b, 0);
  put8(b, 0);
  put16(b, static_cast<std::uint16_t>(server_name.size()));
  put(b, server_name);
  patch16(b, list);
  patch16(b, ext);
  // extended_master_secret, renegotiation_info
  put16(b, 0x0017), put16(b, 0);
  put16(b, 0xff01), put16(b, 1), put8(b, 0);
  // supported_groups: x25519, secp256r1, secp384r1, secp521r1, ffdhe2048, ffdhe3072
  put16(b, 0x000a), put16(b, 14), put16(b, 12);
  for (std::uint16_t g : {0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101}) put16(b, g);
  // ec_point_formats: uncompressed
  put16(b, 0x000b), put16(b, 2), put8(b, 1), put8(b, 0);
  // session_ticket (empty)
  put16(b, 0x0023), put16(b, 0);
  // ALPN: h2, http/1.1
  put16(b, 0x0010);
  ext = b.size();
  put16(b, 0);
  list = b.size();
  put16(b, 0);
  for (std::string_view p : {"h2", "http/1.1"}) {
    put8(b, static_cast<std::uint8_t>(p.size()));
    put(b, p);
  }
  patch16(b, list);
  patch16(b, ext);
  // status_request (OCSP)
  put16(b, 0x0005), put16(b, 5), put8(b, 1), put16(b, 0), put16(b, 0);
  // key_share: x25519
  put16(b, 0x0033), put16(b, 38), put16(b, 36), put16(b, 0x001d), put16(b, 32);
  put(b, random_bytes(random, 32));
  // supported_versions: TLS 1.3, 1.2
  put16(b, 0x002b), put16(b, 5), put8(b, 4), put16(b, 0x0304), put16(b, 0x0303);
  // signature_algorithms
  const std::uint16_t algorithms[] = {0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806,
                                      0x0401, 0x0501, 0x0601, 0x0203, 0x0201};
  put16(b, 0x000d), put16(b, static_cast<std::uint16_t>(2 + sizeof algorithms)), put16(b, sizeof algorithms);
  for (auto a : algorithms) put16(b, a);
  // psk_key_exchange_modes: psk_dhe_ke
  put16(b, 0x002d), put16(b, 2), put8(b, 1), put8(b, 1);
  // record_size_limit
  put16(b, 0x001c), put16(b, 2), put16(b, 0x4001);
  patch16(b, extensions);
  patch24(b, hello_length);
  patch16(b, record_length);
  return b;
}

Bytes tls_server_hello(Random& random) {
  Bytes b;
  put8(b, 0x16);
  put16(b, 0x0303);
  std::size_t record_length = b.size();
  put16(b, 0);
  put8(b, 0x02);  // ServerHello
  std::size_t hello_length = b.size();
  put24(b, 0);
  put16(b, 0x0303);
  put(b, random_bytes(random, 32));
  put8(b, 32);
  put(b, random_bytes(random, 32));
  put16(b, 0x1301);  // TLS_AES_128_GCM_SHA256
  put8(b, 0);
  std::size_t extensions = b.size();
  put16(b, 0);
  put16(b, 0x002b), put16(b, 2), put16(b, 0x0304);
  put16(b, 0x0033), put16(b, 36), put16(b, 0x001d), put16(b, 32);
  put(b, random_bytes(random, 32));
  patch16(b, extensions);
  patch24(b, hello_length);
  patch16(b, record_length);
  // ChangeCipherSpec (middlebox compatibility)
  put8(b, 0x14), put16(b, 0x0303), put16(b, 1), put8(b, 1);
  return b;
}

Bytes tls_application_data(Random& random, std::size_t length) {
  Bytes b;
  put8(b, 0x17);
  put16(b, 0x0303);
  put16(b, static_cast<std::uint16_t>(length));
  put(b, random_bytes(random, length));
  return b;
}

Bytes dns_query(Random& random, std::uint16_t id, std::string_view name, std::uint16_t type) {
  Bytes b;
  put16(b, id);
  put16(b, 0x0100);  // standard query, recursion desired
  put16(b, 1), put16(b, 0), put16(b, 0), put16(b, 1);
  put_name(b, name);
  put16(b, type), put16(b, 1);
  // EDNS(0) OPT record, 1232-byte UDP payload, as resolvers send today
  put8(b, 0), put16(b, 41), put16(b, 1232), put32(b, 0), put16(b, 0);
  (void)random;
  return b;
}

Bytes dns_response(Random& random, std::uint16_t id, std::string_view name, std::uint16_t type) {
  Bytes b;
  const std::uint16_t answers = static_cast<std::uint16_t>(1 + random.below(3));
  put16(b, id);
  put16(b, 0x8180);  // response, recursion desired and available, no error
  put16(b, 1), put16(b, answers), put16(b, 0), put16(b, 1);
  put_name(b, name);
  put16(b, type), put16(b, 1);
  for (std::uint16_t i = 0; i < answers; ++i) {
    put16(b, 0xc00c);  // pointer to the question's name
    put16(b, type), put16(b, 1);
    put32(b, static_cast<std::uint32_t>(60 + random.below(3600)));
    if (type == 28) {
      put16(b, 16);
      put16(b, 0x2001), put16(b, 0x0db8);
      put(b, random_bytes(random, 12));
    } else {
      put16(b, 4);
      put8(b, 203), put8(b, 0), put8(b, 113), put8(b, static_cast<std::uint8_t>(1 + random.below(254)));
    }
  }
  put8(b, 0), put16(b, 41), put16(b, 1232), put32(b, 0), put16(b, 0);
  return b;
}

std::string http_request(std::string_view host, std::string_view path) {
  return fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 "
      "Firefox/115.0\r\nAccept: "
      "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
      "Upgrade-Insecure-Requests: 1\r\n\r\n",
      path, host);
}

std::string http_response(Random& random, std::size_t body_length) {
  static const char* words[] = {"network", "traffic",        "packet",         "flow", "protocol", "the",     "of",
                                "and",     "classification", "identification", "deep", "learning", "capture", "a"};
  std::string body =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"UTF-8\"><title>Network traffic</title></head><body><p>";
  while (body.size() + 20 < body_length) {
    body += words[random.below(std::size(words))];
    body += random.below(12) == 0 ? ".</p>\n<p>" : " ";
  }
  body += "</p></body></html>\n";
  return fmt::format(
      "HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nServer: ATS/9.1.4\r\nContent-Type: text/html; "
      "charset=UTF-8\r\nContent-Length: {}\r\nCache-Control: private, s-maxage=0, max-age=0, must-revalidate\r\n"
      "Connection: keep-alive\r\n\r\n{}",
      body.size(), body);
}

std::string ssh_banner(bool client) {
  return client ? "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u1\r\n" : "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.4\r\n";
}

namespace {
// Binary packet protocol framing (RFC 4253 §6): length, padding length, payload, padding.
Bytes ssh_frame(Random& random, const Bytes& payload) {
  std::size_t padding = 8 - (payload.size() + 5) % 8;
  if (padding < 4) padding += 8;
  Bytes b;
  put32(b, static_cast<std::uint32_t>(1 + payload.size() + padding));
  put8(b, static_cast<std::uint8_t>(padding));
  put(b, payload);
  put(b, random_bytes(random, padding));
  return b;
}
}  // namespace

Bytes ssh_kexinit(Random& random, bool client) {
  Bytes p;
  put8(p, 20);  // SSH_MSG_KEXINIT
  put(p, random_bytes(random, 16));
  const std::string lists[] = {
      client ? "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
               "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,ext-info-c"
             : "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha256",
      "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519",
      "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
      "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
      "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com",
      "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com",
      "none,zlib@openssh.com",
      "none,zlib@openssh.com",
      "",
      ""};
  for (const auto& l : lists) {
    put32(p, static_cast<std::uint32_t>(l.size()));
    put(p, l);
  }
  put8(p, 0);   // first_kex_packet_follows
  put32(p, 0);  // reserved
  return ssh_frame(random, p);
}

namespace {
void put_ssh_string(Bytes& b, std::span<const std::uint8_t> value) {
  put32(b, static_cast<std::uint32_t>(value.size()));
  put(b, value);
}
void put_ssh_string(Bytes& b, std::string_view value) {
  put32(b, static_cast<std::uint32_t>(value.size()));
  put(b, value);
}
}  // namespace

Bytes ssh_ecdh_init(Random& random) {
  Bytes p;
  put8(p, 30);  // SSH_MSG_KEX_ECDH_INIT
  put_ssh_string(p, random_bytes(random, 32));
  return ssh_frame(random, p);
}

Bytes ssh_ecdh_reply(Random& random) {
  Bytes host_key, signature, p;
  put_ssh_string(host_key, "ssh-ed25519");
  put_ssh_string(host_key, random_bytes(random, 32));
  put_ssh_string(signature, "ssh-ed25519");
  put_ssh_string(signature, random_bytes(random, 64));
  put8(p, 31);  // SSH_MSG_KEX_ECDH_REPLY
  put_ssh_string(p, host_key);
  put_ssh_string(p, random_bytes(random, 32));
  put_ssh_string(p, signature);
  return ssh_frame(random, p);
}

Bytes ssh_newkeys(Random& random) {
  Bytes p;
  put8(p, 21);  // SSH_MSG_NEWKEYS
  return ssh_frame(random, p);
}

Bytes bittorrent_handshake(Random& random, std::span<const std::uint8_t> info_hash) {
  Bytes b;
  put8(b, 19);
  put(b, "BitTorrent protocol");
  const std::uint8_t reserved[8] = {0, 0, 0, 0, 0, 0x10, 0, 0x05};  // extension protocol, DHT, fast
  put(b, reserved);
  put(b, info_hash);
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string peer_id = "-qB4620-";
  while (peer_id.size() < 20) peer_id += alphabet[random.below(sizeof alphabet - 1)];
  put(b, peer_id);
  return b;
}

Bytes bittorrent_message(Random& random, std::uint8_t id, std::size_t length) {
  Bytes b;
  put32(b, static_cast<std::uint32_t>(1 + length));
  put8(b, id);
  put(b, random_bytes(random, length));
  return b;
}

namespace {
constexpr std::uint32_t stun_magic = 0x2112a442;

void stun_fingerprint(Bytes& b) {
  // Length must include the FINGERPRINT attribute before the CRC is computed (RFC 5389 §15.5).
  std::uint16_t length = static_cast<std::uint16_t>(b.size() - 20 + 8);
  b[2] = static_cast<std::uint8_t>(length >> 8);
  b[3] = static_cast<std::uint8_t>(length);
  std::uint32_t crc = crc32(b) ^ 0x5354554e;
  put16(b, 0x8028), put16(b, 4), put32(b, crc);
}
}  // namespace

Bytes stun_binding_request(Random& random, std::array<std::uint8_t, 12>& transaction) {
  random.fill(transaction);
  Bytes b;
  put16(b, 0x0001);
  put16(b, 0);
  put32(b, stun_magic);
  put(b, transaction);
  std::string software = "libjuice 1.2.3";
  put16(b, 0x8022), put16(b, static_cast<std::uint16_t>(software.size()));
  put(b, software);
  while (b.size() % 4) put8(b, 0);
  stun_fingerprint(b);
  return b;
}

Bytes stun_binding_response(const std::array<std::uint8_t, 12>& transaction, const Endpoint& mapped) {
  Bytes b;
  put16(b, 0x0101);
  put16(b, 0);
  put32(b, stun_magic);
  put(b, transaction);
  put16(b, 0x0020), put16(b, 8);  // XOR-MAPPED-ADDRESS
  put8(b, 0), put8(b, 0x01);
  put16(b, static_cast<std::uint16_t>(mapped.port ^ (stun_magic >> 16)));
  for (int i = 0; i < 4; ++i)
    put8(b, static_cast<std::uint8_t>(mapped.ip[static_cast<std::size_t>(i)] ^ (stun_magic >> (24 - 8 * i))));
  stun_fingerprint(b);
  return b;
}

Bytes ntp_packet(Random& random, bool client, std::int64_t now_ns) {
  Bytes b;
  put8(b, client ? 0x23 : 0x24);      // NTPv4, mode 3 (client) or 4 (server)
  put8(b, client ? 0 : 2);            // stratum
  put8(b, 6);                         // poll
  put8(b, client ? 0x20 : 0xe9);      // precision
  put32(b, client ? 0 : 0x00000a3c);  // root delay
  put32(b, client ? 0 : 0x00001b2e);  // root dispersion
  if (client) put32(b, 0);
  else put8(b, 198), put8(b, 51), put8(b, 100), put8(b, 7);  // reference id
  std::uint64_t seconds = static_cast<std::uint64_t>(now_ns / 1'000'000'000) + 2208988800ull;
  std::uint64_t fraction = static_cast<std::uint64_t>(now_ns % 1'000'000'000) * (1ull << 32) / 1'000'000'000;
  std::uint64_t stamp = seconds << 32 | fraction;
  auto put64 = [&](std::uint64_t v) {
    put32(b, static_cast<std::uint32_t>(v >> 32));
    put32(b, static_cast<std::uint32_t>(v));
  };
  if (client) {
    put64(0), put64(0), put64(0);
    put64(stamp ^ (random.next() & 0xffffffff));  // transmit (randomised low bits, as chrony does)
  } else {
    put64(stamp - (1ull << 32) * 64), put64(stamp - (1ull << 32) / 50), put64(stamp - (1ull << 32) / 60), put64(stamp);
  }
  return b;
}

}  // namespace trafficid::synth
