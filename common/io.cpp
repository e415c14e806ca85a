#include "common/io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "common/sys_error.hpp"

namespace hermetic {

void write_all(int fd, const void* data, size_t len) {
    auto p = static_cast<const char*>(data);
    while (len > 0) {
        ssize_t n = retry_eintr([&] { return ::write(fd, p, len); });
        if (n < 0) throw_errno("write");
        p += n;
        len -= static_cast<size_t>(n);
    }
}

bool read_exact(int fd, void* data, size_t len) {
    auto p = static_cast<char*>(data);
    size_t got = 0;
    while (got < len) {
        ssize_t n = retry_eintr([&] { return ::read(fd, p + got, len - got); });
        if (n < 0) throw_errno("read");
        if (n == 0) {
            if (got == 0) return false;
            throw SysError("read: unexpected end of stream", EPIPE);
        }
        got += static_cast<size_t>(n);
    }
    return true;
}

std::string read_to_end(int fd, size_t max) {
    std::string out;
    char buf[8192];
    for (;;) {
        ssize_t n = retry_eintr([&] { return ::read(fd, buf, sizeof buf); });
        if (n < 0) throw_errno("read");
        if (n == 0) return out;
        if (out.size() + static_cast<size_t>(n) > max) throw SysError("read: too large", EFBIG);
        out.append(buf, static_cast<size_t>(n));
    }
}

std::string read_file_at(int dirfd, const char* path, size_t max) {
    UniqueFd fd(retry_eintr([&] { return ::openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY); }));
    if (!fd) throw_errno(std::string("open ") + path);
    return read_to_end(fd.get(), max);
}

void write_file_at(int dirfd, const char* path, std::string_view content) {
    UniqueFd fd(retry_eintr([&] { return ::openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_TRUNC); }));
    if (!fd) throw_errno(std::string("open ") + path);
    ssize_t n = retry_eintr([&] { return ::write(fd.get(), content.data(), content.size()); });
    if (n < 0) throw_errno(std::string("write ") + path);
    if (static_cast<size_t>(n) != content.size()) throw SysError(std::string("short write ") + path, EIO);
}

bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
        pollfd p{fd, POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(ms, 60'000)));
        if (rc < 0) {
            if (errno == EINTR) continue;
            throw_errno("poll");
        }
        if (rc > 0) return true;
    }
}

FdPair make_pipe(int flags) {
    int p[2];
    check(::pipe2(p, flags | O_CLOEXEC), "pipe2");
    return {UniqueFd(p[0]), UniqueFd(p[1])};
}

UniqueFd open_dir(const char* path, int extra_flags) {
    UniqueFd fd(retry_eintr([&] { return ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | extra_flags); }));
    if (!fd) throw_errno(std::string("open ") + path);
    return fd;
}

void set_nonblocking(int fd, bool on) {
    int fl = static_cast<int>(check(::fcntl(fd, F_GETFL), "fcntl(F_GETFL)"));
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    check(::fcntl(fd, F_SETFL, fl), "fcntl(F_SETFL)");
}

std::vector<DirEntry> list_directory(int dirfd, std::string_view what, size_t max_entries) {
    // A descriptor of our own: fdopendir takes it over, and the offset of
    // dirfd (shared with its duplicates) stays where it was.
    UniqueFd own(retry_eintr([&] { return ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
    if (!own) throw_errno("open directory " + std::string(what));
    DIR* d = ::fdopendir(own.get());
    if (!d) throw_errno("open directory " + std::string(what));
    (void)own.release();  // the DIR* owns it now
    std::vector<DirEntry> out;
    int err = 0;
    while (out.size() < max_entries) {
        errno = 0;
        dirent* e = ::readdir(d);
        if (!e) {
            err = errno;
            break;
        }
        if (std::string_view n = e->d_name; n == "." || n == "..") continue;
        out.push_back({e->d_name, e->d_type});
    }
    ::closedir(d);
    if (err != 0) throw SysError("read directory " + std::string(what), err);
    return out;
}

bool directory_is_empty(int dirfd, std::string_view what) { return list_directory(dirfd, what, 1).empty(); }

}  // namespace hermetic
