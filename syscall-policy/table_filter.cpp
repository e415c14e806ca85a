#include "syscall-policy/table_filter.hpp"

#include <linux/audit.h>
#include <linux/seccomp.h>

#include <array>
#include <cstddef>

#include "syscall-policy/policy.hpp"
#include "syscall-policy/syscall_names.hpp"

namespace hermetic::policy::detail {

namespace {

// libseccomp 2.5.4 names nothing at or above this on x86-64 or i386.
constexpr uint32_t kMaxNr = 1024;
constexpr uint32_t kX32Bit = 0x40000000;
constexpr uint32_t kOffNr = offsetof(seccomp_data, nr);
constexpr uint32_t kOffArch = offsetof(seccomp_data, arch);
constexpr uint32_t kOffArg0Low = offsetof(seccomp_data, args);  // little endian: low word first

// Names by number (and by multiplexer slot), looked up in libseccomp once per process.
// Names are ids into known_names(), -1 for none.
struct Numbering {
    std::array<std::vector<int>, 2> by_nr;  // [arch][nr]
    std::vector<int> socketcall, ipc;       // [call]
    uint32_t socketcall_nr = 0, ipc_nr = 0;
};

const Numbering& numbering() {
    static const Numbering n = [] {
        Numbering out;
        for (Arch arch : {Arch::X86_64, Arch::I386}) {
            auto& names = out.by_nr[static_cast<size_t>(arch)];
            names.assign(kMaxNr, -1);
            for (uint32_t nr = 0; nr < kMaxNr; ++nr)
                if (auto name = name_of(arch, static_cast<int>(nr))) names[nr] = name_id(*name);
        }
        auto slots = [](Multiplexer mux, uint32_t last) {
            std::vector<int> v(last + 1, -1);
            for (uint32_t call = 1; call <= last; ++call)
                if (auto name = i386_mux_target(mux, call)) v[call] = name_id(*name);
            return v;
        };
        out.socketcall = slots(Multiplexer::Socketcall, 20);
        out.ipc = slots(Multiplexer::Ipc, 24);
        out.socketcall_nr = static_cast<uint32_t>(i386_mux_number(Multiplexer::Socketcall));
        out.ipc_nr = static_cast<uint32_t>(i386_mux_number(Multiplexer::Ipc));
        return out;
    }();
    return n;
}

using Code = std::vector<sock_filter>;

sock_filter stmt(uint16_t code, uint32_t k) { return sock_filter{code, 0, 0, k}; }
sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { return sock_filter{code, jt, jf, k}; }

// What a range of numbers (or of multiplexer calls) leads to: a verdict, or the
// dispatch on a multiplexer's first argument.
struct Leaf {
    uint32_t ret = 0;
    const std::vector<int>* mux = nullptr;  // slot -> name id
    bool operator==(const Leaf&) const = default;
};

// Values from `lo` up to the next range's `lo` - 1 (the last one up to 2^32 - 1).
struct Range {
    uint32_t lo;
    Leaf leaf;
};

void push(std::vector<Range>& ranges, uint32_t lo, Leaf leaf) {
    if (!ranges.empty() && ranges.back().leaf == leaf) return;  // extends the previous run
    ranges.push_back({lo, leaf});
}

void append(Code& out, const Code& more) { out.insert(out.end(), more.begin(), more.end()); }

class Generator {
public:
    explicit Generator(const TableSpec& spec) : spec_(spec), by_id_(known_names().size(), spec.default_ret) {
        for (const auto& [name, ret] : spec.by_name)
            if (int id = name_id(name); id >= 0) by_id_[static_cast<size_t>(id)] = ret;
    }

    uint32_t ret_of(int id) const { return id < 0 ? spec_.default_ret : by_id_[static_cast<size_t>(id)]; }

    // Binary search over ranges [a, b) of the value in the accumulator.
    Code tree(const std::vector<Range>& r, size_t a, size_t b) const {
        if (b - a == 1) return leaf(r[a].leaf);
        const size_t mid = a + (b - a) / 2;
        const Code left = tree(r, a, mid), right = tree(r, mid, b);
        Code out;
        if (left.size() <= 255) {
            out.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, r[mid].lo, static_cast<uint8_t>(left.size()), 0));
        } else {
            // Conditional jumps reach 255 instructions; a JA reaches anywhere.
            out.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, r[mid].lo, 0, 1));
            out.push_back(stmt(BPF_JMP | BPF_JA, static_cast<uint32_t>(left.size())));
        }
        append(out, left);
        append(out, right);
        return out;
    }

    Code leaf(const Leaf& l) const {
        if (!l.mux) return {stmt(BPF_RET | BPF_K, l.ret)};
        // The multiplexed call number is socketcall's/ipc's first argument; on
        // i386 only its low 32 bits exist.
        std::vector<Range> calls;
        for (uint32_t call = 0; call < l.mux->size(); ++call) push(calls, call, {ret_of((*l.mux)[call]), nullptr});
        push(calls, static_cast<uint32_t>(l.mux->size()), {spec_.default_ret, nullptr});
        Code out{stmt(BPF_LD | BPF_W | BPF_ABS, kOffArg0Low)};
        append(out, tree(calls, 0, calls.size()));
        return out;
    }

    Code arch_block(Arch arch) const {
        if (arch == Arch::I386 && spec_.i386_ret) return {stmt(BPF_RET | BPF_K, *spec_.i386_ret)};
        const Numbering& n = numbering();
        const auto& names = n.by_nr[static_cast<size_t>(arch)];
        std::vector<Range> ranges;
        for (uint32_t nr = 0; nr < kMaxNr; ++nr) {
            Leaf l{ret_of(names[nr]), nullptr};
            if (arch == Arch::I386 && (nr == n.socketcall_nr || nr == n.ipc_nr)) {
                const auto& slots = nr == n.socketcall_nr ? n.socketcall : n.ipc;
                bool any = false;
                for (int id : slots) any = any || ret_of(id) != spec_.default_ret;
                if (any) l = {0, &slots};
            }
            push(ranges, nr, l);
        }
        push(ranges, kMaxNr, {spec_.default_ret, nullptr});
        if (arch == Arch::X86_64) {
            push(ranges, kX32Bit, {SECCOMP_RET_KILL_PROCESS, nullptr});
            push(ranges, 0xffffffffu, {spec_.default_ret, nullptr});
        }
        Code out{stmt(BPF_LD | BPF_W | BPF_ABS, kOffNr)};
        append(out, tree(ranges, 0, ranges.size()));
        return out;
    }

private:
    const TableSpec& spec_;
    std::vector<uint32_t> by_id_;  // verdict by detail::name_id()
};

}  // namespace

std::vector<sock_filter> join_arches(const std::vector<sock_filter>& x86_64,
                                     const std::optional<std::vector<sock_filter>>& i386, uint32_t i386_absent_ret) {
    // x86-64 falls through to its block; everything else jumps past it.
    Code out{stmt(BPF_LD | BPF_W | BPF_ABS, kOffArch),
             jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
             stmt(BPF_JMP | BPF_JA, static_cast<uint32_t>(x86_64.size()))};
    append(out, x86_64);
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 1, 0));
    out.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    if (i386)
        append(out, *i386);
    else
        out.push_back(stmt(BPF_RET | BPF_K, i386_absent_ret));
    if (out.size() > BPF_MAXINSNS)
        throw PolicyError("a filter needs " + std::to_string(out.size()) + " BPF instructions (max " +
                          std::to_string(BPF_MAXINSNS) + ")");
    return out;
}

std::vector<sock_filter> table_filter(const TableSpec& spec) {
    const Generator g(spec);
    // The i386 block is one return when i386_ret is set.
    return join_arches(g.arch_block(Arch::X86_64), g.arch_block(Arch::I386), 0);
}

}  // namespace hermetic::policy::detail
