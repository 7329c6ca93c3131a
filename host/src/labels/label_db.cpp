#include "labels/label_db.hpp"

#include <array>
#include <fmt/format.h>
#include <mutex>
#include <sqlite3.h>

#include "trafficid/error.hpp"

namespace trafficid::host {

namespace fs = std::filesystem;

namespace {
struct Statement {
  sqlite3_stmt* stmt = nullptr;
  ~Statement() { sqlite3_finalize(stmt); }
};

const char* schema_sql = R"(
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS files (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  content_hash TEXT NOT NULL,
  labeler_config TEXT NOT NULL,
  packets INTEGER,
  link_types TEXT,
  error TEXT,
  damaged_at INTEGER,
  not_ip_packets INTEGER,
  fragments INTEGER,
  snapped_packets INTEGER,
  truncated_headers INTEGER,
  malformed_packets INTEGER,
  complete INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS flows (
  id INTEGER PRIMARY KEY,
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  protocol INTEGER NOT NULL,
  src_ip TEXT NOT NULL, src_port INTEGER NOT NULL,
  dst_ip TEXT NOT NULL, dst_port INTEGER NOT NULL,
  first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL,
  packets_c2s INTEGER NOT NULL, packets_s2c INTEGER NOT NULL,
  bytes_c2s INTEGER NOT NULL, bytes_s2c INTEGER NOT NULL,
  label TEXT NOT NULL, master TEXT, app TEXT, category TEXT, confidence TEXT,
  server_name TEXT, ja3_client TEXT, ja3_server TEXT
);
CREATE INDEX IF NOT EXISTS flows_by_file ON flows(file_id);
)";
// The indexes for researchers' queries; add_flows may drop and build them again.
const char* query_indexes_sql = R"(
CREATE INDEX IF NOT EXISTS flows_by_label ON flows(label);
CREATE INDEX IF NOT EXISTS flows_by_app ON flows(app);
CREATE INDEX IF NOT EXISTS flows_by_category ON flows(category);
CREATE INDEX IF NOT EXISTS flows_by_server_name ON flows(server_name);
)";
const char* drop_query_indexes_sql =
    "DROP INDEX IF EXISTS flows_by_label; DROP INDEX IF EXISTS flows_by_app; DROP INDEX IF EXISTS flows_by_category; "
    "DROP INDEX IF EXISTS flows_by_server_name;";
}  // namespace

struct LabelDb::Statements {
  Statement insert_flow;
};

bool LabelDb::is_labels_database(const fs::path& file) {
  sqlite3* db = nullptr;
  bool ours = false;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    Statement tables;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('files', 'flows')",
                           -1, &tables.stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(tables.stmt) == SQLITE_ROW)
      ours = sqlite3_column_int(tables.stmt, 0) == 2;
  }
  sqlite3_close(db);
  return ours;
}

Json LabelDb::summary() const {
  auto rows = [](const std::vector<AppRow>& list, bool with_category) {
    Json out = Json::array();
    for (const auto& r : list) {
      Json j{{"name", r.name}, {"flows", r.flows}, {"packets", r.packets}, {"bytes", r.bytes}, {"files", r.files}};
      if (with_category) j["category"] = r.category;
      out.push_back(j);
    }
    return out;
  };
  return {{"applications", rows(applications(), true)}, {"categories", rows(categories(), false)}};
}

LabelDb::LabelDb(const fs::path& file) : path_(file), statements_(std::make_unique<Statements>()) {
  // One connection per LabelDb, used by one thread: no connection mutex (SQLITE_OPEN_NOMUTEX) and no
  // memory statistics, whose global mutex sqlite takes on every allocation: together a sixth of the
  // time spent inserting flows (perf).
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(fmt::format("cannot open the labels database {}: {}", file.string(), message));
  }
  sqlite3_busy_timeout(db_, 10000);
  exec("PRAGMA journal_mode = WAL;");
  // The layout's version: a database from another layout is refused rather than half-used.
  // Layout 1 kept SHA-256 digests in files.sha256; layout 2 keeps XXH3-128 in files.content_hash. A
  // layout-1 database is carried over: its digests match no new one, so each file is labelled
  // again once, its flows replaced.
  constexpr int layout_version = 2;
  Statement version, tables;
  sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &version.stmt, nullptr);
  sqlite3_step(version.stmt);
  int found = sqlite3_column_int(version.stmt, 0);
  sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", -1, &tables.stmt, nullptr);
  sqlite3_step(tables.stmt);
  bool empty = sqlite3_column_int(tables.stmt, 0) == 0;
  sqlite3_reset(version.stmt);
  sqlite3_reset(tables.stmt);
  if (!empty && found == 1) {
    exec("BEGIN IMMEDIATE; ALTER TABLE files RENAME COLUMN sha256 TO content_hash; PRAGMA user_version = 2; COMMIT;");
    found = layout_version;
  }
  if (!empty && found != layout_version)
    throw Error(
        fmt::format("{} is not a labels database of this trafficid (layout {}, expected {}): label into a new "
                    "file, or delete this one to start again",
                    file.string(), found, layout_version));
  exec(schema_sql);
  exec(query_indexes_sql);
  exec(fmt::format("PRAGMA user_version = {};", layout_version).c_str());
  if (sqlite3_prepare_v2(db_,
                         "INSERT INTO flows (file_id, protocol, src_ip, src_port, dst_ip, dst_port, first_ns, last_ns, "
                         "packets_c2s, packets_s2c, bytes_c2s, bytes_s2c, label, master, app, category, confidence, "
                         "server_name, ja3_client, ja3_server) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         -1, &statements_->insert_flow.stmt, nullptr) != SQLITE_OK)
    throw failure(sqlite3_errmsg(db_));
}

LabelDb::~LabelDb() {
  statements_.reset();
  sqlite3_close(db_);
}

void LabelDb::exec(const char* sql) const {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw failure(message);
  }
}

Error LabelDb::failure(const std::string& message) const {
  const int code = sqlite3_extended_errcode(db_) & 0xff;
  std::string advice;
  if (code == SQLITE_FULL || code == SQLITE_IOERR)
    advice =
        "; the disk is full (or failing): free space and run the same command again (the files labelled before are "
        "kept whole and skipped, the one being written was rolled back)";
  return Error(fmt::format("labels database {}: {}{}", path_.string(), message, advice));
}

bool LabelDb::up_to_date(const std::string& path, const std::string& content_hash, const std::string& config) const {
  Statement s;
  sqlite3_prepare_v2(db_,
                     "SELECT 1 FROM files WHERE path = ? AND content_hash = ? AND labeler_config = ? AND complete = 1",
                     -1, &s.stmt, nullptr);
  sqlite3_bind_text(s.stmt, 1, path.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.stmt, 2, content_hash.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.stmt, 3, config.c_str(), -1, SQLITE_TRANSIENT);
  return sqlite3_step(s.stmt) == SQLITE_ROW;
}

bool LabelDb::has_size(const std::string& path, std::uint64_t size) const {
  Statement s;
  sqlite3_prepare_v2(db_, "SELECT 1 FROM files WHERE path = ? AND size = ? AND complete = 1", -1, &s.stmt, nullptr);
  sqlite3_bind_text(s.stmt, 1, path.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.stmt, 2, static_cast<sqlite3_int64>(size));
  return sqlite3_step(s.stmt) == SQLITE_ROW;
}

void LabelDb::begin_file(const std::string& path, std::uint64_t size, const std::string& config) {
  exec("BEGIN IMMEDIATE;");
  Statement del, ins;
  sqlite3_prepare_v2(db_, "DELETE FROM files WHERE path = ?", -1, &del.stmt, nullptr);
  sqlite3_bind_text(del.stmt, 1, path.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_step(del.stmt);
  sqlite3_prepare_v2(db_, "INSERT INTO files (path, size, content_hash, labeler_config) VALUES (?,?,?,?)", -1,
                     &ins.stmt, nullptr);
  sqlite3_bind_text(ins.stmt, 1, path.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(ins.stmt, 2, static_cast<sqlite3_int64>(size));
  sqlite3_bind_text(ins.stmt, 3, "", -1, SQLITE_STATIC);
  sqlite3_bind_text(ins.stmt, 4, config.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(ins.stmt) != SQLITE_DONE) throw failure(sqlite3_errmsg(db_));
  file_row_ = sqlite3_last_insert_rowid(db_);
}

void LabelDb::add_flow(const FlowRecord& f) {
  sqlite3_stmt* s = statements_->insert_flow.stmt;
  sqlite3_reset(s);
  // Every text bound lives until sqlite3_step returns: SQLITE_STATIC spares sqlite a copy of each.
  const std::string src = to_string(f.tuple.src), dst = to_string(f.tuple.dst);
  int i = 0;
  auto text = [&](const std::string& v) {
    sqlite3_bind_text(s, ++i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  };
  auto integer = [&](std::int64_t v) { sqlite3_bind_int64(s, ++i, v); };
  integer(file_row_);
  integer(f.tuple.protocol);
  text(src);
  integer(f.tuple.src_port);
  text(dst);
  integer(f.tuple.dst_port);
  integer(f.first_ns);
  integer(f.last_ns);
  integer(static_cast<std::int64_t>(f.packets_c2s));
  integer(static_cast<std::int64_t>(f.packets_s2c));
  integer(static_cast<std::int64_t>(f.bytes_c2s));
  integer(static_cast<std::int64_t>(f.bytes_s2c));
  for (const auto* v : {&f.label, &f.master_protocol, &f.app_protocol, &f.category, &f.confidence, &f.server_name,
                        &f.ja3_client, &f.ja3_server})
    text(*v);
  if (sqlite3_step(s) != SQLITE_DONE) throw failure(sqlite3_errmsg(db_));
}

void LabelDb::add_flows(const std::deque<FlowRecord>& flows) {
  // Inserting a row into the four text indexes cost more than the row itself; building an index
  // afresh sorts once. So when a file brings at least as many flows as the table holds (the first
  // file, a large one), the indexes are dropped and built again after its rows, inside the file's
  // transaction: for 280,299 flows, 0.88-1.02 s instead of 1.22-1.29 s (three runs each).
  Statement rows;
  sqlite3_prepare_v2(db_, "SELECT COALESCE(MAX(id), 0) FROM flows", -1, &rows.stmt, nullptr);
  sqlite3_step(rows.stmt);
  const auto held = static_cast<std::size_t>(sqlite3_column_int64(rows.stmt, 0));
  sqlite3_reset(rows.stmt);
  const bool large = flows.size() >= 50000;
  const bool rebuild = large && flows.size() >= held;
  // A large file also gets 64 MiB of page cache (SQLite's default is 2 MiB) until its commit: its
  // rows and the indexes built after them stay in memory instead of spilling pages. On the 1 GB
  // capture's 280,299 flows the write took 0.91-0.94 s instead of 1.03 s, for 40 MB at the peak;
  // a folder of small captures keeps the default and its small peak.
  if (large) exec("PRAGMA cache_size = -65536;");
  if (rebuild) exec(drop_query_indexes_sql);
  for (const auto& f : flows) add_flow(f);
  if (rebuild) exec(query_indexes_sql);
}

void LabelDb::PacketCounts::count(const PacketView& p) {
  if (!p.has_ip()) ++not_ip;
  if (p.flags & packet_flag::fragment) ++fragments;
  if (p.data.size() < p.wire_length) ++snapped;
  if (p.flags & packet_flag::truncated) ++truncated_headers;
  if (p.flags & packet_flag::malformed) ++malformed;
}

void LabelDb::end_file(const SourceFileInfo& info, const PacketCounts& counts, const std::string& content_hash) {
  Statement s;
  sqlite3_prepare_v2(db_,
                     "UPDATE files SET packets = ?, link_types = ?, error = ?, damaged_at = ?, not_ip_packets = ?, "
                     "fragments = ?, snapped_packets = ?, truncated_headers = ?, malformed_packets = ?, content_hash = "
                     "?, complete = 1 "
                     "WHERE id = ?",
                     -1, &s.stmt, nullptr);
  std::string types = fmt::format("{}", fmt::join(info.link_types, ","));
  sqlite3_bind_int64(s.stmt, 1, static_cast<sqlite3_int64>(info.packets));
  sqlite3_bind_text(s.stmt, 2, types.c_str(), -1, SQLITE_TRANSIENT);
  if (info.warning.empty()) sqlite3_bind_null(s.stmt, 3);
  else sqlite3_bind_text(s.stmt, 3, info.warning.c_str(), -1, SQLITE_TRANSIENT);
  if (info.damaged_at < 0) sqlite3_bind_null(s.stmt, 4);
  else sqlite3_bind_int64(s.stmt, 4, info.damaged_at);
  int column = 5;
  for (auto n : {counts.not_ip, counts.fragments, counts.snapped, counts.truncated_headers, counts.malformed})
    sqlite3_bind_int64(s.stmt, column++, static_cast<sqlite3_int64>(n));
  sqlite3_bind_text(s.stmt, column++, content_hash.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(s.stmt, column, file_row_);
  if (sqlite3_step(s.stmt) != SQLITE_DONE) throw failure(sqlite3_errmsg(db_));
  exec("COMMIT;");
  release_cache();
}

void LabelDb::abandon_file() {
  sqlite3_exec(db_, "ROLLBACK;", nullptr, nullptr, nullptr);
  release_cache();
}

// A large file's page cache is given back after its transaction (committed or rolled back).
void LabelDb::release_cache() {
  sqlite3_exec(db_, "PRAGMA cache_size = -2000; PRAGMA shrink_memory;", nullptr, nullptr, nullptr);
}

namespace {
std::vector<LabelDb::AppRow> aggregate(sqlite3* db, const char* key, const char* category) {
  std::string sql = fmt::format(
      "SELECT {}, {}, COUNT(*), SUM(packets_c2s + packets_s2c), SUM(bytes_c2s + bytes_s2c), COUNT(DISTINCT file_id) "
      "FROM flows GROUP BY 1 ORDER BY 4 DESC, 1",
      key, category);
  Statement s;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s.stmt, nullptr) != SQLITE_OK) throw Error(sqlite3_errmsg(db));
  std::vector<LabelDb::AppRow> rows;
  while (sqlite3_step(s.stmt) == SQLITE_ROW) {
    LabelDb::AppRow r;
    auto col = [&](int c) {
      auto* t = sqlite3_column_text(s.stmt, c);
      return t ? std::string(reinterpret_cast<const char*>(t)) : "";
    };
    r.name = col(0);
    r.category = col(1);
    r.flows = static_cast<std::uint64_t>(sqlite3_column_int64(s.stmt, 2));
    r.packets = static_cast<std::uint64_t>(sqlite3_column_int64(s.stmt, 3));
    r.bytes = static_cast<std::uint64_t>(sqlite3_column_int64(s.stmt, 4));
    r.files = static_cast<std::uint64_t>(sqlite3_column_int64(s.stmt, 5));
    rows.push_back(std::move(r));
  }
  return rows;
}
}  // namespace

std::vector<LabelDb::AppRow> LabelDb::applications() const { return aggregate(db_, "label", "MIN(category)"); }
std::vector<LabelDb::AppRow> LabelDb::categories() const { return aggregate(db_, "category", "''"); }

}  // namespace trafficid::host
