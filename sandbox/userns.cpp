#include "sandbox/userns.hpp"

#include <fcntl.h>

#include <string>

#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::sandbox {

void write_id_maps(pid_t pid, const IdRange& ids) {
    std::string dir = "/proc/" + std::to_string(pid);
    UniqueFd proc(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!proc) throw_errno("open " + dir);
    const std::string map = "0 " + std::to_string(ids.root_host_id) + " 1\n" + std::to_string(kBuildUid) + " " +
                            std::to_string(ids.build_host_id) + " 1\n";
    try {
        write_file_at(proc.get(), "uid_map", map);
        // deny: a build must not drop supplementary groups to get around a
        // group-deny permission (and it has none: the runner cleared them).
        write_file_at(proc.get(), "setgroups", "deny");
        write_file_at(proc.get(), "gid_map", map);
    } catch (const SysError& e) {
        throw SysError(std::string("user namespace id map (") + e.what() + ")", e.code());
    }
}

}  // namespace hermetic::sandbox
