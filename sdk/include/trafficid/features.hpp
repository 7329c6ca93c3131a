// Feature extractors turn packets, grouped by the flow the labeler put them in, into fixed-size
// samples. They never see labels: the host joins each sample to its flow's class afterwards, so
// one extractor serves every labelling scheme.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "trafficid/flow.hpp"
#include "trafficid/labeler.hpp"
#include "trafficid/packet.hpp"
#include "trafficid/plugin.hpp"

namespace trafficid {

enum class DType : std::uint8_t { u8, f32 };
enum class Granularity : std::uint8_t { packet, flow };

TRAFFICID_SDK_API const char* to_string(DType dtype);  // NumPy's names: "uint8", "float32"
TRAFFICID_SDK_API const char* to_string(Granularity granularity);
TRAFFICID_SDK_API std::size_t dtype_size(DType dtype);

struct FeatureSpec {
  DType dtype = DType::u8;
  Granularity granularity = Granularity::packet;
  std::vector<std::int64_t> shape;        // of one sample, e.g. {1500} or {8, 256}
  std::vector<std::string> column_names;  // optional, for tabular features
  // u8 only: a sample may be handed over shorter than its shape, the rest being zeros. Datasets
  // then store only the bytes given (a Deep Packet vector of a 60-byte packet costs 60 bytes,
  // not 1500) and loaders pad them back.
  bool variable_length = false;
  // Flow samples only: shape[0] is the flow's packets in order and a row of zeros is no packet,
  // so the sample of the flow's first k packets is this one with rows k.. zeroed (what a model
  // would decide after k packets: the early-decision curve of reports).
  bool sequence = false;

  std::size_t elements() const {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
  std::size_t bytes() const { return elements() * dtype_size(dtype); }
};

// A batch of samples in row-major order: `rows` samples of spec.shape each.
struct FeatureBatch {
  DType dtype = DType::u8;
  std::vector<std::int64_t> shape;
  std::size_t rows = 0;
  std::vector<std::uint8_t> data;    // rows * product(shape) * sizeof(dtype)
  std::vector<std::int64_t> labels;  // class index per row (-1 before labelling)
  std::vector<std::uint64_t> flow_ids;
  std::vector<std::uint32_t> file_ids;

  std::size_t row_elements() const {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
  // Element `i` of the batch (row-major over all rows) as a float: bytes scaled to [0, 1], as
  // every model reads them (LibTorch models do the same in one tensor operation).
  float value(std::size_t i) const {
    if (dtype == DType::u8) return static_cast<float>(data[i]) / 255.0f;
    float f;
    std::memcpy(&f, data.data() + i * sizeof(float), sizeof f);
    return f;
  }
};

// Where extractors put samples.
class TRAFFICID_SDK_API SampleSink {
 public:
  virtual ~SampleSink();
  // `sample`: one sample in row-major order, of spec().dtype; spec().bytes() long, or up to that
  // for variable-length specs. `flow_id` is the labeler's id of the flow it belongs to.
  virtual void add(std::span<const std::uint8_t> sample, std::uint64_t flow_id) = 0;
};

class TRAFFICID_SDK_API FeatureExtractor : public Plugin {
 public:
  ~FeatureExtractor() override;
  virtual FeatureSpec spec() const = 0;
  // Every packet the labeler counted in a flow, in capture order. Packet-level extractors emit
  // here; flow-level ones update the flow's state.
  virtual void process(const PacketView& packet, const PacketFlow& flow, SampleSink& out) = 0;
  // The labeler ended a flow (a timeout, a teardown, the end of an input): a flow-level extractor
  // emits the flow's sample now and forgets it. No packet of that flow id follows.
  virtual void end_flow(const FlowRecord& flow, SampleSink& out);
};

}  // namespace trafficid
