#include "daemon/runner_registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/io.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::daemon {

namespace {

constexpr auto kDeathWait = std::chrono::seconds(10);

// /proc/PID/stat fields after the command (which may hold spaces and parens).
std::optional<std::vector<std::string>> stat_fields(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!f || !std::getline(f, line)) return std::nullopt;
    auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream rest(line.substr(close + 1));
    std::vector<std::string> fields;  // fields[0] is field 3 (state)
    for (std::string w; rest >> w;) fields.push_back(w);
    if (fields.size() < 20) return std::nullopt;
    return fields;
}

bool is_runner_binary(pid_t pid) {
    char buf[4096];
    ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf - 1);
    if (n <= 0) return false;
    std::string exe(buf, static_cast<size_t>(n));
    if (exe.ends_with(" (deleted)")) exe.resize(exe.size() - 10);  // upgraded since
    return exe.ends_with("/hermetic-runner");
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int fd, int sig) { return static_cast<int>(::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0)); }

// A process to end: pinned by a pidfd once it is identified, so that the kill and
// the wait can't hit a recycled pid.
struct Doomed {
    pid_t pid;
    UniqueFd fd;
};

std::optional<Doomed> pin(pid_t pid, std::optional<uint64_t> start) {
    UniqueFd fd(pidfd_open(pid));
    if (!fd) return std::nullopt;
    // Identified after pinning: if it is still the same process now, the pidfd is its.
    if (start && process_start_time(pid) != start) return std::nullopt;
    return Doomed{pid, std::move(fd)};
}

void kill_and_wait(std::vector<Doomed>& doomed) {
    for (auto& d : doomed) (void)pidfd_send_signal(d.fd.get(), SIGKILL);
    auto deadline = std::chrono::steady_clock::now() + kDeathWait;
    for (auto& d : doomed) {
        pollfd p{d.fd.get(), POLLIN, 0};
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
            if (rc > 0) break;
            if (rc < 0 && errno == EINTR) continue;
            spdlog::error("leftover runner process {} did not die after SIGKILL", d.pid);
            break;
        }
    }
}

}  // namespace

std::optional<uint64_t> process_start_time(pid_t pid) {
    auto f = stat_fields(pid);
    if (!f) return std::nullopt;
    try {
        return std::stoull((*f)[19]);  // field 22
    } catch (...) {
        return std::nullopt;
    }
}

RunnerRecord RunnerRecord::create(const std::string& dir, const std::string& sandbox_id, pid_t pid) {
    RunnerRecord r;
    auto start = process_start_time(pid);
    std::string path = dir + "/" + sandbox_id;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) {
        spdlog::warn("runner record {}: {}", path, std::strerror(errno));
        return r;
    }
    try {
        write_all(fd.get(), std::to_string(pid) + " " + std::to_string(start.value_or(0)) + "\n");
    } catch (const std::exception& e) {
        spdlog::warn("runner record {}: {}", path, e.what());
    }
    r.path_ = std::move(path);
    return r;
}

RunnerRecord::RunnerRecord(RunnerRecord&& o) noexcept : path_(std::exchange(o.path_, {})) {}

RunnerRecord& RunnerRecord::operator=(RunnerRecord&& o) noexcept {
    if (this != &o) {
        if (!path_.empty()) ::unlink(path_.c_str());
        path_ = std::exchange(o.path_, {});
    }
    return *this;
}

RunnerRecord::~RunnerRecord() {
    if (!path_.empty()) ::unlink(path_.c_str());
}

size_t kill_recorded_runners(const std::string& dir) {
    std::vector<std::pair<std::string, std::pair<pid_t, uint64_t>>> records;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            std::ifstream f(dir + "/" + e->d_name);
            long long pid = 0;
            unsigned long long start = 0;
            if (f >> pid >> start && pid > 1) records.push_back({e->d_name, {static_cast<pid_t>(pid), start}});
            else records.push_back({e->d_name, {0, 0}});
        }
        ::closedir(d);
    }
    size_t alive = 0;
    for (const auto& [name, rec] : records) {
        auto [pid, start] = rec;
        std::vector<Doomed> doomed;
        if (pid > 0) {
            auto now = process_start_time(pid);
            if (auto d = pin(pid, start)) {
                doomed.push_back(std::move(*d));
                ++alive;
            }
            // The runner's helpers, supervisor and sandbox init share its process
            // group (it leads one) and its binary; they outlive it by moments only
            // (PR_SET_PDEATHSIG), but "moments" is after a fast restart. The kernel
            // doesn't hand out a pid while a process group of that number exists,
            // so unless the pid now belongs to another process, its group is ours.
            bool recycled = now && *now != start;
            if (DIR* p = recycled ? nullptr : ::opendir("/proc")) {
                while (dirent* e = ::readdir(p)) {
                    char* end = nullptr;
                    long q = std::strtol(e->d_name, &end, 10);
                    if (*end != '\0' || q <= 0 || q == pid) continue;
                    auto f = stat_fields(static_cast<pid_t>(q));
                    if (!f || (*f)[2] != std::to_string(pid) || (*f)[0] == "Z") continue;  // field 5: pgrp
                    if (!is_runner_binary(static_cast<pid_t>(q))) continue;
                    if (auto d = pin(static_cast<pid_t>(q), process_start_time(static_cast<pid_t>(q))))
                        doomed.push_back(std::move(*d));
                }
                ::closedir(p);
            }
        }
        if (!doomed.empty()) {
            spdlog::warn("sandbox {}: killing {} process(es) left by the previous daemon (runner pid {})", name,
                         doomed.size(), pid);
            kill_and_wait(doomed);
        }
        ::unlink((dir + "/" + name).c_str());
    }
    return alive;
}

}  // namespace hermetic::daemon
