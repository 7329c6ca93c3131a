// knn: a flow is the class of the training flows it most resembles, each class judged by its
// single nearest training flow. Made for the classes a network cannot learn from one or two
// training flows (EVALUATION.md): one RDP flow on port 3389 or one `*.zoom.us` flow is a whole
// class here, as near to a new flow as the four hundred flows of another class are. It reads the
// flow_start extractor's samples by column name and sees each flow as four sets of tokens, each
// compared by cosine similarity, each token weighed by how few classes have it (a TLS version
// every class sends tells less than a banner one class sends):
//   port   the transport and the server's port;
//   name   the tokens of the server name the client asked for (flow_start's `names`);
//   bytes  the first payload bytes by position (the protocol header) and every 4 bytes in a row
//          anywhere in the payload (a banner, a magic number, a cipher list), of the first
//          `packets` payload packets and of the first payload of each direction;
//   shape  each packet's direction and size (log2), by position and as a bag; weighed 0 unless
//          asked for: sizes carry the network and session more than the application, and knn
//          scored higher without them on three sets of captures it never saw (README, `knn`).
// A flow's similarity to a training flow is the weighted sum of the four; a class's score is its
// largest; the probabilities are the softmax of the scores at the temperature of the lowest
// cross-entropy when each training flow is scored by the training flows of the other captures.
// Training stores the flows, once each: the model file is the training set's tokens, and a query
// looks them up through an inverted index.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <trafficid/declared_params.hpp>
#include <trafficid/sdk.hpp>
#include <trafficid/sequence_columns.hpp>
#include <trafficid/validation.hpp>
#include <unordered_map>

namespace trafficid::knn_model {
namespace {

constexpr std::size_t block_count = 4;  // port, name, bytes, shape

// Each parameter once: its schema entry beside the member it is read into.
struct Params {
  double port = 0, name = 0, bytes = 0, shape = 0, temperature = 0;
  std::int64_t packets = 0, header_bytes = 0;
  std::string idf;
  template <class Bind>
  void fields(Bind& bind) {
    bind(port, ParamSpec::real("port", 1.0, "weight of the transport and server port").range(0, 100));
    bind(name, ParamSpec::real("name", 1.0, "weight of the server name's tokens").range(0, 100));
    bind(bytes, ParamSpec::real("bytes", 1.0, "weight of the payload bytes (header and 4-grams)").range(0, 100));
    bind(shape, ParamSpec::real("shape", 0.0,
                                "weight of the packets' directions and sizes (0: left out; they tell the capture "
                                "more than the application)")
                    .range(0, 100));
    bind(packets, ParamSpec::integer("packets", 3, "payload packets whose bytes are read (and each direction's first)")
                      .range(0, 1024));
    bind(header_bytes,
         ParamSpec::integer("header_bytes", 64, "first payload bytes compared by position").range(0, 65536));
    bind(temperature, ParamSpec::real("temperature", 0.0,
                                      "softmax temperature of the class scores (0: fitted, each training flow "
                                      "scored by the other training captures' flows)")
                          .range(0, 100));
    bind(idf, ParamSpec::choice("idf", "classes", {"classes", "flows", "none"},
                                "weight of a token, log((1 + N) / (1 + n)) + 1 where n of the N training classes "
                                "(classes) or flows (flows) have it; none: 1"));
  }
  std::array<double, block_count> weights() const { return {port, name, bytes, shape}; }
};

// Where flow_start's columns sit, found by name.
struct Layout {
  SequenceColumns c;
  std::int64_t present = -1, from_server = -1, payload_length = -1, udp = -1, server_port = -1;
};

Layout layout_of(const FeatureSpec& spec) {
  Layout l{sequence_columns(spec, "knn")};
  for (auto [index, name] : {std::pair{&l.present, "present"},
                             {&l.from_server, "from_server"},
                             {&l.payload_length, "payload_length"},
                             {&l.udp, "udp"},
                             {&l.server_port, "server_port"}})
    if ((*index = l.c.at(name)) < 0)
      throw Error(fmt::format("knn: the samples have no `{}` column (flow_start's columns)", name));
  return l;
}

// A token: a few small numbers hashed into 32 bits (FNV-1a over their bytes), the same in every build.
std::uint32_t token(std::initializer_list<std::uint32_t> parts) {
  std::uint32_t h = 2166136261u;
  for (std::uint32_t part : parts)
    for (int shift = 0; shift < 32; shift += 8) h = (h ^ ((part >> shift) & 0xffu)) * 16777619u;
  return h;
}

// A flow as four sorted sets of tokens.
struct Tokens {
  std::array<std::vector<std::uint32_t>, block_count> keys;
  bool operator==(const Tokens&) const = default;
};

Tokens tokens_of(const float* sample, const Layout& l, const Params& p) {
  Tokens t;
  auto& [port, name, bytes, shape] = t.keys;
  port.push_back(token({0, sample[l.udp] > 0.5f, static_cast<std::uint32_t>(sample[l.server_port])}));
  bool seen[2] = {false, false};
  for (std::int64_t packet = 0; packet < l.c.packets; ++packet) {
    const float* row = sample + packet * l.c.columns;
    if (row[l.present] == 0.0f) break;
    const std::uint32_t from_server = row[l.from_server] > 0.5f;
    const double length = std::max(0.0, std::round(static_cast<double>(row[l.payload_length]) * 1500.0));
    const auto size = static_cast<std::uint32_t>(std::log2(1.0 + length));
    shape.push_back(token({1, static_cast<std::uint32_t>(packet), from_server, size}));
    shape.push_back(token({2, from_server, size}));
    for (std::int64_t k = 0; k < l.c.names; ++k)
      if (row[l.c.first_name + k] != 0.0f) name.push_back(static_cast<std::uint32_t>(k));
    if (l.c.bytes == 0 || (seen[from_server] && packet >= p.packets)) continue;
    seen[from_server] = true;
    const float* b = row + l.c.first_byte;
    std::int64_t n = 0;  // the payload's bytes in the sample: value + 1, 0 past its end
    while (n < l.c.bytes && b[n] != 0.0f) ++n;
    auto byte = [&](std::int64_t i) { return static_cast<std::uint32_t>(b[i]); };
    for (std::int64_t i = 0; i < std::min(n, p.header_bytes); ++i)
      bytes.push_back(token({3, from_server, static_cast<std::uint32_t>(i), byte(i)}));
    for (std::int64_t i = 0; i + 4 <= n; ++i)
      bytes.push_back(token({4, byte(i), byte(i + 1), byte(i + 2), byte(i + 3)}));
  }
  for (auto& keys : t.keys) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  }
  return t;
}

// The training flows: their classes and tokens, and for each block an inverted index from a
// token to the flows that have it.
class Neighbours {
  struct Posting {
    float weight = 1.0f;               // the token's weight
    std::vector<std::uint32_t> flows;  // the training flows that have it
  };

 public:
  void add(std::int32_t label, Tokens t, std::uint32_t file = 0) {
    if (!seen_.insert(digest(label, t)).second) return;  // a flow that is already there, once
    const auto id = static_cast<std::uint32_t>(labels_.size());
    files_.push_back(file);
    for (std::size_t b = 0; b < block_count; ++b)
      for (std::uint32_t key : t.keys[b]) postings_[b][key].flows.push_back(id);
    labels_.push_back(label);
    flows_.push_back(std::move(t));
  }

  // After the last add: each token's weight (1, or its inverse frequency among the training flows
  // or classes) and each flow's norm per block, the square root of its tokens' squared weights.
  void finish(const std::string& idf, std::size_t classes) {
    const double n = idf == "classes" ? static_cast<double>(classes) : static_cast<double>(flows_.size());
    auto weight = [&](double have) { return idf == "none" ? 1.0 : std::log((1.0 + n) / (1.0 + have)) + 1.0; };
    std::vector<char> has(classes);
    for (std::size_t b = 0; b < block_count; ++b) {
      unseen_[b] = static_cast<float>(weight(0));
      for (auto& [key, posting] : postings_[b]) {
        double have = static_cast<double>(posting.flows.size());
        if (idf == "classes") {
          std::fill(has.begin(), has.end(), 0);
          for (std::uint32_t id : posting.flows) has[static_cast<std::size_t>(labels_[id])] = 1;
          have = static_cast<double>(std::count(has.begin(), has.end(), 1));
        }
        posting.weight = static_cast<float>(weight(have));
      }
      norms_[b].assign(flows_.size(), 0.0f);
      for (std::size_t id = 0; id < flows_.size(); ++id) {
        double squares = 0;
        for (std::uint32_t key : flows_[id].keys[b]) {
          const double w = postings_[b].at(key).weight;
          squares += w * w;
        }
        norms_[b][id] = squares > 0 ? static_cast<float>(1.0 / std::sqrt(squares)) : 0.0f;
      }
    }
  }

  std::size_t size() const { return flows_.size(); }
  std::uint64_t tokens() const {
    std::uint64_t n = 0;
    for (const auto& f : flows_)
      for (const auto& keys : f.keys) n += keys.size();
    return n;
  }
  const std::vector<Tokens>& flows() const { return flows_; }
  const std::vector<std::int32_t>& labels() const { return labels_; }
  const std::vector<std::uint32_t>& files() const { return files_; }

  // Per class, the similarity of its nearest training flow (-infinity: the class has none), leaving
  // out the flows of capture `other_than` unless it is none.
  static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
  void scores(const Tokens& q, const std::array<double, block_count>& weights, std::vector<float>& similarity,
              double* out, std::size_t classes, std::uint32_t other_than = none) const {
    similarity.assign(flows_.size(), 0.0f);
    std::vector<const Posting*> found;  // the query's tokens that training flows have
    for (std::size_t b = 0; b < block_count; ++b) {
      if (weights[b] == 0 || q.keys[b].empty()) continue;
      double squares = 0;
      found.clear();
      for (std::uint32_t key : q.keys[b]) {
        auto it = postings_[b].find(key);
        if (it == postings_[b].end()) {
          squares += static_cast<double>(unseen_[b]) * unseen_[b];
          continue;
        }
        squares += static_cast<double>(it->second.weight) * it->second.weight;
        found.push_back(&it->second);
      }
      const auto scale = static_cast<float>(weights[b] / std::sqrt(squares));
      for (const Posting* posting : found) {
        const float w = scale * posting->weight * posting->weight;
        for (std::uint32_t id : posting->flows) similarity[id] += w * norms_[b][id];
      }
    }
    std::fill(out, out + classes, -std::numeric_limits<double>::infinity());
    for (std::size_t id = 0; id < flows_.size(); ++id) {
      if (other_than != none && files_[id] == other_than) continue;
      double& best = out[static_cast<std::size_t>(labels_[id])];
      best = std::max(best, static_cast<double>(similarity[id]));
    }
  }

 private:
  static std::uint64_t digest(std::int32_t label, const Tokens& t) {
    std::uint64_t h = 1469598103934665603ull ^ static_cast<std::uint32_t>(label);
    for (const auto& keys : t.keys) {
      h = (h ^ 0xffu) * 1099511628211ull;
      for (std::uint32_t k : keys) h = (h ^ k) * 1099511628211ull;
    }
    return h;
  }

  std::vector<std::int32_t> labels_;
  std::vector<std::uint32_t> files_;  // the capture each came from (in training only)
  std::vector<Tokens> flows_;
  std::array<std::vector<float>, block_count> norms_;
  std::array<float, block_count> unseen_{};  // the weight of a token no training flow has
  std::array<std::unordered_map<std::uint32_t, Posting>, block_count> postings_;
  std::set<std::uint64_t> seen_;
};

// Softmax of each row of class scores at temperature `t`; a class without training flows gets 0.
std::vector<float> softmax(const std::vector<double>& scores, std::size_t classes, double t) {
  std::vector<float> p(scores.size());
  for (std::size_t r = 0; r < scores.size() / classes; ++r) {
    const double* s = scores.data() + r * classes;
    float* out = p.data() + r * classes;
    const double top = *std::max_element(s, s + classes);
    if (!std::isfinite(top)) {  // no training flow at all
      std::fill(out, out + classes, 1.0f / static_cast<float>(classes));
      continue;
    }
    double sum = 0;
    for (std::size_t c = 0; c < classes; ++c) sum += std::isfinite(s[c]) ? std::exp((s[c] - top) / t) : 0.0;
    for (std::size_t c = 0; c < classes; ++c)
      out[c] = std::isfinite(s[c]) ? static_cast<float>(std::exp((s[c] - top) / t) / sum) : 0.0f;
  }
  return p;
}

constexpr char magic[] = "trafficid-knn 1\n";

class Knn final : public Model {
 public:
  explicit Knn(const PluginArgs& args) : host_(args.host), p_(read_params<Params>(args.params)) {}

  void build(const ModelInput& input) override {
    input_ = input;
    layout_ = layout_of(input.spec);
    if (input.class_names.empty()) throw Error("knn: the dataset has no classes");
  }

  ModelInfo info() const override {
    return {neighbours_.tokens(),
            fmt::format("{} training flows of {} classes, {} tokens; per class the nearest flow's similarity "
                        "(weights port {}, name {}, bytes {}, shape {}; idf {}), softmax at temperature {}",
                        neighbours_.size(), input_.class_names.size(), neighbours_.tokens(), p_.port, p_.name, p_.bytes,
                        p_.shape, p_.idf, temperature_)};
  }

  void fit(SampleBatches& train, SampleBatches& validation, const TrainingContext& context) override {
    const auto started = std::chrono::steady_clock::now();
    neighbours_ = {};
    FeatureBatch batch;
    train.rewind(false);
    while (train.next(1024, batch))
      for (std::size_t r = 0; r < batch.rows; ++r)
        if (batch.labels[r] >= 0)
          neighbours_.add(static_cast<std::int32_t>(batch.labels[r]), tokens(batch, r),
                          r < batch.file_ids.size() ? batch.file_ids[r] : 0);
    if (neighbours_.size() == 0) throw Error("knn: the training split is empty");
    neighbours_.finish(p_.idf, classes());
    std::vector<double> scores;
    std::vector<std::int64_t> truth;
    validation.rewind(false);
    while (validation.next(1024, batch)) {
      append_scores(batch, scores);
      truth.insert(truth.end(), batch.labels.begin(), batch.labels.begin() + static_cast<std::ptrdiff_t>(batch.rows));
    }
    // The temperature, and as the training loss the cross-entropy it was fitted on.
    std::vector<double> across;
    std::vector<std::int64_t> across_truth;
    across_captures(across, across_truth);
    if (across_truth.empty()) across = scores, across_truth = truth;  // every class in one capture
    temperature_ = p_.temperature > 0 ? p_.temperature : calibrate(across, across_truth);
    EpochMetrics m;
    m.epoch = 1;
    m.train_loss = loss(across, across_truth, temperature_);
    set_validation(m, score_probabilities(softmax(scores, classes(), temperature_), truth, input_.class_names));
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    m.samples_per_second = m.seconds > 0 ? static_cast<double>(train.rows()) / m.seconds : 0;
    m.extra["temperature"] = temperature_;  // the validation split is scored, not fitted, at it
    m.extra["training_flows"] = static_cast<double>(neighbours_.size());
    host_.info(fmt::format("knn: {} distinct training flows, temperature {}", neighbours_.size(), temperature_));
    if (context.observer) context.observer->on_epoch(m);
  }

  std::vector<float> predict_proba(const FeatureBatch& batch) override {
    std::vector<double> scores;
    append_scores(batch, scores);
    return softmax(scores, classes(), temperature_);
  }

  void save(const std::filesystem::path& file) const override {
    std::string out(magic);
    auto put = [&out](const auto& value) { out.append(reinterpret_cast<const char*>(&value), sizeof value); };
    put(temperature_);
    put(static_cast<std::uint64_t>(neighbours_.size()));
    for (std::size_t i = 0; i < neighbours_.size(); ++i) {
      put(neighbours_.labels()[i]);
      for (const auto& keys : neighbours_.flows()[i].keys) {
        put(static_cast<std::uint32_t>(keys.size()));
        out.append(reinterpret_cast<const char*>(keys.data()), keys.size() * sizeof(std::uint32_t));
      }
    }
    write_file_atomically(file, out);
  }

  void load(const std::filesystem::path& file) override {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot be read", file.string()));
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t at = sizeof magic - 1;
    auto fail = [&file](const std::string& why) {
      return Error(fmt::format("{}: not a knn model ({}); train it again with `trafficid run`", file.string(), why));
    };
    if (bytes.compare(0, at, magic) != 0) throw fail("no knn header");
    auto get = [&](auto& value) {
      if (bytes.size() - at < sizeof value) throw fail(fmt::format("cut at byte {}", at));
      std::memcpy(&value, bytes.data() + at, sizeof value);
      at += sizeof value;
    };
    std::uint64_t count = 0;
    get(temperature_);
    get(count);
    if (!(temperature_ > 0)) throw fail("no temperature");
    neighbours_ = {};
    for (std::uint64_t i = 0; i < count; ++i) {
      std::int32_t label = 0;
      Tokens t;
      get(label);
      if (label < 0 || static_cast<std::size_t>(label) >= classes())
        throw fail(fmt::format("class {} at byte {}", label, at));
      for (auto& keys : t.keys) {
        std::uint32_t n = 0;
        get(n);
        if ((bytes.size() - at) / sizeof(std::uint32_t) < n) throw fail(fmt::format("cut at byte {}", at));
        keys.resize(n);
        std::memcpy(keys.data(), bytes.data() + at, n * sizeof(std::uint32_t));
        at += n * sizeof(std::uint32_t);
      }
      neighbours_.add(label, std::move(t));
    }
    if (at != bytes.size()) throw fail(fmt::format("{} bytes past the last flow", bytes.size() - at));
    neighbours_.finish(p_.idf, classes());
  }

 private:
  std::size_t classes() const { return input_.class_names.size(); }

  Tokens tokens(const FeatureBatch& batch, std::size_t row) const {
    const std::size_t n = batch.row_elements();
    if (batch.dtype != DType::f32 || n != static_cast<std::size_t>(layout_.c.packets * layout_.c.columns))
      throw Error("knn: a batch of another shape than the model was built for");
    return tokens_of(reinterpret_cast<const float*>(batch.data.data()) + row * n, layout_, p_);
  }

  void append_scores(const FeatureBatch& batch, std::vector<double>& scores) const {
    const std::size_t k = classes(), first = scores.size();
    scores.resize(first + batch.rows * k);
    std::vector<float> similarity;
    for (std::size_t r = 0; r < batch.rows; ++r)
      neighbours_.scores(tokens(batch, r), p_.weights(), similarity, scores.data() + first + r * k, k);
  }

  // Each training flow's class scores from the training flows of the other captures, where its
  // class has some: how near a flow of a capture never seen comes to its class. Flows of the same
  // capture (one session, one network) are near copies, and a temperature fitted to them would
  // make the model sure of itself on captures it never saw. At most 4,096 flows, evenly spaced,
  // are scored: each costs a look through the whole index.
  void across_captures(std::vector<double>& scores, std::vector<std::int64_t>& truth) const {
    const std::size_t k = classes(), step = std::max<std::size_t>(1, neighbours_.size() / 4096);
    std::vector<float> similarity;
    std::vector<double> row(k);
    for (std::size_t i = 0; i < neighbours_.size(); i += step) {
      const auto label = static_cast<std::size_t>(neighbours_.labels()[i]);
      neighbours_.scores(neighbours_.flows()[i], p_.weights(), similarity, row.data(), k, neighbours_.files()[i]);
      if (!std::isfinite(row[label])) continue;
      scores.insert(scores.end(), row.begin(), row.end());
      truth.push_back(static_cast<std::int64_t>(label));
    }
  }

  double loss(const std::vector<double>& scores, const std::vector<std::int64_t>& truth, double t) const {
    return truth.empty() ? 0.0 : score_probabilities(softmax(scores, classes(), t), truth, input_.class_names).loss;
  }

  // The temperature of the lowest cross-entropy (0.1 without rows).
  double calibrate(const std::vector<double>& scores, const std::vector<std::int64_t>& truth) const {
    double best = 0.1, lowest = std::numeric_limits<double>::infinity();
    if (truth.empty()) return best;
    for (double t : {0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0})
      if (const double l = loss(scores, truth, t); l < lowest) lowest = l, best = t;
    return best;
  }

  HostServices& host_;
  Params p_;
  ModelInput input_;
  Layout layout_;
  Neighbours neighbours_;
  double temperature_ = 0.1;
};

Schema schema() { return schema_of<Params>(); }

}  // namespace
}  // namespace trafficid::knn_model

TRAFFICID_DEFINE_PLUGIN(trafficid::knn_model::Knn, trafficid::PluginKind::model, "knn", "0.1.0",
                        "nearest training flows per class over flow_start's tokens: classes of one or two flows", "",
                        trafficid::knn_model::schema)
