// Named syscall groups ("@file-system"), in the spirit of systemd's
// SystemCallFilter= sets, kept as plain data so users can list them.
//
// Members are syscall names as libseccomp spells them, or other groups
// ("@time-read" inside "@default"). A member may exist on only one of the two
// ABIs we filter (x86-64 and i386): "chown32" is i386-only, "newfstatat"
// x86-64-only; a rule naming it simply has no effect on the other ABI.
// The i386 multiplexers socketcall and ipc are never members: compile() derives
// them from the socket and SysV IPC calls (see compile.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hermetic::policy {

struct SyscallGroup {
    std::string_view name;         // "@mount"
    std::string_view description;  // one line, for listings
    std::vector<std::string_view> members;  // syscall names and "@groups"
};

// Every group, sorted by name.
const std::vector<SyscallGroup>& syscall_groups();

// nullptr if there is no such group. `name` includes the '@'.
const SyscallGroup* find_syscall_group(std::string_view name);

// The syscall names of a group with nested groups expanded, sorted, unique.
// Throws PolicyError for an unknown group.
std::vector<std::string> expand_syscall_group(std::string_view name);

namespace detail {
// Internal: the expansion as ids into detail::known_names(), computed once per
// process. Throws PolicyError for an unknown group or a member libseccomp
// doesn't know.
const std::vector<int>& group_member_ids(std::string_view name);
}  // namespace detail

}  // namespace hermetic::policy
