// Network namespaces with loopback up, and the pool that makes them ahead of time.
// Needs root. Everything that enters a namespace does so in a dedicated thread or a
// forked child; the test's own threads stay in the host namespace.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/capability.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"
#include "sandbox/loopback.hpp"
#include "sandbox/netns_pool.hpp"

namespace hermetic::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

ino_t inode_of_fd(int fd) {
    struct stat st {};
    check(fstat(fd, &st), "fstat");
    return st.st_ino;
}

ino_t inode_of_path(const char* path) {
    struct stat st {};
    check(stat(path, &st), path);
    return st.st_ino;
}

// Runs fn in a fresh thread that has joined the network namespace nsfd; the
// calling thread never changes namespace. Exceptions come back to the caller.
template <typename F>
auto in_netns(int nsfd, F&& fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::exception_ptr error;
    R result{};
    std::thread worker([&] {
        try {
            check(setns(nsfd, CLONE_NEWNET), "setns");
            if (inode_of_path("/proc/thread-self/ns/net") != inode_of_fd(nsfd))
                throw std::runtime_error("setns did not move the thread");
            result = fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    worker.join();
    if (error) std::rethrow_exception(error);
    return result;
}

// Runs fn in a fresh thread that first unshares into a brand-new namespace.
template <typename F>
void in_new_netns(F&& fn) {
    std::exception_ptr error;
    std::thread worker([&] {
        try {
            check(unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    worker.join();
    if (error) std::rethrow_exception(error);
}

struct Interfaces {
    std::set<std::string> names;
    unsigned lo_flags = 0;
    bool has_ipv4_loopback = false;
    bool has_ipv6_loopback = false;
};

// getifaddrs() asks rtnetlink in the calling thread's namespace.
Interfaces list_interfaces() {
    ifaddrs* list = nullptr;
    check(getifaddrs(&list), "getifaddrs");
    Interfaces out;
    for (ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
        out.names.insert(ifa->ifa_name);
        if (std::string(ifa->ifa_name) != "lo") continue;
        out.lo_flags = ifa->ifa_flags;
        if (!ifa->ifa_addr) continue;
        if (ifa->ifa_addr->sa_family == AF_INET) {
            const auto* sin = reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr);
            if (sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) out.has_ipv4_loopback = true;
        } else if (ifa->ifa_addr->sa_family == AF_INET6) {
            const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr);
            if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) out.has_ipv6_loopback = true;
        }
    }
    freeifaddrs(list);
    return out;
}

UniqueFd tcp_socket(int family) {
    return UniqueFd(static_cast<int>(check(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
}

// A listener on the loopback address of family, on an ephemeral port.
struct Listener {
    UniqueFd fd;
    sockaddr_storage addr{};
    socklen_t len = 0;
};

Listener listen_on_loopback(int family) {
    Listener l;
    l.fd = tcp_socket(family);
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&l.addr);
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        l.len = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&l.addr);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        l.len = sizeof(sockaddr_in6);
    }
    check(bind(l.fd.get(), reinterpret_cast<sockaddr*>(&l.addr), l.len),
          family == AF_INET ? "bind 127.0.0.1" : "bind ::1");
    check(listen(l.fd.get(), 4), "listen");
    check(getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&l.addr), &l.len), "getsockname");
    return l;
}

// 0 on success, else the errno of connect().
int try_connect(const Listener& l) {
    UniqueFd c = tcp_socket(l.addr.ss_family);
    if (connect(c.get(), reinterpret_cast<const sockaddr*>(&l.addr), l.len) == 0) return 0;
    return errno;
}

// Listener and client both in the calling thread's namespace; true once accepted.
bool loopback_round_trip(int family) {
    Listener l = listen_on_loopback(family);
    UniqueFd c = tcp_socket(family);
    check(connect(c.get(), reinterpret_cast<const sockaddr*>(&l.addr), l.len),
          family == AF_INET ? "connect 127.0.0.1" : "connect ::1");
    UniqueFd accepted(static_cast<int>(check(accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept")));
    const char ping = 'x';
    char got = 0;
    check(write(c.get(), &ping, 1), "write");
    check(read(accepted.get(), &got, 1), "read");
    return got == ping;
}

size_t open_fd_count() {
    size_t n = 0;
    DIR* dir = opendir("/proc/self/fd");
    if (!dir) throw_errno("opendir /proc/self/fd");
    while (dirent* e = readdir(dir))
        if (e->d_name[0] != '.') ++n;
    closedir(dir);
    return n;
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!cond()) {
        if (Clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// Clears cap from the calling thread's effective set. Capabilities are per
// thread, and threads it creates afterwards inherit the reduced set.
void drop_effective_cap_in_this_thread(unsigned cap) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    check(syscall(SYS_capget, &hdr, data), "capget");
    data[cap / 32].effective &= ~(1u << (cap % 32));
    check(syscall(SYS_capset, &hdr, data), "capset");
}

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

void print_stats(const char* label, std::vector<double> us) {
    std::sort(us.begin(), us.end());
    const auto at = [&](double q) { return us[static_cast<size_t>(q * static_cast<double>(us.size() - 1))]; };
    std::printf("[ timing   ] %-46s n=%zu median=%.0f us  min=%.0f  p90=%.0f  max=%.0f\n", label, us.size(),
                at(0.5), us.front(), at(0.9), us.back());
}

class NetnsTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root";
    }
};

TEST_F(NetnsTest, NamespaceHasOnlyLoopbackUpWithBothAddresses) {
    NetnsPool pool(1);
    UniqueFd ns = pool.take();
    const Interfaces ifs = in_netns(ns.get(), list_interfaces);
    EXPECT_EQ(ifs.names, std::set<std::string>{"lo"});
    EXPECT_TRUE(ifs.lo_flags & IFF_UP);
    EXPECT_TRUE(ifs.lo_flags & IFF_LOOPBACK);
    EXPECT_TRUE(ifs.has_ipv4_loopback);
    EXPECT_TRUE(ifs.has_ipv6_loopback);
}

TEST_F(NetnsTest, TcpOverLoopbackWorksInside) {
    NetnsPool pool(1);
    UniqueFd ns = pool.take();
    EXPECT_TRUE(in_netns(ns.get(), [] { return loopback_round_trip(AF_INET); }));
    EXPECT_TRUE(in_netns(ns.get(), [] { return loopback_round_trip(AF_INET6); }));
}

// Every ACK received is not the same as usable: an ::1 finished by asynchronous
// DAD work was still tentative or unrouted in ~5% of fresh namespaces.
TEST_F(NetnsTest, LoopbackIsUsableAsSoonAsCreated) {
    for (int i = 0; i < 200; ++i) {
        UniqueFd ns = create_netns_with_loopback();
        ASSERT_TRUE(in_netns(ns.get(), [] { return loopback_round_trip(AF_INET6); })) << "iteration " << i;
        ASSERT_TRUE(in_netns(ns.get(), [] { return loopback_round_trip(AF_INET); })) << "iteration " << i;
    }
}

TEST_F(NetnsTest, HostListenerIsNotReachableFromInside) {
    Listener host = listen_on_loopback(AF_INET);
    // Control: the listener is reachable from the host namespace.
    ASSERT_EQ(try_connect(host), 0);

    NetnsPool pool(2);
    UniqueFd ns = pool.take();
    EXPECT_EQ(in_netns(ns.get(), [&] { return try_connect(host); }), ECONNREFUSED);
    // Also from a namespace created without the pool.
    UniqueFd fresh = create_netns_with_loopback();
    EXPECT_EQ(in_netns(fresh.get(), [&] { return try_connect(host); }), ECONNREFUSED);
}

TEST_F(NetnsTest, CallerNamespacesAreUnchanged) {
    const ino_t process_before = inode_of_path("/proc/self/ns/net");
    const ino_t thread_before = inode_of_path("/proc/thread-self/ns/net");
    std::vector<UniqueFd> made;
    for (int i = 0; i < 5; ++i) made.push_back(create_netns_with_loopback());
    {
        NetnsPool pool(3);
        ASSERT_TRUE(wait_until([&] { return pool.ready() == 3; }, std::chrono::seconds(10)));
        made.push_back(pool.take());
    }
    EXPECT_EQ(inode_of_path("/proc/self/ns/net"), process_before);
    EXPECT_EQ(inode_of_path("/proc/thread-self/ns/net"), thread_before);
    for (const UniqueFd& fd : made) EXPECT_NE(inode_of_fd(fd.get()), process_before);
}

TEST_F(NetnsTest, TakeReturnsDistinctNamespaces) {
    NetnsPool pool(2);
    UniqueFd a = pool.take();
    UniqueFd b = pool.take();
    // Both stay open while compared: nsfs inode numbers are reused once freed.
    EXPECT_NE(inode_of_fd(a.get()), inode_of_fd(b.get()));
}

TEST_F(NetnsTest, PoolRefillsToTarget) {
    NetnsPool pool(3);
    ASSERT_TRUE(wait_until([&] { return pool.ready() == 3; }, std::chrono::seconds(10)));
    std::vector<UniqueFd> taken;
    taken.push_back(pool.take());
    taken.push_back(pool.take());
    EXPECT_LE(pool.ready(), 3u);
    ASSERT_TRUE(wait_until([&] { return pool.ready() == 3; }, std::chrono::seconds(10)));
    // And it stops there.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(pool.ready(), 3u);
}

TEST_F(NetnsTest, TargetZeroCreatesOnDemand) {
    NetnsPool pool(0);
    EXPECT_EQ(pool.ready(), 0u);
    std::vector<UniqueFd> taken;
    std::set<ino_t> inodes;
    for (int i = 0; i < 3; ++i) {
        taken.push_back(pool.take());
        inodes.insert(inode_of_fd(taken.back().get()));
    }
    EXPECT_EQ(inodes.size(), 3u);
    EXPECT_EQ(pool.ready(), 0u);
    const Interfaces ifs = in_netns(taken[0].get(), list_interfaces);
    EXPECT_TRUE(ifs.lo_flags & IFF_UP);
}

TEST_F(NetnsTest, DestructorJoinsAndClosesUnusedNamespaces) {
    const size_t fds_before = open_fd_count();
    {
        NetnsPool pool(4);
        ASSERT_TRUE(wait_until([&] { return pool.ready() == 4; }, std::chrono::seconds(10)));
    }
    EXPECT_EQ(open_fd_count(), fds_before);
    // Destroyed while the refill thread is busy creating.
    const auto t0 = Clock::now();
    { NetnsPool pool(8); }
    const auto elapsed = Clock::now() - t0;
    EXPECT_EQ(open_fd_count(), fds_before);
    EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST_F(NetnsTest, ConcurrentTakesAreDistinct) {
    NetnsPool pool(2);
    std::mutex mu;
    std::vector<UniqueFd> taken;
    std::vector<std::thread> takers;
    std::exception_ptr error;
    for (int t = 0; t < 4; ++t) {
        takers.emplace_back([&] {
            try {
                for (int i = 0; i < 8; ++i) {
                    UniqueFd ns = pool.take();
                    std::lock_guard lock(mu);
                    taken.push_back(std::move(ns));
                }
            } catch (...) {
                std::lock_guard lock(mu);
                error = std::current_exception();
            }
        });
    }
    for (std::thread& t : takers) t.join();
    if (error) std::rethrow_exception(error);
    std::set<ino_t> inodes;
    for (const UniqueFd& fd : taken) inodes.insert(inode_of_fd(fd.get()));
    EXPECT_EQ(inodes.size(), 32u);
}

TEST_F(NetnsTest, BringUpIsIdempotent) {
    in_new_netns([] {
        bring_up_loopback();
        bring_up_loopback();  // EEXIST on both addresses is accepted
        const Interfaces ifs = list_interfaces();
        EXPECT_TRUE(ifs.lo_flags & IFF_UP);
        EXPECT_TRUE(ifs.has_ipv4_loopback);
        EXPECT_TRUE(ifs.has_ipv6_loopback);
    });
}

TEST_F(NetnsTest, FailureNamesTheStep) {
    try {
        in_new_netns([] {
            drop_effective_cap_in_this_thread(CAP_NET_ADMIN);
            bring_up_loopback();
        });
        FAIL() << "bring_up_loopback succeeded without CAP_NET_ADMIN";
    } catch (const SysError& e) {
        EXPECT_EQ(e.code(), EPERM);
        EXPECT_EQ(std::string(e.what()).rfind("loopback: RTM_NEWLINK lo up", 0), 0u) << e.what();
    }
}

// A refill thread that cannot create namespaces makes take() fail, and keep
// failing, even for a caller that could create one itself.
TEST_F(NetnsTest, RefillFailureIsRethrownByTake) {
    std::unique_ptr<NetnsPool> pool;
    // The refill thread inherits the constructing thread's capabilities.
    std::thread([&] {
        drop_effective_cap_in_this_thread(CAP_SYS_ADMIN);
        pool = std::make_unique<NetnsPool>(1);
    }).join();
    ASSERT_TRUE(pool);
    std::string failure;
    // Until the refill thread has failed, take() creates here, with full privileges.
    ASSERT_TRUE(wait_until(
        [&] {
            try {
                UniqueFd ns = pool->take();
                return false;
            } catch (const SysError& e) {
                EXPECT_EQ(e.code(), EPERM);
                failure = e.what();
                return true;
            }
        },
        std::chrono::seconds(5)));
    EXPECT_EQ(failure.rfind("netns: unshare(CLONE_NEWNET)", 0), 0u) << failure;
    EXPECT_THROW(pool->take(), SysError);
    EXPECT_EQ(pool->ready(), 0u);
    pool.reset();  // joins the thread that has already exited
}

// disable_ipv6 is a sysctl of the namespace; set it in a forked child that has
// unshared, so the host's value can't be touched.
TEST_F(NetnsTest, IPv6DisabledOnLoopbackIsTolerated) {
    const pid_t pid = fork();
    ASSERT_NE(pid, -1);
    if (pid == 0) {
        try {
            check(unshare(CLONE_NEWNET), "unshare");
            UniqueFd sysctl(static_cast<int>(
                check(open("/proc/sys/net/ipv6/conf/lo/disable_ipv6", O_WRONLY | O_CLOEXEC), "open disable_ipv6")));
            check(write(sysctl.get(), "1", 1), "write disable_ipv6");
            bring_up_loopback();
            const Interfaces ifs = list_interfaces();
            if (!(ifs.lo_flags & IFF_UP) || !ifs.has_ipv4_loopback) _exit(2);
            if (ifs.has_ipv6_loopback) _exit(3);
            if (!loopback_round_trip(AF_INET)) _exit(4);
            _exit(0);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
            _exit(1);
        }
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Timings are printed, not asserted: they depend on the machine and its load.
TEST_F(NetnsTest, TimingCreate) {
    constexpr int kIterations = 50;
    std::vector<double> keep_us;
    std::vector<UniqueFd> kept;
    for (int i = 0; i < kIterations; ++i) {
        const auto t0 = Clock::now();
        kept.push_back(create_netns_with_loopback());
        keep_us.push_back(micros(Clock::now() - t0));
    }
    print_stats("create_netns_with_loopback (all kept open)", keep_us);

    // Closing 50 at once queues their teardown in the kernel (cleanup_net);
    // creation right after competes with it.
    const auto c0 = Clock::now();
    kept.clear();
    std::printf("[ timing   ] close 50 namespace fds: %.0f us\n", micros(Clock::now() - c0));
    std::vector<double> after_close_us;
    for (int i = 0; i < 10; ++i) {
        const auto t0 = Clock::now();
        UniqueFd ns = create_netns_with_loopback();
        after_close_us.push_back(micros(Clock::now() - t0));
        kept.push_back(std::move(ns));
    }
    print_stats("create right after closing 50", after_close_us);
    kept.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));

    std::vector<double> churn_us;
    for (int i = 0; i < kIterations; ++i) {
        const auto t0 = Clock::now();
        UniqueFd ns = create_netns_with_loopback();
        churn_us.push_back(micros(Clock::now() - t0));
    }
    print_stats("create_netns_with_loopback (each closed)", churn_us);

    std::vector<double> bare_us;
    for (int i = 0; i < kIterations; ++i) {
        UniqueFd ns;
        const auto t0 = Clock::now();
        std::thread([&] {
            check(unshare(CLONE_NEWNET), "unshare");
            ns = UniqueFd(static_cast<int>(check(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), "open")));
        }).join();
        bare_us.push_back(micros(Clock::now() - t0));
    }
    print_stats("thread + unshare only (no loopback)", bare_us);

    std::vector<double> lo_us;
    for (int i = 0; i < kIterations; ++i) {
        in_new_netns([&] {
            const auto t0 = Clock::now();
            bring_up_loopback();
            lo_us.push_back(micros(Clock::now() - t0));
        });
    }
    print_stats("bring_up_loopback alone", lo_us);
}

TEST_F(NetnsTest, TimingWarmTake) {
    constexpr int kIterations = 50;
    constexpr size_t kTarget = 4;
    NetnsPool pool(kTarget);
    std::vector<double> take_us;
    for (int i = 0; i < kIterations; ++i) {
        ASSERT_TRUE(wait_until([&] { return pool.ready() == kTarget; }, std::chrono::seconds(10)));
        const auto t0 = Clock::now();
        UniqueFd ns = pool.take();
        take_us.push_back(micros(Clock::now() - t0));
    }
    print_stats("NetnsPool::take with a warm pool", take_us);
}

}  // namespace
}  // namespace hermetic::sandbox
