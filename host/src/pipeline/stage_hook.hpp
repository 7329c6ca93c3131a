// The one interface of the stages after labelling (features into a dataset, predictions, a labels
// database): what the pipeline tells them about each packet, input and labelled flow.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "pipeline/sharded_labeling.hpp"

namespace trafficid::host {

// A stage that hangs off the pipeline. Every method has a default that does nothing.
class StageHook {
 public:
  virtual ~StageHook() = default;
  // Every packet read, in the reading thread, before it is labelled.
  virtual void on_read(const PacketView& packet) { (void)packet; }
  // An input starts: one PacketHook per labelling worker (each runs in its worker's thread), or none.
  virtual std::vector<PacketHook*> begin_input(const SourceFileInfo& file, unsigned workers) {
    (void)file;
    (void)workers;
    return {};
  }
  // True: the PacketHooks take each flow as the labeler ends it (on_flow), and the flows that end
  // before the input does are not kept for the end of the input (labelled(), input_flows()). A
  // live capture that runs for days then holds only its open flows, not every flow it has seen.
  virtual bool streams_flows() const { return false; }
  // The input's last packet is labelled: its flows are being ended (timing what comes after).
  virtual void flows_ending() {}
  // A flow of the input, after the input's last packet, with its experiment class (nullopt: none).
  virtual void labelled(const FlowRecord& flow, const std::optional<std::string>& cls) {
    (void)flow;
    (void)cls;
  }
  // All the input's flows, sorted by first packet, handed over after the labelled() calls (a
  // stage that keeps them all takes them here instead of copying each).
  virtual void input_flows(FlowList&& flows) { (void)flows; }
  // The input ended after `packets` packets.
  virtual void end_input(std::uint64_t packets) { (void)packets; }
  // Every source read: what each said of its files at the end (counts, damage, content hashes).
  virtual void files_read(const std::vector<SourceFileInfo>& files) { (void)files; }
};

}  // namespace trafficid::host
