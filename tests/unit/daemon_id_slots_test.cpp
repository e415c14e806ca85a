// Host id pairs for concurrent jobs: distinct, bounded, released with the lease.
#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/id_slots.hpp"

namespace {

using namespace hermetic::daemon;

constexpr uid_t kBase = 0x50000000;

TEST(IdSlots, LeasesHaveDistinctPairsFromTheRange) {
    IdSlots slots(kBase, 16);
    std::vector<IdLease> leases;
    std::set<uid_t> seen;
    for (int i = 0; i < 8; ++i) {
        auto l = slots.acquire();
        ASSERT_TRUE(l) << i;
        ASSERT_TRUE(l->valid());
        const auto& ids = l->ids();
        EXPECT_NE(ids.root_host_id, ids.build_host_id);
        for (uid_t id : {ids.root_host_id, ids.build_host_id}) {
            EXPECT_GE(id, kBase);
            EXPECT_LT(id, kBase + 16);
            EXPECT_TRUE(seen.insert(id).second) << "id " << id << " handed out twice";
        }
        leases.push_back(std::move(*l));
    }
    EXPECT_EQ(seen.size(), 16u);
    EXPECT_EQ(slots.in_use(), 8u);
}

TEST(IdSlots, LowestFreeSlotFirst) {
    IdSlots slots(kBase, 8);
    auto a = slots.acquire();
    EXPECT_EQ(a->ids().root_host_id, kBase);
    EXPECT_EQ(a->ids().build_host_id, kBase + 1);
    auto b = slots.acquire();
    EXPECT_EQ(b->ids().root_host_id, kBase + 2);
    EXPECT_EQ(b->ids().build_host_id, kBase + 3);
}

TEST(IdSlots, ExhaustionReturnsNothing) {
    IdSlots slots(kBase, 6);  // three pairs
    auto a = slots.acquire(), b = slots.acquire(), c = slots.acquire();
    ASSERT_TRUE(a && b && c);
    EXPECT_FALSE(slots.acquire());
    EXPECT_FALSE(slots.acquire());
    EXPECT_EQ(slots.in_use(), 3u);
}

TEST(IdSlots, OddCountLeavesTheLastIdUnused) {
    IdSlots slots(kBase, 5);  // two whole pairs; kBase+4 has no partner
    auto a = slots.acquire(), b = slots.acquire();
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(slots.acquire());
    EXPECT_LT(b->ids().build_host_id, kBase + 5);
}

TEST(IdSlots, TooSmallARangeHasNoSlots) {
    IdSlots slots(kBase, 1);
    EXPECT_FALSE(slots.acquire());
    IdSlots none(kBase, 0);
    EXPECT_FALSE(none.acquire());
}

TEST(IdSlots, DestroyingTheLeaseReleasesItsSlot) {
    IdSlots slots(kBase, 4);
    {
        auto a = slots.acquire();
        auto b = slots.acquire();
        ASSERT_TRUE(a && b);
        EXPECT_FALSE(slots.acquire());
        EXPECT_EQ(slots.in_use(), 2u);
    }
    EXPECT_EQ(slots.in_use(), 0u);
    auto again = slots.acquire();
    ASSERT_TRUE(again);
    EXPECT_EQ(again->ids().root_host_id, kBase);
}

TEST(IdSlots, ReleasedSlotIsReusedFirst) {
    IdSlots slots(kBase, 6);
    auto a = slots.acquire();
    auto b = slots.acquire();
    auto c = slots.acquire();
    uid_t freed = b->ids().root_host_id;
    b.reset();
    auto d = slots.acquire();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->ids().root_host_id, freed);
    EXPECT_FALSE(slots.acquire());
}

TEST(IdSlots, MoveConstructionTransfersOwnership) {
    IdSlots slots(kBase, 2);
    auto a = slots.acquire();
    ASSERT_TRUE(a);
    IdLease moved(std::move(*a));
    EXPECT_FALSE(a->valid());
    EXPECT_TRUE(moved.valid());
    EXPECT_EQ(moved.ids().root_host_id, kBase);
    a.reset();  // the moved-from lease releases nothing
    EXPECT_EQ(slots.in_use(), 1u);
    EXPECT_FALSE(slots.acquire());
    {
        IdLease gone = std::move(moved);
    }
    EXPECT_EQ(slots.in_use(), 0u);
}

TEST(IdSlots, MoveAssignmentReleasesTheOverwrittenSlot) {
    IdSlots slots(kBase, 4);
    auto a = slots.acquire();
    auto b = slots.acquire();
    ASSERT_TRUE(a && b);
    uid_t b_id = b->ids().root_host_id;
    *a = std::move(*b);  // a's old slot is released, b's now belongs to a
    EXPECT_EQ(slots.in_use(), 1u);
    EXPECT_EQ(a->ids().root_host_id, b_id);
    EXPECT_FALSE(b->valid());
    auto c = slots.acquire();
    ASSERT_TRUE(c);
    EXPECT_EQ(c->ids().root_host_id, kBase);  // a's old slot
    a.reset();
    EXPECT_EQ(slots.in_use(), 1u);
}

TEST(IdSlots, SelfMoveAssignmentKeepsTheSlot) {
    IdSlots slots(kBase, 2);
    auto a = slots.acquire();
    IdLease& ref = *a;
    ref = std::move(*a);
    EXPECT_TRUE(a->valid());
    EXPECT_EQ(slots.in_use(), 1u);
}

TEST(IdSlots, DefaultLeaseHoldsNothing) {
    IdLease l;
    EXPECT_FALSE(l.valid());
}

TEST(IdSlots, ConcurrentAcquireNeverDuplicates) {
    IdSlots slots(kBase, 2 * 64);
    std::vector<std::vector<IdLease>> got(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 32; ++i) {
                auto l = slots.acquire();
                if (l) got[t].push_back(std::move(*l));
            }
        });
    for (auto& th : threads) th.join();
    std::set<uid_t> seen;
    size_t total = 0;
    for (auto& v : got)
        for (auto& l : v) {
            ++total;
            EXPECT_TRUE(seen.insert(l.ids().root_host_id).second);
        }
    EXPECT_EQ(total, 64u);
    EXPECT_EQ(slots.in_use(), 64u);
    got.clear();
    EXPECT_EQ(slots.in_use(), 0u);
}

}  // namespace
