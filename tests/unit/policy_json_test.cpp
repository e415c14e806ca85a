// Policies as JSON (what the daemon sends the runner, whose supervisor decides
// with it): every shipped profile, the built-ins and stacked user policies
// round-trip exactly (rules, origins, canonical text, digest) and decide()
// agrees on the result for every syscall number and many argument values;
// malformed JSON is refused. Also: when compile() routes denials to the
// supervisor (exactly when the policy needs one), and what a decision costs.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "syscall-policy/floor.hpp"
#include "syscall-policy/groups.hpp"
#include "syscall-policy/parser.hpp"
#include "syscall-policy/policy_json.hpp"

namespace hermetic::policy {
namespace {

using nlohmann::json;

std::optional<std::string> read_profile(const std::string& name) {
    std::ifstream f(std::string(HERMETIC_SOURCE_DIR) + "/policies/" + name + ".policy");
    if (!f) return std::nullopt;
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

ParseOptions options() {
    ParseOptions o;
    o.loader = read_profile;
    return o;
}

Policy user_on(const std::string& floor, std::string_view text) {
    return stack(load_profile(floor, options()), parse_policy(text, "user.policy", options()));
}

// Every policy a job can run under, and a few built by hand.
std::vector<Policy> policies() {
    std::vector<Policy> out;
    for (const char* name : {"baseline", "determinism", "build", "strict", "trace"})
        out.push_back(load_profile(name, options()));
    out.push_back(user_on("build", "log getpid\n"));
    out.push_back(user_on("build", "deny EACCES connect\nkill ptrace\ndeny EPERM ioctl if arg1 & 0xffffffff == 0x5401\n"));
    out.push_back(user_on("build", "default kill\nallow read write close mmap munmap brk exit_group\nabi i386 kill\n"));
    Policy odd;
    odd.name = "odd";
    odd.default_action = Action::allow();
    odd.i386_action = Action::error(EPERM);
    odd.i386_origin = "odd: i386";
    odd.rules = {
        {"openat", {{.index = 2, .op = CompareOp::MaskedEq, .value = 0x40, .mask = 0x40, .width32 = true}},
         Action::error(EROFS), "odd: 1"},
        {"socket", {{.index = 0, .op = CompareOp::Gt, .value = 63}}, Action::error(EAFNOSUPPORT), "odd: 2"},
        {"mmap", {{.index = 2, .op = CompareOp::Eq, .value = 7}, {.index = 3, .op = CompareOp::Ne, .value = 1}},
         Action::kill(), "odd: 3"},
        {"read", {{.index = 2, .op = CompareOp::Ge, .value = 0xffffffff}}, Action::log(), "odd: 4"},
        {"write", {{.index = 0, .op = CompareOp::Lt, .value = 3}}, Action::virtualize(), "odd: 5"},
        {"close", {{.index = 0, .op = CompareOp::Le, .value = 2}}, Action::error(EBADF), ""},
        {"@mount", {}, Action::error(EPERM), "odd: 7"},
        {"getpid", {}, Action::log(), "odd: 8"},
    };
    out.push_back(odd);
    return out;
}

Policy round_trip(const Policy& p) { return policy_from_json(json::parse(policy_to_json(p).dump())); }

void expect_same(const Policy& a, const Policy& b) {
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.default_action, b.default_action);
    EXPECT_EQ(a.default_origin, b.default_origin);
    EXPECT_EQ(a.i386_action, b.i386_action);
    EXPECT_EQ(a.i386_origin, b.i386_origin);
    ASSERT_EQ(a.rules.size(), b.rules.size());
    for (size_t i = 0; i < a.rules.size(); ++i) {
        EXPECT_EQ(a.rules[i].target, b.rules[i].target) << i;
        EXPECT_EQ(a.rules[i].conditions, b.rules[i].conditions) << i;
        EXPECT_EQ(a.rules[i].action, b.rules[i].action) << i;
        EXPECT_EQ(a.rules[i].origin, b.rules[i].origin) << i;
    }
}

// Argument values worth trying for a policy: its conditions' values and
// masks, their neighbours and high-word variants, and a few generic ones.
std::vector<uint64_t> interesting(const Policy& p) {
    std::set<uint64_t> v = {0, 1, 2, 3, 63, 64, 0xffffffff, uint64_t{1} << 32, ~uint64_t{0}, 0x7ffd00001000};
    for (const Rule& r : p.rules)
        for (const ArgCondition& c : r.conditions)
            for (uint64_t x : {c.value, c.mask, c.value | ~c.mask})
                for (uint64_t y : {x, x + 1, x - 1, x | (uint64_t{1} << 32), x & 0xffffffff}) v.insert(y);
    return {v.begin(), v.end()};
}

TEST(PolicyJson, EveryPolicyRoundTripsExactly) {
    for (const Policy& p : policies()) {
        SCOPED_TRACE(p.name);
        const Policy back = round_trip(p);
        expect_same(p, back);
        EXPECT_EQ(canonical_text(p), canonical_text(back));
        for (bool route : {false, true})
            EXPECT_EQ(canonical_text(p, {.route_denials_to_supervisor = route}),
                      canonical_text(back, {.route_denials_to_supervisor = route}));
        EXPECT_EQ(compile(p).digest, compile(back).digest);
        EXPECT_EQ(policy_to_json(back), policy_to_json(p));  // and again
    }
}

TEST(PolicyJson, DecideAgreesAfterTheRoundTrip) {
    size_t checked = 0;
    std::mt19937_64 rng(20240611);
    for (const Policy& p : policies()) {
        SCOPED_TRACE(p.name);
        const Policy back = round_trip(p);
        const PreparedPolicy a(p), b(back);
        const std::vector<uint64_t> values = interesting(p);
        auto same = [&](Arch arch, int nr, const uint64_t args[6]) {
            const Decision da = a.decide(arch, nr, args), db = b.decide(arch, nr, args);
            ++checked;
            const long ra = da.rule ? da.rule - p.rules.data() : -1, rb = db.rule ? db.rule - back.rules.data() : -1;
            if (da.action == db.action && ra == rb) return true;
            ADD_FAILURE() << (arch == Arch::X86_64 ? "x86_64 " : "i386 ") << nr << " (" << syscall_name(nr, arch)
                          << ") args " << std::hex << args[0] << "," << args[1] << "," << args[2] << "," << args[3]
                          << std::dec << ": rule #" << ra << " vs #" << rb;
            return false;
        };
        for (Arch arch : {Arch::X86_64, Arch::I386}) {
            std::vector<int> numbers;
            for (int nr = -1; nr < 600; ++nr) numbers.push_back(nr);
            for (int nr : {1000, 0x3fffffff, 0x40000000, 0x40000000 | 39}) numbers.push_back(nr);
            for (int nr : numbers) {
                bool ok = true;
                for (unsigned i = 0; i < 6 && ok; ++i) {
                    for (uint64_t x : values) {
                        uint64_t args[6] = {};
                        args[i] = x;
                        if (!(ok = same(arch, nr, args))) break;
                    }
                }
                for (int k = 0; k < 16 && ok; ++k) {
                    uint64_t args[6];
                    for (uint64_t& x : args) x = rng() % 4 == 0 ? rng() : values[rng() % values.size()];
                    ok = same(arch, nr, args);
                }
            }
        }
    }
    std::printf("decide() after the JSON round trip: %zu decisions compared\n", checked);
}

TEST(PolicyJson, MalformedInputIsRefused) {
    const json good = policy_to_json(load_profile("build", options()));
    auto refused = [&](const std::function<void(json&)>& edit, const char* what) {
        json j = good;
        edit(j);
        EXPECT_THROW((void)policy_from_json(j), PolicyError) << what;
    };
    EXPECT_NO_THROW((void)policy_from_json(good));
    refused([](json& j) { j = json::array(); }, "not an object");
    refused([](json& j) { j["format"] = "hermetic-policy/0"; }, "format");
    refused([](json& j) { j.erase("rules"); }, "no rules");
    refused([](json& j) { j["rules"] = json::object(); }, "rules not an array");
    refused([](json& j) { j["default"] = "deny"; }, "default");
    refused([](json& j) { j["default"] = "errno 0"; }, "errno 0");
    refused([](json& j) { j["default"] = "errno 4096"; }, "errno 4096");
    refused([](json& j) { j["default"] = "errno 1x"; }, "errno 1x");
    refused([](json& j) { j["i386"] = 3; }, "i386 not a string");
    refused([](json& j) { j["rules"][0].erase("target"); }, "no target");
    refused([](json& j) { j["rules"][0]["target"] = 7; }, "target not a string");
    refused([](json& j) { j["rules"][0]["action"] = "virtualise"; }, "action");
    auto first_conditional = [](json& j) -> json& {
        for (json& r : j["rules"])
            if (r.contains("if")) return r;
        throw std::runtime_error("no conditional rule in build");
    };
    refused([&](json& j) { first_conditional(j)["if"][0]["arg"] = 6; }, "arg 6");
    refused([&](json& j) { first_conditional(j)["if"][0]["arg"] = -1; }, "arg -1");
    refused([&](json& j) { first_conditional(j)["if"][0]["op"] = "=~"; }, "op");
    refused([&](json& j) { first_conditional(j)["if"][0]["value"] = "0x1"; }, "value as text");
    refused([&](json& j) { first_conditional(j)["if"][0]["value"] = -5; }, "negative value");
    refused([&](json& j) { first_conditional(j)["if"][0]["width32"] = 1; }, "width32 not a boolean");
    refused([&](json& j) { first_conditional(j)["if"] = json::array({1, 2, 3, 4, 5, 6, 7}); }, "seven conditions");
}

// ---- when compile() routes denials to the supervisor --------------------------------

TEST(RouteByDefault, ExactlyWhenThePolicyNeedsTheSupervisor) {
    for (const Policy& p : policies()) {
        SCOPED_TRACE(p.name);
        // needs_supervisor() is what the unrouted filters say...
        bool listener = false;
        for (const Filter& f : compile(p, {.route_denials_to_supervisor = false}).filters)
            listener = listener || f.needs_listener;
        EXPECT_EQ(needs_supervisor(p), listener);
        // ... and the default compile is the routed one exactly then.
        const std::string routed = compile(p, {.route_denials_to_supervisor = true}).digest;
        const std::string kernel = compile(p, {.route_denials_to_supervisor = false}).digest;
        EXPECT_NE(routed, kernel);
        EXPECT_EQ(compile(p).digest, listener ? routed : kernel);
        EXPECT_NE(canonical_text(p).find(listener ? "\nroute_denials_to_supervisor 1\n" : "\nroute_denials_to_supervisor 0\n"),
                  std::string::npos);
    }
    EXPECT_FALSE(needs_supervisor(baseline_policy()));
    EXPECT_TRUE(needs_supervisor(load_profile("build", options())));
    // A log rule a denial or kill shadows notifies nothing.
    Policy p = baseline_policy();
    p.rules.push_back({"mount", {{.index = 0, .op = CompareOp::Eq, .value = 1}}, Action::log(), "x"});
    p.rules.push_back({"ptrace", {}, Action::kill(), "x"});
    p.rules.push_back({"ptrace", {{.index = 0, .op = CompareOp::Eq, .value = 1}}, Action::virtualize(), "x"});
    EXPECT_FALSE(needs_supervisor(p));
    p.rules.push_back({"getpid", {{.index = 0, .op = CompareOp::Eq, .value = 1}}, Action::log(), "x"});
    EXPECT_TRUE(needs_supervisor(p));
}

// ---- cost of one decision -------------------------------------------------------------

// Reported, not asserted (timings on a shared machine are noise): what the
// supervisor pays per notification to ask the policy, on a mix of calls a
// build makes (virtualized, logged, denied, conditional), and the one-off
// costs per job (preparing the policy, the runner's digest check, the JSON).
TEST(DecisionCost, PerNotificationAndPerJob) {
    using Clock = std::chrono::steady_clock;
    const Policy build = user_on("build", "log getpid\n");
    const PreparedPolicy prepared(build);
    struct Call {
        int nr;
        std::array<uint64_t, 6> args;
    };
    auto nr = [](const char* name) { return *syscall_number(name); };
    const std::vector<Call> mix = {
        {nr("clock_gettime"), {1, 0x7ffd00001000}},
        {nr("newfstatat"), {0xffffff9c, 0x7ffd00001000, 0x7ffd00002000, 0}},
        {nr("futex"), {0x7ffd00003000, 9 | 128, 1, 0x7ffd00001000}},
        {nr("getdents64"), {3, 0x7ffd00001000, 32768}},
        {nr("connect"), {3, 0x7ffd00001000, 16}},
        {nr("getpid"), {}},
        {nr("rseq"), {0x7ffd00001000, 32, 0, 0x53053053}},
        {nr("clone3"), {0x7ffd00001000, 88}},
        {nr("socket"), {AF_PACKET, SOCK_RAW, 0}},
        {nr("ioctl"), {1, 0x5412, 0}},
        {nr("clone"), {0x10000000 | 17}},
        {nr("mount"), {0, 0x7ffd00001000, 0, 0x20}},
    };
    uint64_t sink = 0;
    for (int warm = 0; warm < 1000; ++warm)
        for (const Call& c : mix) sink += static_cast<uint64_t>(prepared.decide(Arch::X86_64, c.nr, c.args.data()).action.kind);
    const int rounds = 200000;
    auto t = Clock::now();
    for (int r = 0; r < rounds; ++r)
        for (const Call& c : mix) sink += static_cast<uint64_t>(prepared.decide(Arch::X86_64, c.nr, c.args.data()).action.kind);
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t).count() / (rounds * mix.size());
    std::printf("decide(): %.1f ns per decision (mean over %zu calls x %d; checksum %llu)\n", ns, mix.size(), rounds,
                static_cast<unsigned long long>(sink));
    RecordProperty("decide_ns", std::to_string(ns));

    auto ms = [](Clock::time_point s) { return std::chrono::duration<double, std::milli>(Clock::now() - s).count(); };
    t = Clock::now();
    for (int i = 0; i < 10; ++i) PreparedPolicy again(build);
    const double prepare_ms = ms(t) / 10;
    t = Clock::now();
    for (int i = 0; i < 10; ++i) (void)canonical_text(build, {.route_denials_to_supervisor = true});
    const double canonical_ms = ms(t) / 10;
    t = Clock::now();
    std::string text;
    for (int i = 0; i < 10; ++i) text = policy_to_json(build).dump();
    const double to_json_ms = ms(t) / 10;
    t = Clock::now();
    for (int i = 0; i < 10; ++i) (void)policy_from_json(json::parse(text));
    const double from_json_ms = ms(t) / 10;
    std::printf("per job: PreparedPolicy %.2f ms, canonical text %.2f ms, JSON %zu bytes (%.2f ms out, %.2f ms in)\n",
                prepare_ms, canonical_ms, text.size(), to_json_ms, from_json_ms);
}

}  // namespace
}  // namespace hermetic::policy
