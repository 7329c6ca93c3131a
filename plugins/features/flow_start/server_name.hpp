// The name a flow's client asks for in its first payload: a TLS ClientHello's server_name (SNI)
// or an HTTP request's Host, and the hashed tokens of that name that flow_start gives models.
// Parsed from one packet's payload as it is, without reassembly: a ClientHello whose SNI sits in
// a later segment gives no name. Header-only so the unit tests check it against nDPI.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace trafficid::flow_start_features {

namespace detail {

inline std::size_t be16(std::span<const std::uint8_t> p, std::size_t at) {
  return (static_cast<std::size_t>(p[at]) << 8) | p[at + 1];
}

// A host name as DNS writes it (letters, digits, '-', '_', '.'), lowercased; empty if it is not one.
inline std::string host_name(std::string_view raw) {
  if (raw.empty() || raw.size() > 253) return {};
  std::string name;
  name.reserve(raw.size());
  for (char c : raw) {
    const auto u = static_cast<unsigned char>(c);
    if (!std::isalnum(u) && c != '-' && c != '_' && c != '.') return {};
    name.push_back(static_cast<char>(std::tolower(u)));
  }
  return name;
}

}  // namespace detail

// The server_name of a TLS ClientHello at the start of `p` (a TCP payload), or empty.
inline std::string tls_server_name(std::span<const std::uint8_t> p) {
  using detail::be16;
  // Record: handshake (22), version 3.x; then the ClientHello (1) with its 3-byte length.
  if (p.size() < 43 || p[0] != 0x16 || p[1] != 0x03 || p[5] != 0x01) return {};
  std::size_t at = 9 + 2 + 32;  // record and handshake headers, client version, random
  auto skip = [&](std::size_t length_bytes) {
    if (at + length_bytes > p.size()) return false;
    const std::size_t n = length_bytes == 1 ? p[at] : be16(p, at);
    at += length_bytes + n;
    return at <= p.size();
  };
  if (!skip(1) || !skip(2) || !skip(1)) return {};  // session id, cipher suites, compression methods
  if (at + 2 > p.size()) return {};
  const std::size_t end = std::min(p.size(), at + 2 + be16(p, at));
  at += 2;
  while (at + 4 <= end) {
    const std::size_t type = be16(p, at), length = be16(p, at + 2);
    at += 4;
    if (type == 0) {  // server_name: list length, then entries of type (0 = host_name), length, name
      if (at + 5 > end || p[at + 2] != 0) return {};
      const std::size_t n = be16(p, at + 3);
      if (at + 5 + n > end) return {};
      return detail::host_name({reinterpret_cast<const char*>(p.data() + at + 5), n});
    }
    at += length;
  }
  return {};
}

// The Host of an HTTP/1 request at the start of `p`, without its port, or empty.
inline std::string http_host(std::span<const std::uint8_t> p) {
  const std::string_view text(reinterpret_cast<const char*>(p.data()), p.size());
  static constexpr std::string_view methods[] = {"GET ",    "POST ",  "HEAD ",    "PUT ",
                                                 "DELETE ", "PATCH ", "OPTIONS ", "CONNECT "};
  bool request = false;
  for (auto m : methods) request = request || text.starts_with(m);
  if (!request) return {};
  for (std::size_t at = text.find("\r\n"); at != std::string_view::npos; at = text.find("\r\n", at + 2)) {
    const auto line = text.substr(at + 2, 5);
    if (line.size() < 5 || std::tolower(static_cast<unsigned char>(line[0])) != 'h' || line.substr(1, 4) != "ost:")
      continue;
    std::size_t from = at + 7;
    while (from < text.size() && text[from] == ' ') ++from;
    std::size_t to = text.find_first_of("\r\n:", from);
    if (to == std::string_view::npos) return {};  // the line goes on past this packet
    return detail::host_name(text.substr(from, to - from));
  }
  return {};
}

// The name the client asks for in this payload: TLS SNI or HTTP Host, or empty.
inline std::string server_name(std::span<const std::uint8_t> payload) {
  if (auto name = tls_server_name(payload); !name.empty()) return name;
  return http_host(payload);
}

// The buckets (0..buckets-1) of a name's tokens: its labels, split at '.' and '-'; labels of
// digits alone (an address, a counter) are left out. FNV-1a, so the same name gives the same
// buckets in every build.
inline std::vector<std::size_t> name_buckets(std::string_view name, std::size_t buckets) {
  std::vector<std::size_t> out;
  if (buckets == 0) return out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i < name.size() && name[i] != '.' && name[i] != '-') continue;
    const auto token = name.substr(start, i - start);
    start = i + 1;
    bool digits = true;
    for (char c : token) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (token.empty() || digits) continue;
    std::uint32_t h = 2166136261u;
    for (char c : token) h = (h ^ static_cast<std::uint8_t>(c)) * 16777619u;
    out.push_back(h % buckets);
  }
  return out;
}

}  // namespace trafficid::flow_start_features
