// `trafficid label` (captures -> labels database) and `trafficid apps` (what the database holds).
#include <fmt/format.h>
#include <fstream>
#include <future>
#include <iostream>
#include <thread>

#include "commands.hpp"
#include "host_log.hpp"
#include "label_db.hpp"
#include "plugin_registry.hpp"
#include "schema_check.hpp"
#include "sharded_labeling.hpp"
#include "trafficid/labeler.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> capture_files(const std::vector<std::string>& paths) {
  std::vector<fs::path> out;
  for (const auto& p : paths) {
    fs::path path = fs::absolute(p).lexically_normal();
    if (fs::is_regular_file(path)) {
      out.push_back(path);
    } else if (fs::is_directory(path)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::recursive_directory_iterator(path)) {
        auto ext = e.path().extension();
        if (e.is_regular_file() && (ext == ".pcap" || ext == ".pcapng" || ext == ".cap")) found.push_back(e.path());
      }
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      throw Error(fmt::format("{}: no such file or folder", p));
    }
  }
  return out;
}

std::string csv(const std::string& field) {
  if (field.find_first_of(",\"\n") == std::string::npos) return field;
  std::string quoted = "\"";
  for (char c : field) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

class DbSink final : public FlowSink {
 public:
  DbSink(LabelDb& db, std::ofstream* csv_out, std::string path) : db_(db), csv_(csv_out), path_(std::move(path)) {}
  void emit(const FlowRecord& f) override {
    db_.add_flow(f);
    ++flows;
    if (csv_)
      *csv_ << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv(path_), f.tuple.protocol,
                           to_string(f.tuple.src), f.tuple.src_port, to_string(f.tuple.dst), f.tuple.dst_port,
                           f.first_ns, f.last_ns, f.packets_c2s, f.packets_s2c, f.bytes_c2s, f.bytes_s2c, csv(f.label),
                           csv(f.master_protocol), csv(f.app_protocol), csv(f.category), csv(f.confidence),
                           csv(f.server_name));
  }
  std::uint64_t flows = 0;

 private:
  LabelDb& db_;
  std::ofstream* csv_;
  std::string path_;
};

// ", 12 not IP, 3 fragments" for the packets of a file that are not plain IP flows.
std::string odd_packets(const LabelDb::PacketCounts& c) {
  std::string out;
  auto add = [&](std::uint64_t n, const char* what) {
    if (n) out += fmt::format(", {} {}", n, what);
  };
  add(c.not_ip, "not IP");
  add(c.fragments, "fragments");
  add(c.snapped, "snapped");
  add(c.truncated_headers, "with truncated headers");
  add(c.malformed, "malformed");
  return out;
}

}  // namespace

int cmd_label(const GlobalOptions& global, const LabelRequest& request) {
  auto registry = load_plugins(global, true, false);
  const PluginInfo* labeler_plugin = registry.find(PluginKind::labeler, request.labeler);
  if (!labeler_plugin) {
    std::cerr << "error: no labeler plugin named '" << request.labeler << "'"
              << did_you_mean(request.labeler, registry.names(PluginKind::labeler)) << '\n';
    return 2;
  }
  const PluginInfo* pcap = registry.find(PluginKind::capture, "pcap");
  if (!pcap) throw Error("the pcap capture plugin is not installed");
  auto checked = plugin_params_from_cli(*labeler_plugin, request.params);
  if (!checked) return 2;
  const Json params = *checked;
  // A file is labelled again when its content or the labeler (version, parameters) changed.
  const std::string config = Json{{"labeler", labeler_plugin->name}, {"version", labeler_plugin->version}, {"params", params}}.dump();

  install_stop_handlers();
  HostLog log(log_threshold(global));
  LabelDb db(request.db);
  std::ofstream csv_out;
  if (!request.csv.empty()) {
    csv_out.open(request.csv);
    if (!csv_out) throw Error(fmt::format("cannot write {}", request.csv));
    csv_out << "path,protocol,src_ip,src_port,dst_ip,dst_port,first_ns,last_ns,packets_c2s,packets_s2c,bytes_c2s,"
               "bytes_s2c,label,master,app,category,confidence,server_name\n";
  }
  std::size_t labelled = 0, skipped = 0, damaged = 0;
  LabelDb::PacketCounts last_counts;
  const unsigned threads = request.threads ? request.threads : std::max(1u, std::thread::hardware_concurrency());
  for (const auto& file : capture_files(request.paths)) {
    if (log.stop_requested()) break;
    // The content hash decides whether a file the database already holds can be skipped; for a new
    // or resized file it is only recorded, so it is computed on another core while labelling.
    const auto size = fs::file_size(file);
    std::future<std::string> hash;
    if (db.has_size(file.string(), size)) {
      std::string known = sha256_file(file);
      if (db.up_to_date(file.string(), known, config)) {
        ++skipped;
        continue;
      }
      hash = std::async(std::launch::deferred, [known] { return known; });
    } else {
      hash = std::async(std::launch::async, [file] { return sha256_file(file); });
    }
    Json source_params = schema_defaults(pcap->schema);
    source_params["paths"] = Json::array({file.string()});
    auto source = registry.create<CaptureSource>(*pcap, source_params, log, "pcap");
    db.begin_file(file.string(), size, config);
    DbSink sink(db, request.csv.empty() ? nullptr : &csv_out, file.string());
    try {
      SourceFileInfo info;
      info.path = file.string();
      ShardedLabeling labeling(
          *labeler_plugin, [&] { return registry.create<Labeler>(*labeler_plugin, params, log, request.labeler); },
          threads, info);
      PacketView packet;
      LabelDb::PacketCounts& counts = last_counts;
      counts = {};
      while (guarded(*pcap, [&] { return source->next(packet); })) {
        counts.count(packet);
        labeling.process(packet);
        if (log.stop_requested()) break;
      }
      auto flows = labeling.finish();
      if (log.stop_requested()) {
        db.abandon_file();  // the database keeps what was complete; the next run resumes here
        break;
      }
      for (const auto& flow : flows) sink.emit(flow);
      auto result = source->files().at(0);
      if (!result.warning.empty()) {
        ++damaged;
        log.warn(fmt::format("{}: {}", file.string(), result.warning));
      }
      db.end_file(result, counts, hash.get());
    } catch (...) {
      db.abandon_file();
      throw;
    }
    ++labelled;
    log.info(fmt::format("{}: {} packets, {} flows{}", file.string(), source->files().at(0).packets, sink.flows,
                         odd_packets(last_counts)));
  }
  log.info(fmt::format("{}: {} files labelled, {} unchanged and skipped{}", request.db, labelled, skipped,
                       damaged ? fmt::format(", {} damaged (see the warnings)", damaged) : ""));
  if (log.stop_requested()) return 130;
  return damaged ? 1 : 0;
}

int cmd_apps(const GlobalOptions& global, const std::string& db_file, const std::string& format) {
  (void)global;
  if (!fs::is_regular_file(db_file)) throw Error(fmt::format("{}: no such labels database (make one with `trafficid label`)", db_file));
  LabelDb db(db_file);
  auto apps = db.applications();
  auto categories = db.categories();
  if (format == "json") {
    auto rows = [](const std::vector<LabelDb::AppRow>& list, bool with_category) {
      Json out = Json::array();
      for (const auto& r : list) {
        Json j{{"name", r.name}, {"flows", r.flows}, {"packets", r.packets}, {"bytes", r.bytes}, {"files", r.files}};
        if (with_category) j["category"] = r.category;
        out.push_back(j);
      }
      return out;
    };
    std::cout << Json{{"applications", rows(apps, true)}, {"categories", rows(categories, false)}}.dump(2) << '\n';
  } else if (format == "csv") {
    std::cout << "kind,name,category,flows,packets,bytes,files\n";
    for (const auto& r : apps)
      std::cout << fmt::format("application,{},{},{},{},{},{}\n", csv(r.name), csv(r.category), r.flows, r.packets, r.bytes, r.files);
    for (const auto& r : categories)
      std::cout << fmt::format("category,{},,{},{},{},{}\n", csv(r.name), r.flows, r.packets, r.bytes, r.files);
  } else {
    std::cout << fmt::format("{:<32} {:<18} {:>8} {:>10} {:>14} {:>6}\n", "APPLICATION", "CATEGORY", "FLOWS", "PACKETS", "BYTES", "FILES");
    for (const auto& r : apps)
      std::cout << fmt::format("{:<32} {:<18} {:>8} {:>10} {:>14} {:>6}\n", r.name, r.category, r.flows, r.packets, r.bytes, r.files);
    std::cout << fmt::format("\n{:<32} {:>8} {:>10} {:>14} {:>6}\n", "CATEGORY", "FLOWS", "PACKETS", "BYTES", "FILES");
    for (const auto& r : categories)
      std::cout << fmt::format("{:<32} {:>8} {:>10} {:>14} {:>6}\n", r.name, r.flows, r.packets, r.bytes, r.files);
  }
  return 0;
}

}  // namespace trafficid::host
