// Labelers see every packet once, in capture order, and emit flow records with labels: when a
// flow ends (timeout, TCP teardown) or at flush(). A labeler never sees features or models.
#pragma once
#include "trafficid/capture.hpp"
#include "trafficid/flow.hpp"

namespace trafficid {

// The flow a packet was counted in, as the labeler returns it for each packet: what feature
// extractors need to group packets by flow, and what ties a packet-level sample to a flow label.
struct PacketFlow {
  std::uint64_t flow_id = 0;  // the FlowRecord::flow_id its flow will carry; 0: in no flow (not IP,
                              // a non-first IP fragment), such a packet gets no label
  bool from_client = true;    // sent by the flow's client (the sender of its first packet)
};

class TRAFFICID_SDK_API Labeler : public Plugin {
 public:
  ~Labeler() override;
  // Called when a new input starts, so file-based labelers (folder, regex) know the path.
  virtual void begin_file(const SourceFileInfo& file) = 0;
  // Counts the packet in its flow; may emit flows that ended before it. Flow ids are unique
  // within one labeler object.
  virtual PacketFlow process(const PacketView& packet, FlowSink& out) = 0;
  // Emit every flow still open.
  virtual void flush(FlowSink& out) = 0;
};

}  // namespace trafficid
