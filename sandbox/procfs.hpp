// A fresh /proc for the job's pid namespace, with /proc/sys and other kernel
// knobs read-only and the files that leak kernel memory or host secrets masked.
#pragma once

namespace hermetic::sandbox {

// Mounts "proc" relative to the current directory. `null_fd`: an O_PATH fd of
// the host's /dev/null, bound over masked files.
void setup_proc(int null_fd);

}  // namespace hermetic::sandbox
