#include "sources/timer_queue.h"

namespace tocsin {

bool TimerQueue::arm(TimerNode& node, std::int64_t deadline_ns) {
  if (node.is_linked()) set_.erase(set_.iterator_to(node));
  node.deadline_ns = deadline_ns;
  auto it = set_.insert(node);
  return it == set_.begin();
}

bool TimerQueue::cancel(TimerNode& node) {
  if (!node.is_linked()) return false;
  auto it = set_.iterator_to(node);
  bool was_first = it == set_.begin();
  set_.erase(it);
  return was_first;
}

TimerNode* TimerQueue::earliest() { return set_.empty() ? nullptr : &*set_.begin(); }

TimerNode* TimerQueue::pop_due(std::int64_t now_ns) {
  if (set_.empty()) return nullptr;
  TimerNode& first = *set_.begin();
  if (first.deadline_ns > now_ns) return nullptr;
  set_.erase(set_.begin());
  return &first;
}

}  // namespace tocsin
