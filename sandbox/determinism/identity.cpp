// Randomness (getrandom), host identity (uname, sysinfo, getcpu) and CPU count
// (sched_getaffinity): fixed or seeded answers.
#include <sys/sysinfo.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include <seccomp.h>

#include <algorithm>
#include <cstring>

#include "common/sha256.hpp"
#include "sandbox/determinism/engine.hpp"

namespace hermetic::sandbox::determinism {

namespace {

constexpr unsigned kGrndNonblock = 1, kGrndRandom = 2, kGrndInsecure = 4;
constexpr size_t kMaxGetrandom = 32 << 20;

void copy_field(char* dst, const std::string& s) {
    std::memset(dst, 0, 65);
    std::memcpy(dst, s.data(), std::min<size_t>(s.size(), 64));
}

}  // namespace

Reply Engine::random_call(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const auto* a = n.data.args;
    unsigned flags = static_cast<unsigned>(a[2]);
    if (flags & ~(kGrndNonblock | kGrndRandom | kGrndInsecure)) return error(EINVAL);
    if ((flags & kGrndInsecure) && (flags & kGrndRandom)) return error(EINVAL);
    size_t len = std::min<size_t>(static_cast<size_t>(a[1]), kMaxGetrandom);
    if (!t.getrandom_stream) t.getrandom_stream = std::make_unique<Prng>(key_, "getrandom/" + t.id);
    std::vector<uint8_t> buf(std::min<size_t>(len, 1 << 16));
    size_t done = 0;
    std::string head;
    while (done < len) {
        size_t chunk = std::min(buf.size(), len - done);
        t.getrandom_stream->fill(buf.data(), chunk);
        if (done == 0) head = to_hex(buf.data(), std::min<size_t>(chunk, 16));
        if (!write_mem(p, a[0] + done, buf.data(), chunk)) {
            if (done == 0) return error(EFAULT);
            break;  // like the kernel: a partial count
        }
        done += chunk;
    }
    return value(static_cast<int64_t>(done), std::to_string(done) + " bytes " + head);
}

Reply Engine::identity_call(Task& t, const seccomp_notif& n) {
    Process& p = *t.proc;
    const auto* a = n.data.args;
    switch (n.data.nr) {
        case SYS_uname: {
            struct utsname u{};
            copy_field(u.sysname, cfg_.uname_sysname);
            copy_field(u.nodename, cfg_.uname_nodename);
            copy_field(u.release, cfg_.uname_release);
            copy_field(u.version, cfg_.uname_version);
            copy_field(u.machine, cfg_.uname_machine);
            copy_field(u.domainname, cfg_.uname_domainname);
            if (!write_mem(p, a[0], &u, sizeof u)) return error(EFAULT);
            Reply r = value(0, cfg_.uname_release + " " + cfg_.uname_machine);
            if (cfg_.trace) {
                struct utsname real{};
                ::uname(&real);
                r.real = std::string(real.release) + " " + real.version;
            }
            return r;
        }
        case SYS_sysinfo: {
            struct sysinfo si{};
            si.uptime = mono_ns(t) / 1'000'000'000;
            si.totalram = cfg_.memory_bytes;
            si.freeram = cfg_.memory_bytes / 2;
            si.procs = 1;
            si.mem_unit = 1;
            if (!write_mem(p, a[0], &si, sizeof si)) return error(EFAULT);
            return value(0, "uptime " + std::to_string(si.uptime));
        }
        case SYS_getcpu: {
            unsigned zero = 0;
            if (a[0] && !write_mem(p, a[0], &zero, sizeof zero)) return error(EFAULT);
            if (a[1] && !write_mem(p, a[1], &zero, sizeof zero)) return error(EFAULT);
            return value(0, "cpu 0 node 0");
        }
        case SYS_sched_getaffinity: case SYS_sched_setaffinity: {
            pid_t pid = static_cast<pid_t>(a[0]);
            Task* target = &t;
            if (pid != 0) {
                resolve_vpid(t);
                target = pid == t.vtid ? &t : task_by_vpid(pid);
                if (!target) return error(ESRCH);
            }
            const uint32_t cpus = std::max<uint32_t>(1, cfg_.cpus);
            const size_t mask_bytes = ((cpus + 63) / 64) * 8;  // the kernel's cpumask_size()
            const uint64_t all = cpus >= 64 ? ~uint64_t{0} : (uint64_t{1} << cpus) - 1;
            size_t len = static_cast<size_t>(a[1]);
            if (n.data.nr == SYS_sched_getaffinity) {
                if (len * 8 < cpus || (len & 7)) return error(EINVAL);
                std::vector<uint8_t> mask(std::min(len, mask_bytes), 0);
                for (uint32_t c = 0; c < cpus; ++c)
                    if (c >= 64 || !target->affinity || (target->affinity & (uint64_t{1} << c)))
                        mask[c / 8] |= static_cast<uint8_t>(1u << (c % 8));
                if (!write_mem(p, a[2], mask.data(), mask.size())) return error(EFAULT);
                return value(static_cast<int64_t>(mask.size()), std::to_string(cpus) + " cpus");
            }
            // setaffinity: remembered (and inherited) but without effect on the real
            // CPUs; a mask naming none of the virtual CPUs is refused like the kernel does.
            std::vector<uint8_t> mask(std::min<size_t>(len, 128), 0);
            if (!mask.empty() && !read_mem(p, a[2], mask.data(), mask.size())) return error(EFAULT);
            if (seccomp_notify_id_valid(listener_.get(), n.id) != 0) {
                Reply gone;
                gone.kind = Reply::Deferred;
                return gone;
            }
            uint64_t m = 0;
            std::memcpy(&m, mask.data(), std::min<size_t>(mask.size(), 8));
            m &= all;
            if (m == 0 && cpus <= 64) return error(EINVAL);
            target->affinity = m == all ? 0 : m;
            return value(0, "mask " + std::to_string(m));
        }
    }
    return error(ENOSYS);
}

}  // namespace hermetic::sandbox::determinism
