#include "sandbox/loopback.hpp"

// <net/if.h> before the linux headers: it owns IFF_UP and friends.
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/sys_error.hpp"

namespace hermetic::sandbox {
namespace {

// lo is the first device registered in every network namespace.
constexpr unsigned kLoopbackIfindex = 1;

// A kernel that never answers must not hang sandbox creation.
constexpr time_t kReplyTimeoutSec = 2;

// MNL_SOCKET_BUFFER_SIZE is min(page size, 8 KiB), i.e. 4 KiB here, while an
// RTM_NEWLINK reply carries per-family attributes whose size depends on the
// kernel. A reply larger than the buffer is MSG_TRUNC (ENOSPC from libmnl), so
// receive into a generously sized buffer; requests use MNL_SOCKET_BUFFER_SIZE.
constexpr size_t kReceiveBufferSize = 32 * 1024;

struct MnlSocketCloser {
    void operator()(mnl_socket* nl) const noexcept { mnl_socket_close(nl); }
};

// What one request got back: the kernel's nlmsgerr and any data messages.
struct Exchange {
    bool acked = false;     // an NLMSG_ERROR (error 0 = ACK) ended the reply
    int error = 0;          // positive errno from struct nlmsgerr, 0 on success
    std::string ext_ack;    // NLMSGERR_ATTR_MSG, if the kernel explained itself
    std::function<int(const nlmsghdr*)> on_data;
};

int on_ext_ack_attr(const nlattr* attr, void* data) {
    auto* ex = static_cast<Exchange*>(data);
    if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG) {
        if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0) return MNL_CB_ERROR;
        ex->ext_ack = mnl_attr_get_str(attr);
    }
    return MNL_CB_OK;
}

// Reads struct nlmsgerr ourselves rather than through libmnl's default handler:
// that one reports the kernel's errno through errno, indistinguishable from
// libmnl's own ESRCH/EPROTO for a portid/sequence mismatch.
int on_nlmsg_error(const nlmsghdr* nlh, void* data) {
    auto* ex = static_cast<Exchange*>(data);
    const size_t payload_len = mnl_nlmsg_get_payload_len(nlh);
    if (payload_len < sizeof(nlmsgerr)) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
    }
    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
    // The kernel sends a negative errno; 0 is the ACK.
    ex->error = err->error < 0 ? -err->error : err->error;
    ex->acked = true;
    if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
        // Extended-ack TLVs follow the echoed request; NETLINK_CAP_ACK trims that
        // to its header (NLM_F_CAPPED), otherwise the whole request is echoed.
        size_t offset = sizeof(nlmsgerr);
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
            if (err->msg.nlmsg_len < sizeof(nlmsghdr)) {
                errno = EBADMSG;
                return MNL_CB_ERROR;
            }
            offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
        }
        if (offset > payload_len) {
            errno = EBADMSG;
            return MNL_CB_ERROR;
        }
        if (mnl_attr_parse(nlh, static_cast<unsigned>(offset), on_ext_ack_attr, ex) ==
            MNL_CB_ERROR)
            return MNL_CB_ERROR;
    }
    return MNL_CB_STOP;
}

int on_nlmsg_noop(const nlmsghdr*, void*) { return MNL_CB_OK; }

// Nothing here dumps, so NLMSG_DONE means the stream is not what we asked for.
int on_nlmsg_done(const nlmsghdr*, void*) {
    errno = EPROTO;
    return MNL_CB_ERROR;
}

int on_nlmsg_overrun(const nlmsghdr*, void*) {
    errno = ENOBUFS;
    return MNL_CB_ERROR;
}

int on_data_message(const nlmsghdr* nlh, void* data) {
    auto* ex = static_cast<Exchange*>(data);
    // A request without a data handler expects nothing but its ACK.
    if (!ex->on_data) {
        errno = EPROTO;
        return MNL_CB_ERROR;
    }
    return ex->on_data(nlh);
}

// An rtnetlink socket in the calling thread's network namespace.
class RtnlSocket {
public:
    RtnlSocket()
        : nl_(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC)),
          tx_(static_cast<size_t>(MNL_SOCKET_BUFFER_SIZE)),
          rx_(kReceiveBufferSize) {
        if (!nl_) throw_errno("loopback: netlink socket");
        if (mnl_socket_bind(nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0)
            throw_errno("loopback: netlink bind");
        portid_ = mnl_socket_get_portid(nl_.get());
        const timeval tv{.tv_sec = kReplyTimeoutSec, .tv_usec = 0};
        check(setsockopt(mnl_socket_get_fd(nl_.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv),
              "loopback: netlink SO_RCVTIMEO");
        // The kernel's explanation goes into the error; the request need not be echoed.
        int one = 1;  // libmnl's setsockopt takes a non-const pointer
        check(mnl_socket_setsockopt(nl_.get(), NETLINK_EXT_ACK, &one, sizeof one),
              "loopback: netlink NETLINK_EXT_ACK");
        check(mnl_socket_setsockopt(nl_.get(), NETLINK_CAP_ACK, &one, sizeof one),
              "loopback: netlink NETLINK_CAP_ACK");
    }

    // A zeroed request header in the send buffer, with its family header appended.
    template <typename FamilyHeader>
    std::pair<nlmsghdr*, FamilyHeader*> start(uint16_t type, uint16_t flags) {
        nlmsghdr* nlh = mnl_nlmsg_put_header(tx_.data());
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = flags;
        nlh->nlmsg_seq = ++seq_;
        auto* fam = static_cast<FamilyHeader*>(mnl_nlmsg_put_extra_header(nlh, sizeof(FamilyHeader)));
        return {nlh, fam};
    }

    // Sends nlh (which must ask for an ACK) and reads until the kernel's
    // NLMSG_ERROR. Returns the kernel's verdict; transport failures throw.
    Exchange transact(const nlmsghdr* nlh, std::string_view step,
                      std::function<int(const nlmsghdr*)> on_data = {}) {
        const std::string what(step);
        if (mnl_socket_sendto(nl_.get(), nlh, nlh->nlmsg_len) != static_cast<ssize_t>(nlh->nlmsg_len))
            throw_errno(what + ": send");

        Exchange ex;
        ex.on_data = std::move(on_data);
        mnl_cb_t ctl[NLMSG_MIN_TYPE] = {};
        ctl[NLMSG_NOOP] = on_nlmsg_noop;
        ctl[NLMSG_ERROR] = on_nlmsg_error;
        ctl[NLMSG_DONE] = on_nlmsg_done;
        ctl[NLMSG_OVERRUN] = on_nlmsg_overrun;
        while (!ex.acked) {
            const ssize_t n = mnl_socket_recvfrom(nl_.get(), rx_.data(), rx_.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    throw SysError(what + ": no reply from the kernel", ETIMEDOUT);
                throw_errno(what + ": receive");
            }
            const int rc = mnl_cb_run2(rx_.data(), static_cast<size_t>(n), nlh->nlmsg_seq, portid_,
                                       on_data_message, &ex, ctl, NLMSG_MIN_TYPE);
            if (rc == MNL_CB_ERROR) throw_errno(what + ": unexpected reply");
        }
        return ex;
    }

private:
    std::unique_ptr<mnl_socket, MnlSocketCloser> nl_;
    unsigned portid_ = 0;
    // Pre-incremented: libmnl skips the sequence check for 0.
    unsigned seq_ = 0;
    std::vector<char> tx_;
    std::vector<char> rx_;
};

[[noreturn]] void throw_kernel_error(std::string_view step, const Exchange& ex) {
    std::string what(step);
    if (!ex.ext_ack.empty()) what += " (" + ex.ext_ack + ")";
    throw SysError(what, ex.error);
}

void add_ipv4_loopback(RtnlSocket& rtnl) {
    constexpr std::string_view step = "loopback: RTM_NEWADDR 127.0.0.1";
    auto [nlh, ifa] = rtnl.start<ifaddrmsg>(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = 8;
    ifa->ifa_flags = IFA_F_PERMANENT;
    ifa->ifa_scope = RT_SCOPE_HOST;
    ifa->ifa_index = kLoopbackIfindex;
    const in_addr addr{.s_addr = htonl(INADDR_LOOPBACK)};
    mnl_attr_put(nlh, IFA_LOCAL, sizeof addr, &addr);
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof addr, &addr);
    const Exchange ex = rtnl.transact(nlh, step);
    // EEXIST: the kernel added it when lo came up.
    if (ex.error != 0 && ex.error != EEXIST) throw_kernel_error(step, ex);
}

// Returns false if this namespace has no IPv6 (see the decision below).
bool add_ipv6_loopback(RtnlSocket& rtnl) {
    constexpr std::string_view step = "loopback: RTM_NEWADDR ::1";
    auto [nlh, ifa] = rtnl.start<ifaddrmsg>(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK);
    ifa->ifa_family = AF_INET6;
    ifa->ifa_prefixlen = 128;
    ifa->ifa_flags = IFA_F_PERMANENT;
    ifa->ifa_scope = RT_SCOPE_HOST;
    ifa->ifa_index = kLoopbackIfindex;
    mnl_attr_put(nlh, IFA_LOCAL, sizeof in6addr_loopback, &in6addr_loopback);
    // IFA_F_NOPREFIXROUTE does not fit the 8-bit ifa_flags; when IFA_FLAGS is
    // present the kernel reads all flags from it. The local route for ::1 exists
    // regardless; the prefix route would only duplicate it.
    mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_PERMANENT | IFA_F_NOPREFIXROUTE);
    const Exchange ex = rtnl.transact(nlh, step);
    if (ex.error == 0 || ex.error == EEXIST) return true;
    // Decision: a host without IPv6 gives sandboxes no ::1 rather than no
    // sandboxes. Only the two answers that mean exactly that are tolerated:
    //  - EOPNOTSUPP: no AF_INET6 rtnetlink handler (CONFIG_IPV6=n, ipv6.disable=1);
    //  - EACCES: disable_ipv6=1 on lo (inherited via net.core.devconf_inherit_init_net).
    // Anything else (EAFNOSUPPORT, EADDRNOTAVAIL, ...) is not how the kernel says
    // "IPv6 is off" for this request, so it stays fatal.
    if (ex.error == EOPNOTSUPP || ex.error == EACCES) return false;
    throw_kernel_error(step, ex);
}

void set_loopback_up(RtnlSocket& rtnl) {
    constexpr std::string_view step = "loopback: RTM_NEWLINK lo up";
    auto [nlh, ifi] = rtnl.start<ifinfomsg>(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = kLoopbackIfindex;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    const Exchange ex = rtnl.transact(nlh, step);
    if (ex.error != 0) throw_kernel_error(step, ex);
}

void verify_loopback_up(RtnlSocket& rtnl) {
    constexpr std::string_view step = "loopback: RTM_GETLINK lo";
    // NLM_F_ACK on a non-dump GET: the kernel sends the RTM_NEWLINK, then the ACK.
    auto [nlh, ifi] = rtnl.start<ifinfomsg>(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = kLoopbackIfindex;
    // Only the flags matter; skipping statistics keeps the reply small.
    mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);

    int replies = 0;
    unsigned flags = 0;
    const Exchange ex = rtnl.transact(nlh, step, [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(reply) < sizeof(ifinfomsg)) {
            errno = EBADMSG;
            return MNL_CB_ERROR;
        }
        const auto* info = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(reply));
        if (info->ifi_index != static_cast<int>(kLoopbackIfindex)) {
            errno = EBADMSG;
            return MNL_CB_ERROR;
        }
        ++replies;
        flags = info->ifi_flags;
        return MNL_CB_OK;
    });
    if (ex.error != 0) throw_kernel_error(step, ex);
    if (replies != 1) throw SysError(std::string(step) + ": expected one RTM_NEWLINK", EPROTO);
    if (!(flags & IFF_LOOPBACK))
        throw SysError(std::string(step) + ": ifindex 1 is not the loopback device", ENODEV);
    if (!(flags & IFF_UP)) throw SysError(std::string(step) + ": IFF_UP not set", ENETDOWN);
}

int on_ifa_flags_attr(const nlattr* attr, void* data) {
    if (mnl_attr_get_type(attr) == IFA_FLAGS) {
        if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_ERROR;
        *static_cast<uint32_t*>(data) = mnl_attr_get_u32(attr);
    }
    return MNL_CB_OK;
}

// An ACKed ::1 is not necessarily usable: until DAD has finished with it, it is
// tentative, cannot be bound and has no route. Fail loudly rather than hand out
// a namespace whose ::1 works a moment later.
void verify_ipv6_loopback_usable(RtnlSocket& rtnl) {
    constexpr std::string_view step = "loopback: RTM_GETADDR ::1";
    auto [nlh, ifa] = rtnl.start<ifaddrmsg>(RTM_GETADDR, NLM_F_REQUEST | NLM_F_ACK);
    ifa->ifa_family = AF_INET6;
    ifa->ifa_index = kLoopbackIfindex;
    mnl_attr_put(nlh, IFA_ADDRESS, sizeof in6addr_loopback, &in6addr_loopback);

    int replies = 0;
    uint32_t flags = 0;
    const Exchange ex = rtnl.transact(nlh, step, [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(reply) < sizeof(ifaddrmsg)) {
            errno = EBADMSG;
            return MNL_CB_ERROR;
        }
        const auto* info = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(reply));
        // ifa_flags holds the low 8 bits; IFA_FLAGS, when present, all of them.
        flags = info->ifa_flags;
        if (mnl_attr_parse(reply, sizeof(ifaddrmsg), on_ifa_flags_attr, &flags) == MNL_CB_ERROR) {
            errno = EBADMSG;
            return MNL_CB_ERROR;
        }
        ++replies;
        return MNL_CB_OK;
    });
    if (ex.error != 0) throw_kernel_error(step, ex);
    if (replies != 1) throw SysError(std::string(step) + ": expected one RTM_NEWADDR", EPROTO);
    if (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED))
        throw SysError(std::string(step) + ": ::1 is still tentative", EADDRNOTAVAIL);
}

}  // namespace

void bring_up_loopback() {
    RtnlSocket rtnl;
    // Up first, addresses second. Bringing lo up makes the kernel add 127.0.0.1/8
    // and ::1/128 (host route only, no prefix route) synchronously, inside the
    // RTM_NEWLINK. An ::1 we add while lo is down is instead finished by
    // asynchronous DAD work: measured here, ~5% of namespaces still had ::1
    // tentative (bind EADDRNOTAVAIL) or unrouted (connect ENETUNREACH) after every
    // ACK; IFA_F_NODAD only trades the first for the second. Our RTM_NEWADDRs then
    // answer EEXIST, and remain so that a kernel that does not add them still gets them.
    set_loopback_up(rtnl);
    add_ipv4_loopback(rtnl);
    const bool have_ipv6 = add_ipv6_loopback(rtnl);
    verify_loopback_up(rtnl);
    if (have_ipv6) verify_ipv6_loopback_usable(rtnl);
}

}  // namespace hermetic::sandbox
