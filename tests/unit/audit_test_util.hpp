// Helpers shared by the audit library's unit tests: an in-memory log file and a
// fake supervisor's events (not the kernel: just the records it would produce).
#pragma once

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "audit/chain.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::audit::testing {

struct MemFile {
    UniqueFd fd{::memfd_create("audit-test", MFD_CLOEXEC)};
    std::string contents() const {
        struct stat st{};
        if (::fstat(fd.get(), &st) != 0) throw_errno("fstat");
        std::string s(static_cast<size_t>(st.st_size), '\0');
        if (::pread(fd.get(), s.data(), s.size(), 0) != static_cast<ssize_t>(s.size())) throw_errno("pread");
        return s;
    }
};

inline Event clock_read(int64_t t, int64_t vpid = 2, const std::string& real = "") {
    Event e;
    e.vtime_ns = t;
    e.pid = 40000 + vpid;
    e.vpid = vpid;
    e.exe = "/usr/bin/date";
    e.syscall_nr = 228;
    e.syscall = "clock_gettime";
    e.args = "CLOCK_REALTIME";
    e.action = Action::Virtualized;
    e.cls = "time";
    e.value = "315532800." + std::to_string(t);
    if (!real.empty()) e.real_value = real;
    return e;
}

inline Event random_read(int64_t t, int64_t vpid = 2) {
    Event e = clock_read(t, vpid);
    e.syscall_nr = 318;
    e.syscall = "getrandom";
    e.args = "16, 0";
    e.cls = "random";
    e.value = "8f1c0e6a9b7d44e1a0b3c2d1e0f9a8b7";
    return e;
}

inline Event dir_read(int64_t t, int64_t vpid = 2) {
    Event e = clock_read(t, vpid);
    e.exe = "/usr/bin/ls";
    e.syscall_nr = 217;
    e.syscall = "getdents64";
    e.args = "fd 3 (/build/src)";
    e.action = Action::Reordered;
    e.cls = "fs-order";
    e.value = "a.c b.c main.c";
    return e;
}

inline Event socket_try(int64_t t, int64_t vpid = 2) {
    Event e = clock_read(t, vpid);
    e.exe = "/usr/bin/curl";
    e.syscall_nr = 41;
    e.syscall = "socket";
    e.args = "AF_INET, SOCK_STREAM, 0";
    e.action = Action::Denied;
    e.cls = "network";
    e.value = "-EACCES";
    return e;
}

// A finished log of the four kinds above.
inline std::string small_log(const std::string& job = "job-1", bool trace = false, ChainResult* result = nullptr,
                             Tally* tally = nullptr) {
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{job, kDefaultMaxLogBytes, trace});
    w.append(clock_read(100, 2, trace ? "1712345678.5" : ""));
    w.append(clock_read(200, 2, trace ? "1712345678.6" : ""));
    w.append(random_read(300));
    w.append(dir_read(400, 3));
    w.append(socket_try(500, 4));
    ChainResult r = w.finish();
    if (result) *result = r;
    if (tally) *tally = w.tally();
    return f.contents();
}

}  // namespace hermetic::audit::testing
