#include "protocol/line.h"

#include <array>
#include <cstring>
#include <new>
#include <optional>
#include <utility>

namespace tocsin {

// ---- Line ----------------------------------------------------------------------------------
// Lines come and go in bursts: thousands made as a burst of events is queued, freed together once
// written. glibc's per-thread cache keeps seven blocks of a size and sends the rest through its
// bins, which cost about 350 instructions for the malloc and free of a 250-byte line (callgrind,
// docs/BENCHMARKS.md, pgnotify). Freed blocks of up to kPooledMax bytes are kept here instead, in
// size classes of kClassBytes, up to kPoolBytes in all for each thread, and handed out again.
// Under AddressSanitizer nothing is kept, so that it sees every use after free.
namespace {

constexpr std::size_t kClassBytes = 64;
constexpr std::size_t kClasses = 16;
constexpr std::size_t kPooledMax = kClasses * kClassBytes;
#if defined(__has_feature)
#if __has_feature(address_sanitizer)  // Clang's way to say it (the fuzzers)
#define TOCSIN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(TOCSIN_ASAN)
constexpr std::size_t kPoolBytes = 0;
#else
constexpr std::size_t kPoolBytes = std::size_t{2} << 20;
#endif

struct FreeBlock {
  FreeBlock* next;
};

thread_local bool pool_gone = false;  // trivially destructible: readable while the thread exits

struct LinePool {
  std::array<FreeBlock*, kClasses> free{};
  std::size_t bytes = 0;
  void clear() {
    for (FreeBlock*& head : free) {
      while (head != nullptr) ::operator delete(std::exchange(head, head->next));
    }
    bytes = 0;
  }
  ~LinePool() {
    clear();
    pool_gone = true;  // lines freed later in the thread's exit go back to the heap
  }
};

LinePool* line_pool() {
  if (pool_gone) return nullptr;
  thread_local LinePool pool;
  return &pool;
}

// The pool's size class for a block of `total` bytes (header included), and the size every block
// of that class is allocated with; nothing for blocks too large to pool.
struct SizeClass {
  std::size_t index;
  std::size_t bytes;
};
std::optional<SizeClass> size_class(std::size_t total) {
  if (total > kPooledMax) return std::nullopt;
  std::size_t index = (total - 1) / kClassBytes;
  return SizeClass{index, (index + 1) * kClassBytes};
}

}  // namespace

Line::Line(std::string_view text) {
  std::size_t total = sizeof(Block) + text.size();
  void* memory = nullptr;
  auto c = size_class(total);
  if (c) {
    total = c->bytes;
    LinePool* pool = line_pool();
    if (pool != nullptr && pool->free[c->index] != nullptr) {
      memory = std::exchange(pool->free[c->index], pool->free[c->index]->next);
      pool->bytes -= c->bytes;
    }
  }
  if (memory == nullptr) memory = ::operator new(total);
  block_ = ::new (memory) Block{1, text.size()};
  std::memcpy(block_->bytes(), text.data(), text.size());
}

void Line::release_pool() {
  if (LinePool* pool = line_pool()) pool->clear();
}

void Line::release(Block* block) {
  auto c = size_class(sizeof(Block) + block->size);
  LinePool* pool = c ? line_pool() : nullptr;
  if (pool != nullptr && pool->bytes + c->bytes <= kPoolBytes) {
    pool->free[c->index] = ::new (static_cast<void*>(block)) FreeBlock{pool->free[c->index]};
    pool->bytes += c->bytes;
    return;
  }
  ::operator delete(block);
}

}  // namespace tocsin
