// Files written whole: write_file_atomically from several writers at once never leaves a torn
// or mixed file, never fails for another writer's temporary, and leaves no temporary behind.
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "test_support.hpp"
#include "trafficid/error.hpp"
#include "trafficid/files.hpp"

namespace fs = std::filesystem;

TEST_CASE("concurrent atomic writes of one file: always one writer's whole content, no temporary left", "[files]") {
  const fs::path dir = test_support::temp_dir("atomic");
  const fs::path file = dir / "state.json";
  // Each writer's content is its own letter, 200 KB of it: a torn or mixed file holds two letters
  // or fewer bytes.
  constexpr std::size_t size = 200 * 1024;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (char letter : {'a', 'b', 'c', 'd'})
    writers.emplace_back([&, letter] {
      const std::string content(size, letter);
      for (int i = 0; i < 40; ++i) {
        try {
          trafficid::write_file_atomically(file, content);
        } catch (const trafficid::Error&) {
          ++failures;
        }
      }
    });
  std::atomic<bool> done{false};
  std::atomic<int> bad_reads{0};
  std::thread reader([&] {
    while (!done) {
      std::ifstream in(file, std::ios::binary);
      if (!in) continue;
      std::stringstream text;
      text << in.rdbuf();
      const std::string s = text.str();
      if (s.size() != size || s.find_first_not_of(s[0]) != std::string::npos) ++bad_reads;
    }
  });
  for (auto& w : writers) w.join();
  done = true;
  reader.join();
  CHECK(failures == 0);
  CHECK(bad_reads == 0);
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);  // no temporary left behind
  fs::remove_all(dir);
}

TEST_CASE("a write that cannot be made says why and keeps what the file held", "[files]") {
  const fs::path dir = test_support::temp_dir("atomic-fail");
  const fs::path file = dir / "run.json";
  trafficid::write_file_atomically(file, "before");
  try {
    trafficid::write_file_atomically(dir / "no-such-folder" / "run.json", "after");
    FAIL("a write into a missing folder succeeded");
  } catch (const trafficid::Error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("no-such-folder/run.json"));
  }
  std::ifstream in(file);
  std::string kept;
  std::getline(in, kept);
  CHECK(kept == "before");
  fs::remove_all(dir);
}
