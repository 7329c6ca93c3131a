// Feature extractors turn labelled packets or flows into fixed-size samples.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trafficid/flow.hpp"
#include "trafficid/packet.hpp"
#include "trafficid/plugin.hpp"

namespace trafficid {

enum class DType : std::uint8_t { u8, f32 };
enum class Granularity : std::uint8_t { packet, flow };

struct FeatureSpec {
  DType dtype = DType::u8;
  Granularity granularity = Granularity::packet;
  std::vector<std::int64_t> shape;         // of one sample, e.g. {1500} or {8, 256}
  std::vector<std::string> column_names;   // optional, for tabular features
};

// A batch of samples in row-major order: `rows` samples of spec.shape each.
struct FeatureBatch {
  DType dtype = DType::u8;
  std::vector<std::int64_t> shape;
  std::size_t rows = 0;
  std::vector<std::uint8_t> data;  // rows * product(shape) * sizeof(dtype)
  std::vector<std::int64_t> labels;    // class index per row (-1 before labelling)
  std::vector<std::uint64_t> flow_ids;
  std::vector<std::uint32_t> file_ids;

  std::size_t row_elements() const {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
};

// Where extractors put samples: one call per sample.
class TRAFFICID_SDK_API SampleSink {
 public:
  virtual ~SampleSink();
  // `sample` holds product(spec.shape) elements of spec.dtype.
  virtual void add(const void* sample, const FlowRecord& flow) = 0;
};

class TRAFFICID_SDK_API FeatureExtractor : public Plugin {
 public:
  ~FeatureExtractor() override;
  virtual FeatureSpec spec() const = 0;
  // `flow` is the labelled flow the packet belongs to.
  virtual void process(const PacketView& packet, const FlowRecord& flow, SampleSink& out) = 0;
  // Flow-level extractors emit their samples here (and when a flow ends, if they track that).
  virtual void flush(SampleSink& out) = 0;
};

}  // namespace trafficid
