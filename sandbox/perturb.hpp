// Host conditions a build must not be able to tell apart, changed on purpose
// for `hermeticctl run --verify`'s second build: if its outputs still match the
// first build's, they don't depend on these.
#pragma once

#include <cstdint>

namespace hermetic::sandbox {

// Reverses the on-disk listing order of every directory under `dirfd` (the
// copied source in /build): each entry is renamed away and back, so the file
// system lists them in the opposite order (tmpfs lists by creation or rename,
// newest first). Entry times change (ctime); contents, modes and owners don't.
// Throws SysError.
void reverse_directory_order(int dirfd);

// Pins the calling process (and the build it forks) to the last CPU it may use
// instead of all of them: other CPU numbers, other scheduling.
void pin_to_last_cpu();

}  // namespace hermetic::sandbox
