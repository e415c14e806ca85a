#include "sandbox/perturb.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>  // renameat2
#include <string>
#include <vector>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::sandbox {

namespace {

constexpr const char* kTemp = ".hermetic-perturb";
constexpr int kMaxDepth = 256;

// The directory's entries in the order the file system lists them, and which
// of them are directories.
std::vector<std::string> listing(int dirfd, std::vector<std::string>* dirs) {
    std::vector<std::string> names;
    for (auto& e : list_directory(dirfd, "(perturb)")) {
        if (dirs && e.type == DT_DIR) dirs->push_back(e.name);
        names.push_back(std::move(e.name));
    }
    return names;
}

// A name for the entry in transit that is none of the directory's own: renaming
// onto an existing entry would replace (delete) it.
std::string temp_name(const std::vector<std::string>& names) {
    std::string t = kTemp;
    while (std::find(names.begin(), names.end(), t) != names.end()) t += '_';
    return t;
}

void rename_in_order(int dirfd, const std::vector<std::string>& names) {
    const std::string temp = temp_name(names);
    for (const auto& n : names) {
        // RENAME_NOREPLACE: should the temporary name exist after all, fail rather
        // than lose what is there.
        if (::renameat2(dirfd, n.c_str(), dirfd, temp.c_str(), RENAME_NOREPLACE) != 0)
            throw_errno("perturb: rename " + n);
        if (::renameat2(dirfd, temp.c_str(), dirfd, n.c_str(), RENAME_NOREPLACE) != 0)
            throw_errno("perturb: rename back " + n);
    }
}

void reverse_in(int dirfd, int depth) {
    if (depth > kMaxDepth) return;  // the copy's own limits keep trees shallower
    std::vector<std::string> dirs;
    const std::vector<std::string> before = listing(dirfd, &dirs);
    // A renamed entry lists as the newest: first or last, depending on the file
    // system (tmpfs lists newest first). One pass in listing order reverses a
    // newest-first listing; if it didn't, the other way round does.
    rename_in_order(dirfd, before);
    if (before.size() > 1 && listing(dirfd, nullptr) == before)
        rename_in_order(dirfd, std::vector<std::string>(before.rbegin(), before.rend()));
    for (const auto& n : dirs) {
        UniqueFd sub(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) throw_errno("perturb: open " + n);
        reverse_in(sub.get(), depth + 1);
    }
}

}  // namespace

void reverse_directory_order(int dirfd) { reverse_in(dirfd, 0); }

void pin_to_last_cpu() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) throw_errno("perturb: sched_getaffinity");
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) last = c;
    if (last < 0) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0) throw_errno("perturb: sched_setaffinity");
}

}  // namespace hermetic::sandbox
