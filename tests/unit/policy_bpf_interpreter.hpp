// A classic-BPF interpreter with the kernel's rules for stacked seccomp filters,
// for the policy tests (compile, floor, profiles) and bench/policy_eval.
#pragma once

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "syscall-policy/policy.hpp"

namespace hermetic::policy::testing {

// `steps_out`, if given, gets the number of instructions executed (the path length).
inline uint32_t run_bpf(const std::vector<sock_filter>& prog, const seccomp_data& data, size_t* steps_out = nullptr) {
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
    const auto* bytes = reinterpret_cast<const uint8_t*>(&data);
    size_t pc = 0;
    // seccomp programs only jump forward, so each instruction runs at most once.
    for (size_t steps = 0; steps <= prog.size(); ++steps) {
        if (pc >= prog.size()) throw std::runtime_error("BPF: fell off the end");
        if (steps_out) *steps_out = steps + 1;
        const sock_filter f = prog[pc++];
        const uint32_t src = BPF_SRC(f.code) == BPF_X ? x : f.k;
        switch (BPF_CLASS(f.code)) {
            case BPF_LD:
                switch (BPF_MODE(f.code)) {
                    case BPF_ABS:
                        if (BPF_SIZE(f.code) != BPF_W || f.k % 4 != 0 || f.k + 4 > sizeof data)
                            throw std::runtime_error("BPF: bad load");
                        std::memcpy(&a, bytes + f.k, 4);
                        break;
                    case BPF_IMM: a = f.k; break;
                    case BPF_MEM: a = mem[f.k % BPF_MEMWORDS]; break;
                    case BPF_LEN: a = sizeof data; break;
                    default: throw std::runtime_error("BPF: bad ld mode");
                }
                break;
            case BPF_LDX:
                switch (BPF_MODE(f.code)) {
                    case BPF_IMM: x = f.k; break;
                    case BPF_MEM: x = mem[f.k % BPF_MEMWORDS]; break;
                    case BPF_LEN: x = sizeof data; break;
                    default: throw std::runtime_error("BPF: bad ldx mode");
                }
                break;
            case BPF_ST: mem[f.k % BPF_MEMWORDS] = a; break;
            case BPF_STX: mem[f.k % BPF_MEMWORDS] = x; break;
            case BPF_ALU:
                switch (BPF_OP(f.code)) {
                    case BPF_ADD: a += src; break;
                    case BPF_SUB: a -= src; break;
                    case BPF_MUL: a *= src; break;
                    case BPF_DIV: a = src ? a / src : 0; break;
                    case BPF_MOD: a = src ? a % src : 0; break;
                    case BPF_OR: a |= src; break;
                    case BPF_AND: a &= src; break;
                    case BPF_XOR: a ^= src; break;
                    case BPF_LSH: a = src < 32 ? a << src : 0; break;
                    case BPF_RSH: a = src < 32 ? a >> src : 0; break;
                    case BPF_NEG: a = -a; break;
                    default: throw std::runtime_error("BPF: bad alu op");
                }
                break;
            case BPF_JMP: {
                bool taken;
                switch (BPF_OP(f.code)) {
                    case BPF_JA: pc += f.k; continue;
                    case BPF_JEQ: taken = a == src; break;
                    case BPF_JGT: taken = a > src; break;
                    case BPF_JGE: taken = a >= src; break;
                    case BPF_JSET: taken = (a & src) != 0; break;
                    default: throw std::runtime_error("BPF: bad jmp op");
                }
                pc += taken ? f.jt : f.jf;
                break;
            }
            case BPF_RET: return BPF_RVAL(f.code) == BPF_A ? a : f.k;
            case BPF_MISC:
                if (BPF_MISCOP(f.code) == BPF_TAX)
                    x = a;
                else
                    a = x;
                break;
            default: throw std::runtime_error("BPF: bad class");
        }
    }
    throw std::runtime_error("BPF: loop");
}

// The kernel runs every filter (newest first) and keeps the most restrictive
// action; on a tie the newest filter's value stays (kernel/seccomp.c).
inline uint32_t run_stack(const CompiledPolicy& cp, const seccomp_data& data) {
    uint32_t ret = SECCOMP_RET_ALLOW;
    for (auto it = cp.filters.rbegin(); it != cp.filters.rend(); ++it) {
        uint32_t cur = run_bpf(it->program, data);
        if (static_cast<int32_t>(cur & SECCOMP_RET_ACTION_FULL) < static_cast<int32_t>(ret & SECCOMP_RET_ACTION_FULL))
            ret = cur;
    }
    return ret;
}

constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kKill = SECCOMP_RET_KILL_PROCESS;
constexpr uint32_t kNotify = SECCOMP_RET_USER_NOTIF;
constexpr uint32_t err(int e) { return SECCOMP_RET_ERRNO | static_cast<uint32_t>(e); }

inline uint32_t audit_arch(Arch arch) { return arch == Arch::X86_64 ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_I386; }

inline uint32_t run_nr(const CompiledPolicy& cp, uint32_t arch, int nr, std::initializer_list<uint64_t> args = {}) {
    seccomp_data d{};
    d.nr = nr;
    d.arch = arch;
    size_t i = 0;
    for (uint64_t a : args) d.args[i++] = a;
    return run_stack(cp, d);
}

inline uint32_t run(const CompiledPolicy& cp, Arch arch, const char* name, std::initializer_list<uint64_t> args = {}) {
    auto nr = syscall_number(name, arch);
    if (!nr) throw std::runtime_error(std::string("no number for ") + name);
    return run_nr(cp, audit_arch(arch), *nr, args);
}

inline std::string show(uint32_t v) {
    switch (v & SECCOMP_RET_ACTION_FULL) {
        case SECCOMP_RET_ALLOW: return "ALLOW";
        case SECCOMP_RET_KILL_PROCESS: return "KILL_PROCESS";
        case SECCOMP_RET_USER_NOTIF: return "USER_NOTIF";
        case SECCOMP_RET_ERRNO: return "ERRNO(" + std::to_string(v & SECCOMP_RET_DATA) + ")";
        default: return "0x" + std::to_string(v);
    }
}

#define EXPECT_VERDICT(expected, actual) EXPECT_EQ(::hermetic::policy::testing::show(expected), ::hermetic::policy::testing::show(actual))

}  // namespace hermetic::policy::testing
