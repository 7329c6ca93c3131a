// The ndpi labeler's table of flows: open addressing over a flat array of (hash, slot) pairs, the
// entries themselves in fixed chunks that never move. It replaced a std::unordered_map, whose
// lookup (a bucket, then a node per flow allocated on its own, and a second hash per packet) was
// 7% of `trafficid prepro` on a capture of new flows; here a lookup reads one 8-byte bucket, and
// the entry only when the bucket's 32 bits of hash match.
// Entries are kept in the order they were made, slots freed by erase() being reused: a file read
// without timeouts (ndpiReader's semantics) ends its flows in the order they started.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace trafficid::ndpi_labeler {

// Hash: a functor giving a key's 64-bit hash; the table keeps its low 32 bits per bucket.
template <class Key, class Value, class Hash>
class FlowTable {
 public:
  struct Entry {
    Key key{};
    Value value{};
  };
  using Slot = std::uint32_t;
  static constexpr Slot none = ~Slot{0};

  FlowTable() { empty_buckets(); }

  std::size_t size() const { return size_; }

  // The slot of `key`, or `none`.
  Slot find(const Key& key) {
    const std::uint32_t tag = tag_of(key);
    for (std::size_t at = tag & mask_; buckets_[at].slot; at = (at + 1) & mask_)
      if (buckets_[at].tag == tag && entry(buckets_[at].slot - 1).key == key) return buckets_[at].slot - 1;
    return none;
  }

  // Adds `key` (which must be absent) with a default value; returns its slot.
  Slot insert(const Key& key) {
    if ((size_ + 1) * 10 > buckets_.size() * 7) grow(buckets_.size() * 2);
    Slot slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<Slot>(used_.size());
      if (slot % chunk_entries == 0) chunks_.push_back(std::make_unique<Entry[]>(chunk_entries));
      used_.push_back(false);
    }
    used_[slot] = true;
    place(tag_of(key), slot);
    ++size_;
    entry(slot).key = key;
    return slot;
  }

  // Removes the entry in `slot` (its value reset to a default one).
  void erase(Slot slot) {
    std::size_t hole = tag_of(entry(slot).key) & mask_;
    while (buckets_[hole].slot != slot + 1) hole = (hole + 1) & mask_;
    // Backward shift: every later bucket of the run that may move into the hole does.
    for (std::size_t next = (hole + 1) & mask_; buckets_[next].slot; next = (next + 1) & mask_) {
      const std::size_t home = buckets_[next].tag & mask_;
      const bool between = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
      if (between) continue;  // its home lies after the hole: it stays
      buckets_[hole] = buckets_[next];
      hole = next;
    }
    buckets_[hole] = {};
    entry(slot) = Entry{};
    used_[slot] = false;
    free_.push_back(slot);
    --size_;
  }

  // Calls f(slot, entry) for every entry, in slot order (the order of creation, but for reused slots).
  template <class F>
  void for_each(F&& f) {
    for (Slot s = 0; s < used_.size(); ++s)
      if (used_[s]) f(s, entry(s));
  }

  // Calls f(entry) for every entry in slot order, each chunk freed once its entries were seen, and
  // leaves the table empty: the entries and what f makes of them are never all held at once.
  template <class F>
  void drain(F&& f) {
    for (Slot s = 0; s < used_.size(); ++s) {
      if (used_[s]) f(entry(s));
      if ((s + 1) % chunk_entries == 0) chunks_[s / chunk_entries].reset();
    }
    chunks_.clear();
    used_.clear();
    free_.clear();
    size_ = 0;
    empty_buckets();
  }

  Entry& entry(Slot slot) { return chunks_[slot / chunk_entries][slot % chunk_entries]; }

 private:
  struct Bucket {
    std::uint32_t tag = 0;   // the key hash's low 32 bits: its home bucket, and a filter before the key
    std::uint32_t slot = 0;  // the entry's slot + 1; 0: empty
  };
  static constexpr std::size_t min_buckets = 1024;  // a power of two
  static constexpr std::size_t chunk_entries = 1024;

  static std::uint32_t tag_of(const Key& key) { return static_cast<std::uint32_t>(Hash{}(key)); }

  void place(std::uint32_t tag, Slot slot) {
    std::size_t at = tag & mask_;
    while (buckets_[at].slot) at = (at + 1) & mask_;
    buckets_[at] = {tag, slot + 1};
  }

  void empty_buckets() {
    buckets_ = std::vector<Bucket>(min_buckets);  // a fresh vector: a large one's memory is freed
    mask_ = min_buckets - 1;
  }

  void grow(std::size_t count) {
    std::vector<Bucket> old = std::move(buckets_);
    buckets_.assign(count, Bucket{});
    mask_ = count - 1;
    for (const Bucket& b : old)
      if (b.slot) place(b.tag, b.slot - 1);
  }

  std::vector<Bucket> buckets_;
  std::size_t mask_ = 0;
  std::vector<std::unique_ptr<Entry[]>> chunks_;
  std::vector<bool> used_;  // per slot
  std::vector<Slot> free_;  // slots erased, reused first
  std::size_t size_ = 0;
};

}  // namespace trafficid::ndpi_labeler
