#include "common/fd_passing.hpp"

#include <sys/socket.h>

#include <cstring>

#include "common/sys_error.hpp"

namespace hermetic {

void send_with_fds(int sock, std::string_view data, std::span<const int> fds) {
    if (fds.size() > kMaxPassedFds) throw std::invalid_argument("too many fds to pass");
    size_t sent = 0;
    bool fds_pending = !fds.empty();
    while (sent < data.size() || fds_pending) {
        iovec iov{const_cast<char*>(data.data()) + sent, data.size() - sent};
        char dummy = 0;
        if (iov.iov_len == 0) {  // fds need at least one byte to ride on
            iov = {&dummy, 1};
        }
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
        if (fds_pending) {
            std::memset(control, 0, sizeof control);
            msg.msg_control = control;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
            cmsghdr* cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
        }
        ssize_t n = retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); });
        if (n < 0) throw_errno("sendmsg");
        fds_pending = false;
        if (iov.iov_base == &dummy) break;
        sent += static_cast<size_t>(n);
    }
}

size_t recv_with_fds(int sock, char* buf, size_t max, std::vector<UniqueFd>& fds) {
    iovec iov{buf, max};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
    if (n < 0) throw_errno("recvmsg");
    bool bad = (msg.msg_flags & MSG_CTRUNC) != 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            fds.emplace_back(fd);  // owned now, closed if we reject below
        }
    }
    if (bad || fds.size() > kMaxPassedFds) {
        fds.clear();
        throw SysError("recvmsg: too many or truncated fds", EMSGSIZE);
    }
    return static_cast<size_t>(n);
}

}  // namespace hermetic
