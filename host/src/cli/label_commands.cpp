// `trafficid label` (captures -> labels database) and `trafficid apps` (what the database holds).
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fmt/format.h>
#include <fstream>
#include <mutex>
#include <iostream>
#include <thread>
#include <unistd.h>

#include "cli/commands.hpp"
#include "report/csv.hpp"
#include "runtime/host_log.hpp"
#include "store/hashing.hpp"
#include "labels/label_db.hpp"
#include "runtime/plugin_registry.hpp"
#include "config/schema_check.hpp"
#include "pipeline/label_stage.hpp"
#include "pipeline/pipeline.hpp"
#include "trafficid/labeler.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {

// The capture files under `paths`, in order, found by the pcap plugin exactly as an experiment's
// pcap source finds them (its extensions, sub-folders, sorting).
std::vector<fs::path> capture_files(const PluginRegistry& registry, HostLog& log,
                                    const std::vector<std::string>& paths) {
  for (const auto& p : paths)
    if (!fs::exists(fs::absolute(p))) throw Error(fmt::format("{}: no such file or folder", p));
  const SourceSpec spec = pcap_source(registry, paths);
  auto source = registry.create<CaptureSource>(*spec.plugin, spec.params, log, spec.instance);
  std::vector<fs::path> files;
  for (const auto& f : source->planned_files().value_or(std::vector<std::string>{})) files.emplace_back(f);
  return files;
}

void write_csv(std::ostream& out, const std::string& path, const FlowRecord& f) {
  out << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(path), f.tuple.protocol,
                     to_string(f.tuple.src), f.tuple.src_port, to_string(f.tuple.dst), f.tuple.dst_port, f.first_ns,
                     f.last_ns, f.packets_c2s, f.packets_s2c, f.bytes_c2s, f.bytes_s2c, csv_field(f.label),
                     csv_field(f.master_protocol), csv_field(f.app_protocol), csv_field(f.category),
                     csv_field(f.confidence), csv_field(f.server_name));
}

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

// What labelling one capture gives, before anything is written: the database records it in one
// transaction when its turn comes.
struct LabelledFile {
  fs::path file;
  std::uint64_t size = 0;
  std::string content_hash;  // known already when the database held the file at this size
  SourceFileInfo info;
  LabelDb::PacketCounts counts;
  FlowList flows;
  bool stopped = false;       // interrupted: nothing of it is written
  double label_seconds = 0;   // reading and labelling, wall clock
  double finish_seconds = 0;  // the part of it after the last packet (flows ended, sorted)
  std::exception_ptr failure;
};

struct LabelContext {
  const PluginRegistry& registry;
  const LabelSpec& label;
  HostLog& log;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The stage after labelling for `label`: the file's packet counts and its labelled flows.
class FileLabels final : public StageHook {
 public:
  explicit FileLabels(LabelledFile& job) : job_(job) {}
  void on_read(const PacketView& packet) override { job_.counts.count(packet); }
  void flows_ending() override { last_packet_ = std::chrono::steady_clock::now(); }
  void input_flows(FlowList&& flows) override { job_.flows = std::move(flows); }
  void end_input(std::uint64_t) override { job_.finish_seconds = seconds_since(last_packet_); }

 private:
  LabelledFile& job_;
  std::chrono::steady_clock::time_point last_packet_ = std::chrono::steady_clock::now();
};

// Reads and labels one capture with `threads` labelling workers (packets sharded by host pair).
// A new file's content hash comes from the pcap source, which hashes the bytes it reads; a file
// it could not read whole is hashed afterwards.
void label_file(const LabelContext& c, LabelledFile& job, unsigned threads) {
  const auto start = std::chrono::steady_clock::now();
  PipelineSpec spec;
  spec.sources = {pcap_source(c.registry, {job.file.string()})};
  spec.label = c.label;
  spec.threads = threads;
  spec.summary = false;  // the database keeps its own counts: no flow set, no port table
  FileLabels hook(job);
  PipelineResult result = Pipeline(std::move(spec), c.registry, c.log, &hook).run();
  job.stopped = result.capture.stopped_early;
  job.label_seconds = seconds_since(start);
  job.info = result.capture.files.at(0);
  if (job.content_hash.empty()) job.content_hash = job.info.content_hash;
  if (job.content_hash.empty() && !job.stopped) job.content_hash = content_hash_file(job.file);
}

// Labels the captures of `jobs` in their order, `workers` files at a time (each with one
// labelling thread: files never share an nDPI module, so the labels are those of one thread), and
// hands each to `write` in input order as soon as it and every file before it are done. A worker
// runs at most `workers` files ahead of the writer, which bounds the flows held in memory.
template <class Write>
void label_files_in_parallel(const LabelContext& c, std::vector<LabelledFile>& jobs, unsigned workers, Write write) {
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t next = 0, written = 0;
  unsigned exited = 0;  // workers that took their last file
  std::vector<char> done(jobs.size(), 0);
  bool quit = false;
  auto work = [&] {
    while (true) {
      std::size_t i;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return quit || next >= jobs.size() || next < written + 2 * workers; });
        if (quit || next >= jobs.size() || c.log.stop_requested()) {
          ++exited;
          changed.notify_all();
          return;
        }
        i = next++;
      }
      try {
        label_file(c, jobs[i], 1);
      } catch (...) {
        jobs[i].failure = std::current_exception();
      }
      std::lock_guard lock(mutex);
      done[i] = 1;
      changed.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w) pool.emplace_back(work);
  auto stop_pool = [&] {
    {
      std::lock_guard lock(mutex);
      quit = true;
    }
    changed.notify_all();
    for (auto& t : pool) t.join();
  };
  try {
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      {
        std::unique_lock lock(mutex);
        // Stopped (Ctrl-C): the workers may be gone before taking this file.
        changed.wait(lock, [&] { return done[i] != 0 || exited == workers; });
        if (!done[i]) break;
      }
      if (!write(jobs[i])) break;
      jobs[i].flows = {};
      std::lock_guard lock(mutex);
      written = i + 1;
      changed.notify_all();
    }
  } catch (...) {
    stop_pool();
    throw;
  }
  stop_pool();
}

// The labels database side of `trafficid label`: which files need labelling, and each labelled
// file recorded in one transaction (and in the CSV), in input order.
class LabelWriter {
 public:
  LabelWriter(const LabelRequest& request, std::string config, HostLog& log)
      : request_(request), config_(std::move(config)), log_(log), db_(request.db) {
    if (request.csv.empty()) return;
    csv_.open(request.csv);
    if (!csv_) throw Error(fmt::format("cannot write {}", request.csv));
    csv_ << "path,protocol,src_ip,src_port,dst_ip,dst_port,first_ns,last_ns,packets_c2s,packets_s2c,bytes_c2s,"
            "bytes_s2c,label,master,app,category,confidence,server_name\n";
  }
  // The files that need labelling: a file the database holds at the same size is hashed, and
  // skipped when its content and the labeler config are unchanged; an unreadable one is told.
  std::vector<LabelledFile> pending(const std::vector<fs::path>& files);
  // Records one labelled file; false to stop (the database keeps the files before; a re-run resumes).
  bool write(LabelledFile& job);
  int finish() const;

 private:
  const LabelRequest& request_;
  std::string config_;
  HostLog& log_;
  LabelDb db_;
  std::ofstream csv_;
  std::size_t labelled_ = 0, skipped_ = 0, damaged_ = 0, unreadable_ = 0;
};

std::vector<LabelledFile> LabelWriter::pending(const std::vector<fs::path>& files) {
  std::vector<LabelledFile> jobs;
  for (const auto& file : files) {
    if (::access(file.c_str(), R_OK) != 0) {
      log_.warn(
          fmt::format("{}: cannot read it ({}): check its permissions, or run as a user who may read it; skipped "
                      "(the other files are labelled)",
                      file.string(), std::strerror(errno)));
      ++unreadable_;
      continue;
    }
    LabelledFile job;
    job.file = file;
    job.size = fs::file_size(file);
    if (db_.has_size(file.string(), job.size)) {
      job.content_hash = content_hash_file(file);
      if (db_.up_to_date(file.string(), job.content_hash, config_)) {
        ++skipped_;
        continue;
      }
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

bool LabelWriter::write(LabelledFile& job) {
  if (job.failure) std::rethrow_exception(job.failure);
  if (job.stopped || log_.stop_requested()) return false;
  const std::string path = job.file.string();
  const auto start = std::chrono::steady_clock::now();
  db_.begin_file(path, job.size, config_);
  try {
    db_.add_flows(job.flows);
    if (csv_.is_open())
      for (const auto& flow : job.flows) write_csv(csv_, path, flow);
    if (!job.info.warning.empty()) ++damaged_;  // the capture stage warned as it read the file
    db_.end_file(job.info, job.counts, job.content_hash);
  } catch (...) {
    db_.abandon_file();
    throw;
  }
  ++labelled_;
  // Where the time went: what one thread does after the last packet, and the database write
  // (one writer), bound what more threads can gain on one capture.
  log_.info(fmt::format(
      "{}: {} packets, {} flows{}; labelled in {:.2f} s ({:.2f} s after the last packet), written in {:.2f} s", path,
      job.info.packets, job.flows.size(), odd_packets(job.counts), job.label_seconds, job.finish_seconds,
      seconds_since(start)));
  return true;
}

int LabelWriter::finish() const {
  log_.info(fmt::format("{}: {} files labelled, {} unchanged and skipped{}{}", request_.db, labelled_, skipped_,
                        damaged_ ? fmt::format(", {} damaged (see the warnings)", damaged_) : "",
                        unreadable_ ? fmt::format(", {} unreadable and left out", unreadable_) : ""));
  if (log_.stop_requested()) return 130;
  return damaged_ || unreadable_ ? 1 : 0;
}

}  // namespace

int cmd_label(const GlobalOptions& global, const LabelRequest& request) {
  auto registry = load_plugins(global, true, false);
  const PluginInfo* labeler = registry.find(PluginKind::labeler, request.labeler);
  if (!labeler) {
    std::cerr << "error: no labeler plugin named '" << request.labeler << "'"
              << did_you_mean(request.labeler, registry.names(PluginKind::labeler)) << '\n';
    return 2;
  }
  auto checked = plugin_params_from_cli(*labeler, request.params);
  if (!checked) return 2;
  const LabelSpec label = labels_only(*labeler, *checked);  // the database keeps the labeler's labels
  // A file is labelled again when its content or the labeler (version, parameters) changed.
  const std::string config =
      Json{{"labeler", label.plugin->name}, {"version", label.plugin->version}, {"params", label.params}}.dump();
  install_stop_handlers();
  HostLog log(log_threshold(global));
  LabelWriter writer(request, config, log);
  std::vector<LabelledFile> jobs = writer.pending(capture_files(registry, log, request.paths));
  const LabelContext context{registry, label, log};
  auto write = [&](LabelledFile& job) { return writer.write(job); };
  // Several files: each worker labels whole files, the database is written beside them. One file:
  // its packets are sharded across the threads, but only when -j asks for it. nDPI also remembers
  // single endpoints (a BitTorrent peer, a STUN/WhatsApp call), and a module sees only its shard's
  // flows, so a few flows can be labelled otherwise than by one thread: the default never does that.
  const unsigned threads = request.threads ? request.threads : std::max(1u, std::thread::hardware_concurrency());
  if (threads > 1 && jobs.size() > 1) {
    label_files_in_parallel(context, jobs, std::min<unsigned>(threads, static_cast<unsigned>(jobs.size())), write);
  } else {
    const unsigned shards = request.threads ? request.threads : 1;
    for (auto& job : jobs) {
      if (log.stop_requested()) break;
      label_file(context, job, shards);
      if (!write(job)) break;
      job.flows = {};
    }
  }
  return writer.finish();
}

int cmd_apps(const GlobalOptions& global, const std::string& db_file, const std::string& format) {
  (void)global;
  if (!fs::is_regular_file(db_file))
    throw Error(fmt::format("{}: no such labels database (make one with `trafficid label`)", db_file));
  LabelDb db(db_file);
  auto apps = db.applications();
  auto categories = db.categories();
  if (format == "json") {
    std::cout << db.summary().dump(2) << '\n';
  } else if (format == "csv") {
    std::cout << "kind,name,category,flows,packets,bytes,files\n";
    for (const auto& r : apps)
      std::cout << fmt::format("application,{},{},{},{},{},{}\n", csv_field(r.name), csv_field(r.category), r.flows,
                               r.packets, r.bytes, r.files);
    for (const auto& r : categories)
      std::cout << fmt::format("category,{},,{},{},{},{}\n", csv_field(r.name), r.flows, r.packets, r.bytes, r.files);
  } else {
    std::cout << fmt::format("{:<32} {:<18} {:>8} {:>10} {:>14} {:>6}\n", "APPLICATION", "CATEGORY", "FLOWS", "PACKETS",
                             "BYTES", "FILES");
    for (const auto& r : apps)
      std::cout << fmt::format("{:<32} {:<18} {:>8} {:>10} {:>14} {:>6}\n", r.name, r.category, r.flows, r.packets,
                               r.bytes, r.files);
    std::cout << fmt::format("\n{:<32} {:>8} {:>10} {:>14} {:>6}\n", "CATEGORY", "FLOWS", "PACKETS", "BYTES", "FILES");
    for (const auto& r : categories)
      std::cout << fmt::format("{:<32} {:>8} {:>10} {:>14} {:>6}\n", r.name, r.flows, r.packets, r.bytes, r.files);
  }
  return 0;
}

}  // namespace trafficid::host
