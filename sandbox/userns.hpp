// User-namespace id maps. The build runs as inner 1000 mapped to a host uid that
// is distinct for every concurrent job; inner 0 (used only for setup) maps to a
// second distinct host uid. Nothing else is mapped, so host root shows as nobody.
#pragma once

#include <sys/types.h>

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

// Writes uid_map, setgroups=deny and gid_map of `pid` (a child in a new user
// namespace, still waiting for us). Throws SysError.
void write_id_maps(pid_t pid, const IdRange& ids);

}  // namespace hermetic::sandbox
