// The ndpi labeler's flow table (plugins/labeler/ndpi/flow_table.hpp) against std::unordered_map,
// under hashes that collide on purpose: open addressing with backward-shift erase is where a
// misplaced bucket loses a flow without a crash.
#include <catch2/catch.hpp>
#include <random>
#include <unordered_map>
#include <vector>

#include "flow_table.hpp"

using trafficid::ndpi_labeler::FlowTable;

namespace {
struct Value {
  std::uint64_t id = 0;
  std::vector<int> held;  // owns memory: erase() must release it (ASan, valgrind) and reset it
};
// Few distinct homes, long runs that wrap around the end of the bucket array.
struct WeakHash {
  std::uint64_t operator()(std::uint64_t key) const { return (key % 13) * 0x9e3779b9ull + 1020; }
};
using Table = FlowTable<std::uint64_t, Value, WeakHash>;
}  // namespace

TEST_CASE("flow table: finds, inserts and erases as std::unordered_map does, under colliding hashes", "[flow_table]") {
  Table table;
  std::unordered_map<std::uint64_t, Table::Slot> oracle;
  std::mt19937_64 random(7);
  std::uint64_t next_id = 1;
  for (int step = 0; step < 200'000; ++step) {
    const std::uint64_t key = random() % 3000;
    const Table::Slot slot = table.find(key);
    const auto known = oracle.find(key);
    REQUIRE((slot == Table::none) == (known == oracle.end()));
    if (slot == Table::none) {
      const Table::Slot added = table.insert(key);
      REQUIRE(table.entry(added).key == key);
      REQUIRE(table.entry(added).value.id == 0);  // a reused slot comes back reset
      table.entry(added).value = {next_id++, std::vector<int>(3, 1)};
      oracle.emplace(key, added);
    } else {
      REQUIRE(slot == known->second);
      REQUIRE(table.entry(slot).key == key);
      if (random() % 2) {
        table.erase(slot);
        oracle.erase(known);
      }
    }
    REQUIRE(table.size() == oracle.size());
  }
  // Every key still held is found where it was put, and for_each visits each once.
  std::size_t visited = 0;
  table.for_each([&](Table::Slot slot, Table::Entry& e) {
    ++visited;
    REQUIRE(oracle.at(e.key) == slot);
    REQUIRE(table.find(e.key) == slot);
  });
  REQUIRE(visited == oracle.size());
}

TEST_CASE("flow table: without erasures, entries come back in the order they were made, and drain empties it",
          "[flow_table]") {
  Table table;
  for (std::uint64_t key = 0; key < 5000; ++key) table.entry(table.insert(key * 7919)).value.id = key;
  std::vector<std::uint64_t> order;
  table.drain([&](Table::Entry& e) { order.push_back(e.value.id); });
  REQUIRE(order.size() == 5000);
  for (std::uint64_t i = 0; i < order.size(); ++i) REQUIRE(order[i] == i);
  REQUIRE(table.size() == 0);
  REQUIRE(table.find(0) == Table::none);
  // Usable again after draining.
  const Table::Slot slot = table.insert(42);
  REQUIRE(table.find(42) == slot);
}
