#include "pipeline/sharded_labeling.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <iterator>
#include <mutex>
#include <thread>

namespace trafficid::host {

namespace {
// Packets copied out of the reader's buffer, in batches, with their parsed views.
struct Batch {
  std::vector<std::uint8_t> bytes;
  std::vector<PacketView> packets;  // data spans are fixed up on the worker side
  std::vector<std::size_t> offsets;
};
constexpr std::size_t batch_packets = 512;

// A run's flows in a fixed order, however the work was split: by first packet, then 5-tuple, then
// the order the labeler ended them.
bool earlier(const FlowRecord& a, const FlowRecord& b) {
  return std::tie(a.first_ns, a.tuple) < std::tie(b.first_ns, b.tuple);
}

// Flows already in order (a capture whose timestamps only grow) are returned as they are. Otherwise
// the keys are copied side by side and sorted, and the records moved into place once: records
// carry eight strings and lie wherever the labeler made them, and comparing them where they lie was
// mostly cache misses. 280,299 flows of the 1 GB rewritten benchmark capture: 0.14 s, against
// 0.24-0.27 s sorting indexes that compared the records (three runs each, timed around this call).
void by_first_packet(FlowList& flows) {
  if (std::is_sorted(flows.begin(), flows.end(), earlier)) return;
  struct Key {
    std::int64_t first_ns;
    FiveTuple tuple;
    std::uint32_t index;
  };
  std::vector<Key> keys;
  keys.reserve(flows.size());
  for (std::uint32_t i = 0; i < flows.size(); ++i) keys.push_back({flows[i].first_ns, flows[i].tuple, i});
  std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
    return std::tie(a.first_ns, a.tuple, a.index) < std::tie(b.first_ns, b.tuple, b.index);
  });
  // Into place, one cycle of the permutation at a time: no second vector of records to fault in.
  std::vector<std::uint32_t> from(keys.size());
  for (std::size_t k = 0; k < keys.size(); ++k) from[k] = keys[k].index;
  keys = {};
  for (std::uint32_t start = 0; start < from.size(); ++start) {
    if (from[start] == start) continue;
    FlowRecord held = std::move(flows[start]);
    std::uint32_t at = start;
    while (from[at] != start) {
      const std::uint32_t next = from[at];
      flows[at] = std::move(flows[next]);
      from[at] = at;
      at = next;
    }
    flows[at] = std::move(held);
    from[at] = at;
  }
}
constexpr std::size_t queue_batches = 16;
}  // namespace

struct ShardedLabeling::Worker : FlowSink {
  PluginHandle<Labeler> labeler;
  PacketHook* hook = nullptr;
  std::uint64_t index = 0, count = 1;  // this worker's place among `count`: its flow ids are made unique
  std::thread thread;
  std::mutex mutex;
  std::condition_variable ready, space;
  std::deque<Batch> queue;
  std::vector<Batch> spare;  // emptied batches keep their buffers: no allocation (and page faults) per batch
  bool closing = false;
  Batch filling;
  FlowList flows;
  bool keep_early = true;  // keep the flows that end before the input does
  bool flushing = false;   // the input ended: the labeler ends every flow it holds
  std::exception_ptr failure;

  std::uint64_t global_id(std::uint64_t local) const { return local ? (local - 1) * count + index + 1 : 0; }

  void emit(const FlowRecord& flow) override {
    if (!keep_early && !flushing) {
      if (!hook) return;
      FlowRecord ended = flow;
      ended.flow_id = global_id(flow.flow_id);
      hook->on_flow(ended);
      return;
    }
    flows.push_back(flow);
    flows.back().flow_id = global_id(flow.flow_id);
    if (hook) hook->on_flow(flows.back());
  }

  void label(const PacketView& p) {
    PacketFlow counted = labeler([&](Labeler& l) { return l.process(p, *this); });
    if (hook && counted.flow_id) {
      counted.flow_id = global_id(counted.flow_id);
      hook->on_packet(p, counted);
    }
  }

  void run() {
    try {
      while (true) {
        Batch batch;
        {
          std::unique_lock lock(mutex);
          ready.wait(lock, [&] { return !queue.empty() || closing; });
          if (queue.empty()) break;
          batch = std::move(queue.front());
          queue.pop_front();
        }
        space.notify_one();
        for (std::size_t i = 0; i < batch.packets.size(); ++i) {
          PacketView& p = batch.packets[i];
          p.data = std::span<const std::uint8_t>(batch.bytes.data() + batch.offsets[i], p.data.size());
          label(p);
        }
        batch.bytes.clear();
        batch.packets.clear();
        batch.offsets.clear();
        std::lock_guard lock(mutex);
        if (spare.size() < 4) spare.push_back(std::move(batch));
      }
      flushing = true;
      labeler([&](Labeler& l) { l.flush(*this); });
      by_first_packet(flows);  // in parallel; finish() joins the parts
    } catch (...) {
      failure = std::current_exception();
      std::lock_guard lock(mutex);
      queue.clear();
      closing = true;
      space.notify_all();
    }
  }
};

ShardedLabeling::ShardedLabeling(Factory make_labeler, unsigned workers, const SourceFileInfo& file,
                                 std::vector<PacketHook*> hooks, bool keep_early) {
  workers = std::max(1u, workers);
  if (!hooks.empty() && hooks.size() != workers) throw Error("internal: one packet hook per labelling worker");
  for (unsigned i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    w->count = workers;
    w->keep_early = keep_early;
    if (!hooks.empty()) w->hook = hooks[i];
    w->labeler = make_labeler();
    w->labeler([&](Labeler& l) { l.begin_file(file); });
    workers_.push_back(std::move(w));
  }
  // One worker labels in the caller's thread, without copying packets; several have a thread each
  // and the caller only reads and parses (letting the reader label one shard itself was measured:
  // the same for `label`, 3-5% slower for `prepro`, whose workers also extract features).
  if (workers_.size() > 1)
    for (auto& w : workers_) w->thread = std::thread([worker = w.get()] { worker->run(); });
}

ShardedLabeling::~ShardedLabeling() {
  if (!finished_) {
    try {
      finish();
    } catch (...) {
    }
  }
}

void ShardedLabeling::process(const PacketView& packet) {
  if (workers_.size() == 1) {
    workers_[0]->label(packet);
    return;
  }
  // By host pair, not 5-tuple: nDPI remembers hosts across flows (the BitTorrent and STUN caches),
  // so every flow between two hosts must meet the same detection module.
  FiveTuple hosts;
  hosts.src = packet.tuple.src;
  hosts.dst = packet.tuple.dst;
  const std::size_t index = symmetric_hash(hosts) % workers_.size();
  Worker& w = *workers_[index];
  w.filling.offsets.push_back(w.filling.bytes.size());
  w.filling.bytes.insert(w.filling.bytes.end(), packet.data.begin(), packet.data.end());
  w.filling.packets.push_back(packet);
  if (w.filling.packets.size() >= batch_packets) dispatch(index);
}

void ShardedLabeling::dispatch(std::size_t index) {
  Worker& w = *workers_[index];
  if (w.filling.packets.empty()) return;
  {
    std::unique_lock lock(w.mutex);
    w.space.wait(lock, [&] { return w.queue.size() < queue_batches || w.closing; });
    if (w.failure) std::rethrow_exception(w.failure);
    w.queue.push_back(std::move(w.filling));
  }
  std::lock_guard lock(w.mutex);
  if (w.spare.empty()) {
    w.filling = Batch{};
  } else {
    w.filling = std::move(w.spare.back());
    w.spare.pop_back();
  }
  w.ready.notify_one();
}

FlowList ShardedLabeling::finish() {
  finished_ = true;
  if (workers_.size() == 1) {
    Worker& only = *workers_[0];
    only.flushing = true;
    only.labeler([&](Labeler& l) { l.flush(only); });
    by_first_packet(only.flows);
    return std::move(only.flows);
  }
  std::exception_ptr failure;
  try {
    for (std::size_t i = 0; i < workers_.size(); ++i) dispatch(i);
  } catch (...) {
    failure = std::current_exception();
  }
  for (auto& w : workers_) {
    {
      std::lock_guard lock(w->mutex);
      w->closing = true;
    }
    w->ready.notify_one();
  }
  for (auto& w : workers_) w->thread.join();
  if (failure) std::rethrow_exception(failure);
  for (auto& w : workers_)
    if (w->failure) std::rethrow_exception(w->failure);
  // Each worker's flows are sorted and no flow is in two workers: taking the earliest front each
  // time (the first worker's on a tie) gives the order one labeler would have. Each record leaves
  // its worker's deque as it joins the result, so the memory it frees holds the next one: the
  // file's records are never held twice (a merge into a new vector held them twice).
  FlowList flows;
  while (true) {
    Worker* first = nullptr;
    for (auto& w : workers_)
      if (!w->flows.empty() && (!first || earlier(w->flows.front(), first->flows.front()))) first = w.get();
    if (!first) break;
    flows.push_back(std::move(first->flows.front()));
    first->flows.pop_front();
  }
  return flows;
}

}  // namespace trafficid::host
