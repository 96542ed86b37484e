#include "sources/timer_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace tocsin {
namespace {

std::vector<TimerNode*> pop_all(TimerQueue& q, std::int64_t now) {
  std::vector<TimerNode*> out;
  while (TimerNode* n = q.pop_due(now)) out.push_back(n);
  return out;
}

TEST(TimerQueue, OrdersByDeadline) {
  TimerQueue q;
  TimerNode a, b, c;
  EXPECT_TRUE(q.arm(b, 20));
  EXPECT_FALSE(q.arm(c, 30));
  EXPECT_TRUE(q.arm(a, 10));
  EXPECT_EQ(q.earliest(), &a);
  EXPECT_EQ(q.pop_due(9), nullptr);
  EXPECT_EQ(pop_all(q, 25), (std::vector<TimerNode*>{&a, &b}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_FALSE(a.armed());
  EXPECT_TRUE(c.armed());
  q.cancel(c);
}

TEST(TimerQueue, TiesFireInArmingOrder) {
  TimerQueue q;
  TimerNode n[5];
  for (int i : {3, 1, 4, 0, 2}) q.arm(n[i], 100);
  EXPECT_EQ(pop_all(q, 100), (std::vector<TimerNode*>{&n[3], &n[1], &n[4], &n[0], &n[2]}));
}

TEST(TimerQueue, CancelWhileDueAndRearm) {
  TimerQueue q;
  TimerNode a, b;
  q.arm(a, 10);
  q.arm(b, 10);
  EXPECT_TRUE(q.cancel(a));    // was the earliest
  EXPECT_FALSE(q.cancel(a));   // not armed any more
  EXPECT_EQ(pop_all(q, 50), (std::vector<TimerNode*>{&b}));
  q.arm(a, 60);
  EXPECT_TRUE(q.arm(a, 5));  // re-arming moves it
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.earliest()->deadline_ns, 5);
  q.cancel(a);
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueue, RemovalFromInsideAFiringLoop) {
  // The owner fires a due node and, while doing so, cancels others (due or not) and re-arms the
  // fired one; the loop sees exactly what is still armed.
  TimerQueue q;
  TimerNode a, b, c, d;
  q.arm(a, 10);
  q.arm(b, 10);
  q.arm(c, 10);
  q.arm(d, 40);
  std::vector<TimerNode*> fired;
  bool rearmed = false;
  while (TimerNode* n = q.pop_due(10)) {
    fired.push_back(n);
    if (n == &a && !rearmed) {
      rearmed = true;
      q.cancel(b);    // due, cancelled before it fires
      q.cancel(d);    // not due
      q.arm(*n, 10);  // its next deadline is due too: it fires again, after c
    }
  }
  EXPECT_EQ(fired, (std::vector<TimerNode*>{&a, &c, &a}));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(b.armed());
  EXPECT_FALSE(d.armed());
}

TEST(TimerQueue, IterationsCountdownWithAPeriod) {
  // A periodic timer with 3 iterations, driven as the rb_timer source drives it: absolute
  // deadlines (no drift) and retirement after the last.
  TimerQueue q;
  TimerNode t;
  const std::int64_t period = 7;
  int left = 3;
  q.arm(t, 100);
  std::vector<std::int64_t> fire_times;
  for (std::int64_t now = 100; now <= 200 && !q.empty(); ++now) {
    while (TimerNode* n = q.pop_due(now)) {
      fire_times.push_back(n->deadline_ns);
      if (--left > 0) q.arm(*n, n->deadline_ns + period);
    }
  }
  EXPECT_EQ(fire_times, (std::vector<std::int64_t>{100, 107, 114}));
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace tocsin
