#include "syscall-policy/syscall_names.hpp"

#include <seccomp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace hermetic::policy::detail {

namespace {

// libseccomp's pseudo numbers for multiplexed i386 calls: __PNR_socket = -101 ..
// __PNR_sendmmsg = -120, __PNR_semop = -201 .. __PNR_shmctl = -224; the
// multiplexer's call number is the distance from -100 / -200 (arch-x86.c).
constexpr int kSocketPnrFirst = -120, kSocketPnrLast = -101;
constexpr int kIpcPnrFirst = -224, kIpcPnrLast = -201;

std::string resolve_num(uint32_t arch, int nr) {
    std::unique_ptr<char, decltype(&std::free)> name(seccomp_syscall_resolve_num_arch(arch, nr), &std::free);
    return name ? std::string(name.get()) : std::string();
}

}  // namespace

uint32_t scmp_arch(Arch arch) { return arch == Arch::X86_64 ? SCMP_ARCH_X86_64 : SCMP_ARCH_X86; }

int resolve_on(Arch arch, std::string_view name) {
    std::string n(name);  // libseccomp wants a C string
    return seccomp_syscall_resolve_name_arch(scmp_arch(arch), n.c_str());
}

std::optional<MuxSlot> i386_mux_slot(std::string_view name) {
    int pnr = resolve_on(Arch::I386, name);
    if (pnr >= kSocketPnrFirst && pnr <= kSocketPnrLast)
        return MuxSlot{Multiplexer::Socketcall, static_cast<uint32_t>(-pnr - 100)};
    if (pnr >= kIpcPnrFirst && pnr <= kIpcPnrLast)
        return MuxSlot{Multiplexer::Ipc, static_cast<uint32_t>(-pnr - 200)};
    return std::nullopt;
}

int i386_mux_number(Multiplexer mux) {
    static const int socketcall = resolve_on(Arch::I386, "socketcall");
    static const int ipc = resolve_on(Arch::I386, "ipc");
    return mux == Multiplexer::Socketcall ? socketcall : ipc;
}

const std::vector<NameInfo>& known_names() {
    static const std::vector<NameInfo> table = [] {
        std::vector<std::string> names;
        for (uint32_t arch : {uint32_t{SCMP_ARCH_X86_64}, uint32_t{SCMP_ARCH_X86}})
            for (int nr = 0; nr < 1024; ++nr)
                if (std::string n = resolve_num(arch, nr); !n.empty()) names.push_back(std::move(n));
        for (int pnr = kSocketPnrFirst; pnr <= kSocketPnrLast; ++pnr)
            if (std::string n = resolve_num(SCMP_ARCH_X86, pnr); !n.empty()) names.push_back(std::move(n));
        for (int pnr = kIpcPnrFirst; pnr <= kIpcPnrLast; ++pnr)
            if (std::string n = resolve_num(SCMP_ARCH_X86, pnr); !n.empty()) names.push_back(std::move(n));
        std::sort(names.begin(), names.end());
        names.erase(std::unique(names.begin(), names.end()), names.end());
        std::vector<NameInfo> out;
        for (std::string& n : names) {
            NameInfo info;
            info.native = seccomp_syscall_resolve_name(n.c_str());
            info.i386 = resolve_on(Arch::I386, n);
            info.mux = i386_mux_slot(n);
            info.name = std::move(n);
            out.push_back(std::move(info));
        }
        return out;
    }();
    return table;
}

int name_id(std::string_view name) {
    const auto& names = known_names();
    auto it = std::lower_bound(names.begin(), names.end(), name,
                               [](const NameInfo& i, std::string_view n) { return i.name < n; });
    return it != names.end() && it->name == name ? static_cast<int>(it - names.begin()) : -1;
}

bool is_known_syscall(std::string_view name) { return name_id(name) >= 0; }

bool is_derived_syscall(std::string_view name) { return name == "socketcall" || name == "ipc"; }

std::optional<std::string> name_of(Arch arch, int nr) {
    if (nr < 0) return std::nullopt;  // pseudo numbers are never emitted as syscall checks
    std::string name = resolve_num(scmp_arch(arch), nr);
    if (name.empty()) return std::nullopt;
    return name;
}

std::optional<std::string> i386_mux_target(Multiplexer mux, uint32_t call) {
    const uint32_t last = mux == Multiplexer::Socketcall ? 20 : 24;
    if (call < 1 || call > last) return std::nullopt;
    int pnr = (mux == Multiplexer::Socketcall ? -100 : -200) - static_cast<int>(call);
    std::string name = resolve_num(SCMP_ARCH_X86, pnr);
    if (name.empty()) return std::nullopt;
    // Only calls libseccomp itself would route through this slot.
    auto slot = i386_mux_slot(name);
    if (!slot || slot->mux != mux || slot->call != call) return std::nullopt;
    return name;
}

}  // namespace hermetic::policy::detail
