// The labels database ("nDPI base"): one row per capture file (path, size, content hash, packets,
// link types, damage) and one per flow with its labels and counters. Each file is labelled in one
// transaction, so an interrupted run leaves the database consistent and the next run resumes: a
// file whose content hash and labeler config are unchanged is skipped.
#pragma once
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trafficid/capture.hpp"
#include "trafficid/error.hpp"
#include "trafficid/flow.hpp"
#include "trafficid/packet.hpp"
#include "trafficid/params.hpp"

struct sqlite3;

namespace trafficid::host {

class LabelDb {
 public:
  // Whether `file` is an SQLite database that `trafficid label` wrote (read, never changed).
  static bool is_labels_database(const std::filesystem::path& file);
  explicit LabelDb(const std::filesystem::path& file);
  ~LabelDb();
  LabelDb(const LabelDb&) = delete;
  LabelDb& operator=(const LabelDb&) = delete;

  // True when `path` was labelled whole with this content hash and labeler config.
  bool up_to_date(const std::string& path, const std::string& content_hash, const std::string& config) const;
  // True when the database holds `path` at this size: only then can its hash let it be skipped.
  bool has_size(const std::string& path, std::uint64_t size) const;
  // Replaces whatever the database held for the file, in one transaction (the hash comes at the end).
  void begin_file(const std::string& path, std::uint64_t size, const std::string& config);
  void add_flow(const FlowRecord& flow);
  void add_flows(const std::deque<FlowRecord>& flows);  // a file's flows, in their order
  // What was odd in a file's packets: counted and kept with the file, never a reason to stop.
  struct PacketCounts {
    std::uint64_t not_ip = 0, fragments = 0, snapped = 0, truncated_headers = 0, malformed = 0;
    void count(const PacketView& p);
  };
  void end_file(const SourceFileInfo& info, const PacketCounts& counts, const std::string& content_hash);  // commits
  void abandon_file();                                                                                     // rolls back

  struct AppRow {
    std::string name, category;
    std::uint64_t flows = 0, packets = 0, bytes = 0, files = 0;
  };
  std::vector<AppRow> applications() const;  // per label, by packets
  std::vector<AppRow> categories() const;    // per category, by packets
  // {"applications": [{name, category, flows, packets, bytes, files}], "categories": [...]}
  // (`trafficid apps --format json`, the web application's Data page).
  Json summary() const;

 private:
  void exec(const char* sql) const;
  void release_cache();
  // An Error naming the database and SQLite's message, with what to do when the disk is full.
  Error failure(const std::string& message) const;
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
  std::int64_t file_row_ = 0;
  struct Statements;
  std::unique_ptr<Statements> statements_;
};

}  // namespace trafficid::host
