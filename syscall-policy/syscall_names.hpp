// Internal: syscall names and numbers for the two ABIs we filter, always through
// libseccomp's own tables (so what we check is what libseccomp compiles).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "syscall-policy/policy.hpp"

namespace hermetic::policy::detail {

uint32_t scmp_arch(Arch arch);

// libseccomp's number for `name` on `arch`: >= 0 for a real syscall, a negative
// pseudo number when the name exists elsewhere, -1 (__NR_SCMP_ERROR) if unknown.
int resolve_on(Arch arch, std::string_view name);

// On i386, libseccomp 2.5.4 routes socket calls through socketcall(2) and SysV
// IPC calls through ipc(2) (as well as their direct numbers where they exist).
enum class Multiplexer { Socketcall, Ipc };
struct MuxSlot {
    Multiplexer mux;
    uint32_t call;  // the multiplexer's first argument (SYS_SOCKET = 1, SHMGET = 23, ...)
};
std::optional<MuxSlot> i386_mux_slot(std::string_view name);

// The i386 multiplexer syscall numbers (socketcall = 102, ipc = 117).
int i386_mux_number(Multiplexer mux);

// The name a rule may use: known to libseccomp on x86-64 or i386 (including the
// socket calls that exist on i386 only through socketcall, such as "send").
bool is_known_syscall(std::string_view name);

// Names rules may not target: the i386 multiplexers are derived from the calls
// they multiplex, and an unconditional rule on them would shadow those.
bool is_derived_syscall(std::string_view name);

// Every name libseccomp knows on x86-64 or i386 (numbers below 1024, plus the
// socket/IPC calls i386 has only through a multiplexer), sorted by name and
// built once per process: expansion looks names up here instead of asking
// libseccomp again for each rule.
struct NameInfo {
    std::string name;
    int native = -1;  // seccomp_syscall_resolve_name(): what rules are added with
    int i386 = -1;    // number on i386 (negative: pseudo)
    std::optional<MuxSlot> mux;
};
const std::vector<NameInfo>& known_names();
int name_id(std::string_view name);  // index into known_names(), -1 if unknown

// Number -> name on one arch (nullopt if libseccomp has no name for it), and the
// call multiplexed by socketcall/ipc slot `call` on i386.
std::optional<std::string> name_of(Arch arch, int nr);
std::optional<std::string> i386_mux_target(Multiplexer mux, uint32_t call);

}  // namespace hermetic::policy::detail
