// decide(): the compiled filters' verdict, computed from the policy and the
// register values alone (a differential test checks it against a classic
// BPF interpreter running the compiled filters, for every syscall number:
// tests/unit/policy_compile_test.cpp).
#include <array>
#include <span>

#include "syscall-policy/expand.hpp"
#include "syscall-policy/policy.hpp"
#include "syscall-policy/syscall_names.hpp"

namespace hermetic::policy {

namespace {

// Numbers libseccomp 2.5.4 knows end below 460; anything above has no name there,
// so the filters treat it like any unlisted number.
constexpr int kMaxNr = 1024;
constexpr uint32_t kX32Bit = 0x40000000;

// Syscall names by number, scanned once per process from libseccomp.
const std::vector<std::string>& names_by_number(Arch arch) {
    static const auto scan = [](Arch a) {
        std::vector<std::string> names(kMaxNr);
        for (int nr = 0; nr < kMaxNr; ++nr)
            if (auto n = detail::name_of(a, nr)) names[nr] = *n;
        return names;
    };
    static const std::vector<std::string> x86_64 = scan(Arch::X86_64);
    static const std::vector<std::string> i386 = scan(Arch::I386);
    return arch == Arch::X86_64 ? x86_64 : i386;
}

}  // namespace

struct PreparedPolicy::Impl {
    detail::Expanded expanded;
    std::array<std::vector<const detail::SyscallEntry*>, 2> by_nr;  // [arch][nr]
    std::array<const detail::SyscallEntry*, 21> socketcall{};       // [call]
    std::array<const detail::SyscallEntry*, 25> ipc{};               // [call]
    int socketcall_nr = -1, ipc_nr = -1;

    Decision entry_decision(const detail::SyscallEntry* e, Arch arch, const uint64_t args[6], bool multiplexed) const {
        if (!e) return {expanded.default_action, nullptr};
        const detail::CondRule* match = nullptr;
        for (const detail::CondRule& r : e->conditional) {
            // Through socketcall/ipc the arguments are invisible: any conditional
            // rule applies (compile.cpp adds the multiplexer slot with its action).
            if (multiplexed || detail::rule_matches(r, arch, args)) {
                match = &r;
                break;
            }
        }
        return detail::combine(e->table_action, e->table_rule, match);
    }
};

PreparedPolicy::PreparedPolicy(const Policy& policy) : impl_(std::make_unique<Impl>()) {
    impl_->expanded = detail::expand(policy);
    for (Arch arch : {Arch::X86_64, Arch::I386}) {
        const auto& names = names_by_number(arch);
        auto& table = impl_->by_nr[static_cast<size_t>(arch)];
        table.assign(kMaxNr, nullptr);
        for (int nr = 0; nr < kMaxNr; ++nr)
            if (!names[nr].empty()) table[nr] = impl_->expanded.find(names[nr]);
    }
    for (uint32_t call = 1; call < impl_->socketcall.size(); ++call)
        if (auto n = detail::i386_mux_target(detail::Multiplexer::Socketcall, call))
            impl_->socketcall[call] = impl_->expanded.find(*n);
    for (uint32_t call = 1; call < impl_->ipc.size(); ++call)
        if (auto n = detail::i386_mux_target(detail::Multiplexer::Ipc, call)) impl_->ipc[call] = impl_->expanded.find(*n);
    impl_->socketcall_nr = detail::i386_mux_number(detail::Multiplexer::Socketcall);
    impl_->ipc_nr = detail::i386_mux_number(detail::Multiplexer::Ipc);
}

PreparedPolicy::~PreparedPolicy() = default;
PreparedPolicy::PreparedPolicy(PreparedPolicy&&) noexcept = default;
PreparedPolicy& PreparedPolicy::operator=(PreparedPolicy&&) noexcept = default;

Decision PreparedPolicy::decide(Arch arch, int nr, const uint64_t args[6]) const {
    const Impl& im = *impl_;
    if (arch == Arch::X86_64 && static_cast<uint32_t>(nr) >= kX32Bit && nr != -1)
        return {Action::kill(), nullptr};  // x32 ABI: not optional, no rule
    if (arch == Arch::I386 && im.expanded.i386_action) return {*im.expanded.i386_action, nullptr};
    if (arch == Arch::I386 && (nr == im.socketcall_nr || nr == im.ipc_nr)) {
        const uint32_t call = static_cast<uint32_t>(args[0]);
        const auto& slots = nr == im.socketcall_nr ? std::span<const detail::SyscallEntry* const>(im.socketcall)
                                                   : std::span<const detail::SyscallEntry* const>(im.ipc);
        const detail::SyscallEntry* e = call < slots.size() ? slots[call] : nullptr;
        return im.entry_decision(e, arch, args, true);
    }
    if (nr < 0 || nr >= kMaxNr) return {im.expanded.default_action, nullptr};
    return im.entry_decision(im.by_nr[static_cast<size_t>(arch)][nr], arch, args, false);
}

bool PreparedPolicy::depends_on_args(Arch arch, int nr) const {
    const Impl& im = *impl_;
    if (arch == Arch::I386 && im.expanded.i386_action) return false;
    if (arch == Arch::I386 && (nr == im.socketcall_nr || nr == im.ipc_nr)) return true;  // the call is an argument
    if (nr < 0 || nr >= kMaxNr) return false;
    const detail::SyscallEntry* e = im.by_nr[static_cast<size_t>(arch)][nr];
    return e && !e->conditional.empty();
}

Decision decide(const Policy& policy, Arch arch, int syscall_nr, const uint64_t args[6]) {
    return PreparedPolicy(policy).decide(arch, syscall_nr, args);
}

std::optional<int> syscall_number(std::string_view name, Arch arch) {
    if (name.empty()) return std::nullopt;
    int nr = detail::resolve_on(arch, name);
    if (nr >= 0) return nr;
    if (arch == Arch::I386 && detail::i386_mux_slot(name)) {
        // Socket/IPC calls resolve to pseudo numbers on i386; report the direct
        // number where one exists (socket = 359), as the kernel would see it.
        const auto& names = names_by_number(Arch::I386);
        for (int n = 0; n < kMaxNr; ++n)
            if (names[n] == name) return n;
    }
    return std::nullopt;
}

std::string syscall_name(int nr, Arch arch) {
    if (nr < 0 || nr >= kMaxNr) return {};
    return names_by_number(arch)[nr];
}

}  // namespace hermetic::policy
