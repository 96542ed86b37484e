// line.h — one encoded protocol line (an event notification, '\n' included), shared by every
// subscriber queue it is in: its bytes and its reference count in one block of memory. Freed
// blocks of up to 1 KiB go to a per-thread pool by size class and are handed out again (bursts of
// lines are made and freed together; measured: docs/BENCHMARKS.md, pgnotify).
// The count is not atomic: a Line is made, copied and freed on one thread (the reactor's).
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

namespace tocsin {

// One encoded line, '\n' included, shared by every queue it is in: its bytes and its reference
// count in one block of memory, kept for reuse when freed (hub.cc; measured: docs/BENCHMARKS.md,
// pgnotify). The count is not atomic: lines live on the reactor's thread only.
class Line {
 public:
  Line() = default;
  explicit Line(std::string_view text);
  Line(const Line& other) noexcept : block_(other.block_) {
    if (block_ != nullptr) ++block_->refs;
  }
  Line(Line&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  Line& operator=(Line other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~Line() {
    if (block_ != nullptr && --block_->refs == 0) release(block_);
  }
  std::string_view view() const {
    return block_ == nullptr ? std::string_view{} : std::string_view{block_->bytes(), block_->size};
  }
  explicit operator bool() const { return block_ != nullptr; }

  // Gives this thread's pooled blocks back to the heap (after a burst, before malloc_trim).
  static void release_pool();

 private:
  struct Block {
    std::size_t refs;
    std::size_t size;
    char* bytes() { return reinterpret_cast<char*>(this + 1); }
  };
  static void release(Block* block);
  Block* block_ = nullptr;
};

}  // namespace tocsin
