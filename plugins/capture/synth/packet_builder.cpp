#include "packet_builder.hpp"

#include <algorithm>

namespace trafficid::synth {

std::uint64_t Random::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void Random::fill(std::span<std::uint8_t> out) {
  for (auto& b : out) b = static_cast<std::uint8_t>(next() >> 56);
}

void put8(Bytes& b, std::uint8_t v) { b.push_back(v); }
void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void put24(Bytes& b, std::uint32_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 16));
  put16(b, static_cast<std::uint16_t>(v));
}
void put32(Bytes& b, std::uint32_t v) {
  put16(b, static_cast<std::uint16_t>(v >> 16));
  put16(b, static_cast<std::uint16_t>(v));
}
void put(Bytes& b, std::string_view text) { b.insert(b.end(), text.begin(), text.end()); }
void put(Bytes& b, std::span<const std::uint8_t> bytes) { b.insert(b.end(), bytes.begin(), bytes.end()); }
void patch16(Bytes& b, std::size_t at) {
  auto n = static_cast<std::uint16_t>(b.size() - at - 2);
  b[at] = static_cast<std::uint8_t>(n >> 8);
  b[at + 1] = static_cast<std::uint8_t>(n);
}
void patch24(Bytes& b, std::size_t at) {
  auto n = static_cast<std::uint32_t>(b.size() - at - 3);
  b[at] = static_cast<std::uint8_t>(n >> 16);
  b[at + 1] = static_cast<std::uint8_t>(n >> 8);
  b[at + 2] = static_cast<std::uint8_t>(n);
}

namespace {

constexpr std::size_t mss = 1448;

std::uint32_t checksum_add(std::uint32_t sum, std::span<const std::uint8_t> data) {
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (i < data.size()) sum += static_cast<std::uint32_t>(data[i] << 8);
  return sum;
}

std::uint16_t checksum_fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// Ethernet + IPv4 around an L4 segment whose checksum field sits at `checksum_at` (in l4).
Bytes frame(const Endpoint& from, const Endpoint& to, std::uint8_t protocol, std::uint16_t ip_id, Bytes l4,
            std::size_t checksum_at) {
  // L4 checksum over the pseudo-header and the segment.
  std::uint32_t sum = 0;
  sum = checksum_add(sum, from.ip);
  sum = checksum_add(sum, to.ip);
  sum += protocol;
  sum += static_cast<std::uint32_t>(l4.size());
  sum = checksum_add(sum, l4);
  std::uint16_t l4_sum = checksum_fold(sum);
  if (protocol == 17 && l4_sum == 0) l4_sum = 0xffff;
  l4[checksum_at] = static_cast<std::uint8_t>(l4_sum >> 8);
  l4[checksum_at + 1] = static_cast<std::uint8_t>(l4_sum);

  Bytes b;
  b.reserve(34 + l4.size());
  put(b, to.mac);
  put(b, from.mac);
  put16(b, 0x0800);
  std::size_t ip = b.size();
  put8(b, 0x45);
  put8(b, 0);
  put16(b, static_cast<std::uint16_t>(20 + l4.size()));
  put16(b, ip_id);
  put16(b, 0x4000);  // don't fragment
  put8(b, from.ttl);
  put8(b, protocol);
  put16(b, 0);
  put(b, from.ip);
  put(b, to.ip);
  std::uint16_t ip_sum = checksum_fold(checksum_add(0, std::span(b).subspan(ip, 20)));
  b[ip + 10] = static_cast<std::uint8_t>(ip_sum >> 8);
  b[ip + 11] = static_cast<std::uint8_t>(ip_sum);
  put(b, l4);
  return b;
}

}  // namespace

Conversation::Conversation(std::vector<Frame>& out, Random& random, Endpoint client, Endpoint server,
                           std::uint8_t protocol, std::int64_t start_ns, std::int64_t rtt_ns)
    : out_(out), random_(random), client_(client), server_(server), protocol_(protocol), now_(start_ns), rtt_(rtt_ns) {
  seq_client_ = static_cast<std::uint32_t>(random.next());
  seq_server_ = static_cast<std::uint32_t>(random.next());
  ip_id_client_ = static_cast<std::uint16_t>(random.next());
  ip_id_server_ = static_cast<std::uint16_t>(random.next());
  ts_client_ = static_cast<std::uint32_t>(random.below(1u << 30));
  ts_server_ = static_cast<std::uint32_t>(random.below(1u << 30));
}

void Conversation::emit(bool from_client, std::uint8_t flags, std::span<const std::uint8_t> payload, bool syn_options) {
  const Endpoint& from = from_client ? client_ : server_;
  const Endpoint& to = from_client ? server_ : client_;
  std::uint32_t& seq = from_client ? seq_client_ : seq_server_;
  std::uint32_t ack = from_client ? seq_server_ : seq_client_;
  std::uint32_t& ts = from_client ? ts_client_ : ts_server_;
  std::uint32_t ts_echo = from_client ? ts_server_ : ts_client_;
  ts += static_cast<std::uint32_t>(1 + now_ / 1'000'000 % 7);
  Bytes l4;
  put16(l4, from.port);
  put16(l4, to.port);
  put32(l4, seq);
  put32(l4, flags & tcp_flag::ack ? ack : 0);
  std::size_t header_length = syn_options ? 40 : 32;
  put8(l4, static_cast<std::uint8_t>(header_length / 4 << 4));
  put8(l4, flags);
  put16(l4, syn_options ? 64240 : 501);
  put16(l4, 0);       // checksum
  put16(l4, 0);       // urgent pointer
  if (syn_options) {  // MSS, SACK permitted, timestamps, window scale: what Linux sends
    put8(l4, 2), put8(l4, 4), put16(l4, 1460);
    put8(l4, 4), put8(l4, 2);
    put8(l4, 8), put8(l4, 10), put32(l4, ts), put32(l4, flags & tcp_flag::ack ? ts_echo : 0);
    put8(l4, 1), put8(l4, 3), put8(l4, 3), put8(l4, 7);
  } else {  // NOP, NOP, timestamps
    put8(l4, 1), put8(l4, 1), put8(l4, 8), put8(l4, 10), put32(l4, ts), put32(l4, ts_echo);
  }
  put(l4, payload);
  std::uint16_t& ip_id = from_client ? ip_id_client_ : ip_id_server_;
  out_.push_back({now_, frame(from, to, 6, ip_id++, std::move(l4), 16)});
  seq += static_cast<std::uint32_t>(payload.size()) + ((flags & (tcp_flag::syn | tcp_flag::fin)) ? 1 : 0);
}

void Conversation::handshake() {
  emit(true, tcp_flag::syn, {}, true);
  now_ += rtt_ / 2;
  emit(false, tcp_flag::syn | tcp_flag::ack, {}, true);
  now_ += rtt_ / 2;
  emit(true, tcp_flag::ack, {});
  now_ += 200'000 + static_cast<std::int64_t>(random_.below(800'000));
}

void Conversation::send(bool from_client, std::span<const std::uint8_t> payload) {
  if (protocol_ == 17) {
    datagram(from_client, payload);
    return;
  }
  std::size_t segments = 0;
  for (std::size_t at = 0; at < payload.size(); at += mss) {
    auto part = payload.subspan(at, std::min(mss, payload.size() - at));
    bool last = at + part.size() >= payload.size();
    emit(from_client, tcp_flag::ack | (last ? tcp_flag::psh : 0), part);
    now_ += 20'000 + static_cast<std::int64_t>(random_.below(60'000));  // serialisation and pacing
    // Delayed ACK: every second segment and after the last one.
    if (++segments % 2 == 0 || last) {
      now_ += rtt_ / 2;
      emit(!from_client, tcp_flag::ack, {});
      now_ += 10'000;
    }
  }
  now_ += rtt_ / 2;
}

void Conversation::close() {
  emit(true, tcp_flag::fin | tcp_flag::ack, {});
  now_ += rtt_ / 2;
  emit(false, tcp_flag::fin | tcp_flag::ack, {});
  now_ += rtt_ / 2;
  emit(true, tcp_flag::ack, {});
}

void Conversation::datagram(bool from_client, std::span<const std::uint8_t> payload) {
  const Endpoint& from = from_client ? client_ : server_;
  const Endpoint& to = from_client ? server_ : client_;
  Bytes l4;
  put16(l4, from.port);
  put16(l4, to.port);
  put16(l4, static_cast<std::uint16_t>(8 + payload.size()));
  put16(l4, 0);
  put(l4, payload);
  std::uint16_t& ip_id = from_client ? ip_id_client_ : ip_id_server_;
  out_.push_back({now_, frame(from, to, 17, ip_id++, std::move(l4), 6)});
  now_ += rtt_ / 2;
}

}  // namespace trafficid::synth
