#include "pipeline/label_stage.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <fnmatch.h>
#include <regex>
#include <thread>
#include <unordered_map>

namespace trafficid::host {

namespace fs = std::filesystem;

bool LabelSpec::confident(const FlowRecord& f) const {
  return confidence.empty() || std::any_of(confidence.begin(), confidence.end(), [&](const std::string& p) {
           return ::fnmatch(p.c_str(), f.confidence.c_str(), 0) == 0;
         });
}

std::optional<std::string> LabelSpec::classify(const FlowRecord& f, const std::string& file_class) const {
  if (!confident(f)) return std::nullopt;  // a guessed label is no ground truth, not even for Other
  std::optional<std::string> cls;
  if (class_from == "map") {
    cls = map.classify(f);
  } else if (!file_class.empty()) {
    // The folder (or file name) says the class; the map, where it defines that class, says
    // which of the file's flows really are it: the rest is background (DNS, DHCP, mDNS, ...).
    const ClassDefinition* definition = map.find(file_class);
    if (!definition || definition->matches(f)) cls = file_class;
  }
  if (!cls && unmatched == "other") cls = other_class;
  if (cls)
    if (auto group = group_of.find(*cls); group != group_of.end()) cls = group->second;
  return cls;
}

LabelStage::LabelStage(const LabelSpec& spec, const PluginRegistry& registry, HostServices& host, fs::path dir,
                       StageHook* hook, unsigned threads)
    : spec_(spec), registry_(registry), host_(host), dir_(std::move(dir)), listener_(hook), threads_(threads) {
  if (dir_.empty()) return;  // flows.csv and classes.json are not written
  fs::create_directories(dir_);
  flows_csv_.open(dir_ / "flows.csv");
  if (!flows_csv_) throw Error(fmt::format("cannot write {}", (dir_ / "flows.csv").string()));
  flows_csv_ << "file,protocol,src_ip,src_port,dst_ip,dst_port,first_ns,last_ns,packets,bytes,label,category,class\n";
}

LabelStage::~LabelStage() = default;

std::string LabelStage::file_class(const std::string& path) const {
  if (spec_.class_from == "directory") return fs::path(path).parent_path().filename().string();
  if (spec_.class_from == "regex") {
    std::smatch m;
    std::string name = fs::path(path).filename().string();
    static thread_local std::string compiled_for;
    static thread_local std::regex expression;
    if (compiled_for != spec_.filename_regex) {
      expression = std::regex(spec_.filename_regex);
      compiled_for = spec_.filename_regex;
    }
    if (std::regex_search(name, m, expression) && m.size() > 1) return m[1].str();
  }
  return "";
}

void LabelStage::on_packet(const PacketView& packet, const CaptureSource& source, std::size_t source_index) {
  if (!labeling_ || source_index != current_source_ || packet.file_id != current_file_) {
    end_file();
    current_source_ = source_index;
    current_file_ = packet.file_id;
    SourceFileInfo info;
    for (const auto& f : source.files())
      if (f.id == packet.file_id) info = f;
    current_path_ = info.path;
    unsigned threads = threads_ ? threads_ : spec_.threads;
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    std::vector<PacketHook*> hooks;
    if (listener_) hooks = listener_->begin_input(info, threads);
    current_packets_ = 0;
    labeling_ = std::make_unique<ShardedLabeling>(
        [&] { return registry_.make<Labeler>(*spec_.plugin, spec_.params, host_, spec_.plugin->name); }, threads, info,
        std::move(hooks), !(listener_ && listener_->streams_flows()));
  }
  ++current_packets_;
  labeling_->process(packet);
}

void LabelStage::end_file() {
  if (!labeling_) return;
  if (listener_) listener_->flows_ending();
  auto flows = labeling_->finish();
  labeling_.reset();
  // A flow's class depends only on its label fields (and the file): a file's flows share a few
  // hundred combinations at most, so each is matched against the label map once.
  const std::string from_file = file_class(current_path_);
  std::unordered_map<std::string, Decision> decided;
  std::vector<const Decision*> decisions;
  decisions.reserve(flows.size());
  std::string key;
  for (const auto& f : flows) {
    key.clear();
    for (const std::string* field : {&f.label, &f.app_protocol, &f.master_protocol, &f.category, &f.confidence})
      key.append(*field).push_back('\0');
    auto [known, fresh] = decided.try_emplace(key);
    if (fresh) known->second = {spec_.classify(f, from_file), spec_.confident(f)};
    decisions.push_back(&known->second);
  }
  // flows.csv is written by a thread of its own while the listener takes the flows: its rows cost
  // as much as the rest (0.1 s for 280,000 flows), and the labelling workers have ended.
  std::exception_ptr csv_failure;
  std::jthread csv_writer;
  if (flows_csv_.is_open())
    csv_writer = std::jthread([&] {
      try {
        write_flows_csv(flows, decisions);
      } catch (...) {
        csv_failure = std::current_exception();
      }
    });
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const FlowRecord& f = flows[i];
    const Decision& d = *decisions[i];
    if (listener_) listener_->labelled(f, d.cls);
    auto& counts = d.cls ? classes_[*d.cls] : d.confident ? dropped_ : unsure_;
    ++counts.flows;
    counts.packets += f.packets_c2s + f.packets_s2c;
    counts.bytes += f.bytes_c2s + f.bytes_s2c;
  }
  if (csv_writer.joinable()) csv_writer.join();
  if (csv_failure) std::rethrow_exception(csv_failure);
  if (listener_) {
    listener_->input_flows(std::move(flows));
    listener_->end_input(current_packets_);
  }
}

void LabelStage::write_flows_csv(const FlowList& flows, const std::vector<const Decision*>& decisions) {
  fmt::memory_buffer csv;
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const FlowRecord& f = flows[i];
    fmt::format_to(std::back_inserter(csv), "\"{}\",{},{},{},{},{},{},{},{},{},{},{},{}\n", current_path_,
                   f.tuple.protocol, to_string(f.tuple.src), f.tuple.src_port, to_string(f.tuple.dst), f.tuple.dst_port,
                   f.first_ns, f.last_ns, f.packets_c2s + f.packets_s2c, f.bytes_c2s + f.bytes_s2c, f.label, f.category,
                   decisions[i]->cls.value_or(""));
    if (csv.size() >= (1u << 20) || i + 1 == flows.size()) {
      flows_csv_.write(csv.data(), static_cast<std::streamsize>(csv.size()));
      csv.clear();
    }
  }
}

LabelSpec labels_only(const PluginInfo& labeler, Json params, unsigned threads) {
  LabelSpec spec;
  spec.plugin = &labeler;
  spec.params = std::move(params);
  spec.class_from = "map";  // with no classes in the map
  spec.unmatched = "drop";
  spec.threads = threads;
  return spec;
}

std::string describe_labels(const Json& labels) {
  std::string classes;
  for (const auto& [name, c] : labels["classes"].items())
    classes += fmt::format("  {}: {} flows, {} packets\n", name, c["flows"].get<std::uint64_t>(),
                           c["packets"].get<std::uint64_t>());
  return fmt::format("stage label done ({} from {}):\n{}  dropped: {} flows, {} packets; unsure labels: {} flows",
                     labels["labeler"].get<std::string>(), labels["class_from"].get<std::string>(), classes,
                     labels["dropped"]["flows"].get<std::uint64_t>(), labels["dropped"]["packets"].get<std::uint64_t>(),
                     labels["unsure"]["flows"].get<std::uint64_t>());
}

Json LabelStage::finish() {
  end_file();
  flows_csv_.close();
  Json classes = Json::object();
  for (const auto& [name, c] : classes_)
    classes[name] = {{"flows", c.flows}, {"packets", c.packets}, {"bytes", c.bytes}};
  Json summary{{"labeler", spec_.plugin->name},
               {"class_from", spec_.class_from},
               {"classes", classes},
               {"dropped", {{"flows", dropped_.flows}, {"packets", dropped_.packets}, {"bytes", dropped_.bytes}}},
               {"unsure", {{"flows", unsure_.flows}, {"packets", unsure_.packets}, {"bytes", unsure_.bytes}}}};
  if (!dir_.empty()) std::ofstream(dir_ / "classes.json") << summary.dump(2) << '\n';
  return summary;
}

}  // namespace trafficid::host
