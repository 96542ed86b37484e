#include "sources/timer/timer_queue.h"

#include <algorithm>

namespace tocsin {

namespace {
constexpr std::size_t kArity = 4;
}  // namespace

TimerQueue::~TimerQueue() {
  for (auto& e : heap_) e.node->slot_ = TimerNode::kNoSlot;
}

void TimerQueue::sift_up(std::size_t i) {
  Entry e = heap_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / kArity;
    if (!earlier(e, heap_[parent])) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

void TimerQueue::sift_down(std::size_t i) {
  Entry e = heap_[i];
  const std::size_t n = heap_.size();
  while (true) {
    std::size_t first_child = kArity * i + 1;
    if (first_child >= n) break;
    std::size_t best = first_child;
    std::size_t end = std::min(first_child + kArity, n);
    for (std::size_t c = first_child + 1; c < end; ++c) {
      if (earlier(heap_[c], heap_[best])) best = c;
    }
    if (!earlier(heap_[best], e)) break;
    place(i, heap_[best]);
    i = best;
  }
  place(i, e);
}

void TimerQueue::remove_slot(std::size_t i) {
  heap_[i].node->slot_ = TimerNode::kNoSlot;
  Entry last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  heap_[i] = last;
  if (i > 0 && earlier(last, heap_[(i - 1) / kArity])) {
    sift_up(i);
  } else {
    sift_down(i);
  }
}

bool TimerQueue::arm(TimerNode& node, std::int64_t deadline_ns) {
  if (node.armed()) remove_slot(node.slot_);
  heap_.push_back({deadline_ns, next_sequence_++, &node});
  sift_up(heap_.size() - 1);
  return node.slot_ == 0;
}

bool TimerQueue::cancel(TimerNode& node) {
  if (!node.armed()) return false;
  bool was_first = node.slot_ == 0;
  remove_slot(node.slot_);
  return was_first;
}

TimerNode* TimerQueue::pop_due(std::int64_t now_ns) {
  if (heap_.empty() || heap_.front().deadline > now_ns) return nullptr;
  TimerNode* node = heap_.front().node;
  remove_slot(0);
  return node;
}

}  // namespace tocsin
