// Labelers see every packet once, in capture order, and emit flow records with labels: when a
// flow ends (timeout, TCP teardown) or at flush(). A labeler never sees features or models.
#pragma once
#include "trafficid/capture.hpp"
#include "trafficid/flow.hpp"

namespace trafficid {

class TRAFFICID_SDK_API Labeler : public Plugin {
 public:
  ~Labeler() override;
  // Called when a new input starts, so file-based labelers (folder, regex) know the path.
  virtual void begin_file(const SourceFileInfo& file) = 0;
  virtual void process(const PacketView& packet, FlowSink& out) = 0;
  // Emit every flow still open.
  virtual void flush(FlowSink& out) = 0;
};

}  // namespace trafficid
