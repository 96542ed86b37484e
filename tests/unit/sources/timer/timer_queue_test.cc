#include "sources/timer/timer_queue.h"

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
  EXPECT_EQ(q.earliest_deadline(), 5);
  EXPECT_EQ(q.deadline(a), 5);
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

TEST(TimerQueue, AgreesWithASortedModelOnARandomMix) {
  // Arm, re-arm, cancel and pop at random; the order of firing must be (deadline, arming order).
  TimerQueue q;
  constexpr int kNodes = 500;
  std::vector<TimerNode> nodes(kNodes);
  std::vector<std::pair<std::int64_t, std::uint64_t>> model(kNodes, {-1, 0});  // -1: not armed
  std::uint64_t seq = 0;
  std::uint64_t state = 12345;
  auto rnd = [&] { return state = state * 6364136223846793005ULL + 1442695040888963407ULL; };
  std::int64_t now = 0;
  for (int step = 0; step < 200000; ++step) {
    int i = static_cast<int>((rnd() >> 33) % kNodes);
    switch ((rnd() >> 33) % 4) {
      case 0:
      case 1: {
        std::int64_t d = now + static_cast<std::int64_t>((rnd() >> 33) % 1000);
        q.arm(nodes[i], d);
        model[i] = {d, seq++};
        break;
      }
      case 2:
        q.cancel(nodes[i]);
        model[i] = {-1, 0};
        break;
      case 3: {
        now += static_cast<std::int64_t>((rnd() >> 33) % 50);
        while (TimerNode* n = q.pop_due(now)) {
          // The model's earliest armed node must be exactly this one.
          int best = -1;
          for (int k = 0; k < kNodes; ++k) {
            if (model[k].first < 0) continue;
            if (best < 0 || model[k] < model[best]) best = k;
          }
          ASSERT_GE(best, 0);
          ASSERT_LE(model[best].first, now);
          ASSERT_EQ(n, &nodes[best]) << "step " << step;
          model[best] = {-1, 0};
        }
        break;
      }
    }
    ASSERT_EQ(nodes[i].armed(), model[i].first >= 0);
  }
  for (auto& n : nodes) q.cancel(n);
  EXPECT_TRUE(q.empty());
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
    std::int64_t due = q.empty() ? 0 : q.earliest_deadline();
    while (TimerNode* n = q.pop_due(now)) {
      fire_times.push_back(due);
      if (--left > 0) q.arm(*n, due + period);
      due = q.empty() ? 0 : q.earliest_deadline();
    }
  }
  EXPECT_EQ(fire_times, (std::vector<std::int64_t>{100, 107, 114}));
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace tocsin
