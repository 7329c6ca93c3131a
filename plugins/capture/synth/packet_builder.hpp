// Builds Ethernet/IPv4/TCP and UDP packets with correct lengths and checksums, and plays TCP
// conversations (handshake, segmented data with ACKs, teardown) with consistent sequence numbers.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace trafficid::synth {

// Deterministic generator (splitmix64): the same seed gives the same capture on every machine.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  std::uint64_t below(std::uint64_t bound) { return bound ? next() % bound : 0; }
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo + 1)));
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  void fill(std::span<std::uint8_t> out);
  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[below(items.size())];
  }

 private:
  std::uint64_t state_;
};

struct Endpoint {
  std::array<std::uint8_t, 6> mac{};
  std::array<std::uint8_t, 4> ip{};
  std::uint16_t port = 0;
  std::uint8_t ttl = 64;
};

struct Frame {
  std::int64_t timestamp_ns = 0;
  std::vector<std::uint8_t> bytes;
};

using Bytes = std::vector<std::uint8_t>;

// Appends big-endian integers and strings to a byte vector.
void put8(Bytes& b, std::uint8_t v);
void put16(Bytes& b, std::uint16_t v);
void put24(Bytes& b, std::uint32_t v);
void put32(Bytes& b, std::uint32_t v);
void put(Bytes& b, std::string_view text);
void put(Bytes& b, std::span<const std::uint8_t> bytes);
// Writes a 16/24-bit big-endian length of everything appended after `at`+width.
void patch16(Bytes& b, std::size_t at);
void patch24(Bytes& b, std::size_t at);

// One conversation between a client and a server; appends frames to `out`.
class Conversation {
 public:
  Conversation(std::vector<Frame>& out, Random& random, Endpoint client, Endpoint server, std::uint8_t protocol,
               std::int64_t start_ns, std::int64_t rtt_ns);

  // TCP
  void handshake();
  // Sends `payload` from one side, split into MSS-sized segments, each acknowledged by the peer.
  void send(bool from_client, std::span<const std::uint8_t> payload);
  void send(bool from_client, std::string_view text) {
    send(from_client, std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }
  void close();

  // UDP: one datagram.
  void datagram(bool from_client, std::span<const std::uint8_t> payload);

  // Time passes (thinking, streaming pauses).
  void wait(std::int64_t ns) { now_ += ns; }
  std::int64_t now() const { return now_; }

 private:
  void emit(bool from_client, std::uint8_t flags, std::span<const std::uint8_t> payload, bool syn_options = false);
  std::vector<Frame>& out_;
  Random& random_;
  Endpoint client_, server_;
  std::uint8_t protocol_;
  std::int64_t now_;
  std::int64_t rtt_;
  std::uint32_t seq_client_ = 0, seq_server_ = 0;
  std::uint16_t ip_id_client_ = 0, ip_id_server_ = 0;
  std::uint32_t ts_client_ = 0, ts_server_ = 0;
};

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

}  // namespace trafficid::synth
