#include "audit/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace hermetic::audit {

void fsync_path(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) throw_errno("open " + path);
    if (::fsync(fd.get()) != 0) throw_errno("fsync " + path);
}

void write_file_atomic(const std::string& dir, const std::string& name, std::string_view content, mode_t mode) {
    static std::atomic<unsigned> counter{0};
    const std::string path = dir + "/" + name;
    const std::string tmp = dir + "/." + name + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) throw_errno("create " + tmp);
    try {
        // The umask must not widen or narrow what the caller asked for.
        if (::fchmod(fd.get(), mode) != 0) throw_errno("chmod " + tmp);
        write_all(fd.get(), content);
        if (::fsync(fd.get()) != 0) throw_errno("fsync " + tmp);
        fd.reset();
        if (::rename(tmp.c_str(), path.c_str()) != 0) throw_errno("rename " + tmp + " to " + path);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    fsync_path(dir);
}

void write_files_durably(const std::string& dir, const std::vector<NewFile>& files, std::span<const int> also_sync) {
    static std::atomic<unsigned> counter{0};
    std::vector<std::string> tmps;
    std::vector<UniqueFd> fds;
    auto cleanup = [&] {
        for (const auto& t : tmps) ::unlink(t.c_str());
    };
    try {
        for (const auto& f : files) {
            tmps.push_back(dir + "/." + f.name + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++));
            UniqueFd fd(::open(tmps.back().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, f.mode));
            if (!fd) throw_errno("create " + tmps.back());
            if (::fchmod(fd.get(), f.mode) != 0) throw_errno("chmod " + tmps.back());
            write_all(fd.get(), f.content);
            fds.push_back(std::move(fd));
        }
        std::vector<int> all(also_sync.begin(), also_sync.end());
        for (const auto& fd : fds) all.push_back(fd.get());
        // One thread per extra descriptor; the last fsync runs here.
        std::vector<int> errs(all.size(), 0);
        std::vector<std::thread> threads;
        for (size_t i = 0; i + 1 < all.size(); ++i)
            threads.emplace_back([&, i] { errs[i] = ::fsync(all[i]) == 0 ? 0 : errno; });
        if (!all.empty()) errs.back() = ::fsync(all.back()) == 0 ? 0 : errno;
        for (auto& t : threads) t.join();
        for (int e : errs)
            if (e) throw_errno("fsync in " + dir, e);
        fds.clear();
        for (size_t i = 0; i < files.size(); ++i) {
            std::string path = dir + "/" + files[i].name;
            if (::rename(tmps[i].c_str(), path.c_str()) != 0) throw_errno("rename " + tmps[i] + " to " + path);
        }
        tmps.clear();
    } catch (...) {
        cleanup();
        throw;
    }
    fsync_path(dir);
}

std::optional<std::string> read_file_if_exists(const std::string& path, size_t max) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (!fd) {
        if (errno == ENOENT) return std::nullopt;
        throw_errno("open " + path);
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) throw_errno("stat " + path);
    if (!S_ISREG(st.st_mode)) throw SysError(path + " is not a regular file", EINVAL);
    try {
        return read_to_end(fd.get(), max);
    } catch (const SysError& e) {
        throw SysError("read " + path, e.code());
    }
}

}  // namespace hermetic::audit
