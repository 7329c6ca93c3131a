// Labels one input with several labeler objects in parallel: packets are sharded by a symmetric
// hash of their two hosts, so both directions of a flow, and every flow between two hosts, reach
// the same worker and nDPI module: labels are those of a single labeler. One reader, N workers,
// bounded queues.
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "runtime/plugin_registry.hpp"
#include "trafficid/labeler.hpp"

namespace trafficid::host {

// What runs beside each labeler, in its worker's thread (the feature stage): every packet with the
// flow it was counted in, and every flow the labeler ended. Flow ids are unique within the file.
class PacketHook {
 public:
  virtual ~PacketHook() = default;
  virtual void on_packet(const PacketView& packet, const PacketFlow& flow) = 0;
  virtual void on_flow(const FlowRecord& flow) = 0;
};

// A file's flows. A deque: it grows without moving what it holds and frees each record's memory as
// it is taken from the front, so passing records from one list to another never holds them twice.
using FlowList = std::deque<FlowRecord>;

class ShardedLabeling {
 public:
  using Factory = std::function<PluginHandle<Labeler>()>;
  // `make_labeler` makes each worker's labeler; `hooks`: none, or one per worker. Without
  // `keep_early`, a flow that ends before the input does goes to the hooks only (finish() returns
  // the flows the input's end ended).
  ShardedLabeling(Factory make_labeler, unsigned workers, const SourceFileInfo& file,
                  std::vector<PacketHook*> hooks = {}, bool keep_early = true);
  ~ShardedLabeling();
  void process(const PacketView& packet);
  // Waits for the workers, flushes every labeler, and returns the flows sorted by first packet.
  FlowList finish();

 private:
  struct Worker;
  void dispatch(std::size_t worker);
  std::vector<std::unique_ptr<Worker>> workers_;
  bool finished_ = false;
};

}  // namespace trafficid::host
