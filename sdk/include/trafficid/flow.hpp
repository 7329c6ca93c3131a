// Flow records: what labelers emit, keyed by the canonical 5-tuple and the file it came from.
#pragma once
#include <cstdint>
#include <string>

#include "trafficid/packet.hpp"

namespace trafficid {

struct FlowRecord {
  std::uint64_t flow_id = 0;  // unique within a run
  std::uint32_t file_id = 0;
  FiveTuple tuple;  // client (first packet's sender) as src
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  std::uint64_t packets_c2s = 0, packets_s2c = 0;
  std::uint64_t bytes_c2s = 0, bytes_s2c = 0;
  // Labels. `label` is the class used downstream; the rest is what the labeler saw.
  std::string label;            // e.g. "TLS.YouTube" from nDPI, or the folder name
  std::string master_protocol;  // "TLS"
  std::string app_protocol;     // "YouTube"
  std::string category;         // "Media"
  std::string confidence;       // "DPI", "Match by port", ...
  std::string server_name;      // SNI or HTTP host
  std::string ja3_client, ja3_server;
};

class TRAFFICID_SDK_API FlowSink {
 public:
  virtual ~FlowSink();
  virtual void emit(const FlowRecord& flow) = 0;
};

}  // namespace trafficid
