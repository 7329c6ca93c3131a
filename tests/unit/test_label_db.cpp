// The labels database: a file is labelled in one transaction, so an interrupted file leaves no
// trace and the next run labels it; a complete file with the same content and config is skipped.
#include <sqlite3.h>

#include "labels/label_db.hpp"
#include "test_support.hpp"

using namespace trafficid;
using namespace trafficid::host;
namespace fs = std::filesystem;

namespace {
std::int64_t count(const fs::path& db, const char* sql) {
  sqlite3* handle = nullptr;
  sqlite3_open(db.c_str(), &handle);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(handle, sql, -1, &s, nullptr);
  sqlite3_step(s);
  std::int64_t n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(handle);
  return n;
}
}  // namespace

TEST_CASE("an abandoned file leaves the database as it was and a complete one is skipped next time", "[labeldb]") {
  auto dir = test_support::temp_dir("labeldb");
  auto path = dir / "labels.sqlite";
  FlowRecord flow;
  flow.tuple.protocol = 6;
  flow.tuple.src.version = flow.tuple.dst.version = 4;
  flow.label = "TLS.YouTube";
  flow.packets_c2s = 3;
  SourceFileInfo info;
  info.packets = 3;
  LabelDb::PacketCounts counts;
  {
    LabelDb db(path);
    db.begin_file("/captures/a.pcap", 100, "{}");
    db.add_flow(flow);
    db.abandon_file();  // as on SIGINT or an error in the middle of a file
    CHECK_FALSE(db.up_to_date("/captures/a.pcap", "abc", "{}"));
    CHECK_FALSE(db.has_size("/captures/a.pcap", 100));
  }
  CHECK(count(path, "SELECT COUNT(*) FROM files") == 0);
  CHECK(count(path, "SELECT COUNT(*) FROM flows") == 0);
  {
    LabelDb db(path);
    db.begin_file("/captures/a.pcap", 100, "{}");
    db.add_flow(flow);
    db.add_flow(flow);
    db.end_file(info, counts, "abc");
    CHECK(db.has_size("/captures/a.pcap", 100));
    CHECK(db.up_to_date("/captures/a.pcap", "abc", "{}"));
    CHECK_FALSE(db.up_to_date("/captures/a.pcap", "abd", "{}"));         // content changed
    CHECK_FALSE(db.up_to_date("/captures/a.pcap", "abc", "{\"x\":1}"));  // labeler config changed
    // Labelling it again replaces its flows instead of adding to them.
    db.begin_file("/captures/a.pcap", 100, "{}");
    db.add_flow(flow);
    db.end_file(info, counts, "abc");
    auto apps = db.applications();
    REQUIRE(apps.size() == 1);
    CHECK(apps[0].name == "TLS.YouTube");
    CHECK(apps[0].flows == 1);
    CHECK(apps[0].packets == 3);
  }
  CHECK(count(path, "SELECT COUNT(*) FROM flows") == 1);
  fs::remove_all(dir);
}
