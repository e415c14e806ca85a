#include "sandbox/etc_files.hpp"

#include "sandbox/job_spec.hpp"

namespace hermetic::sandbox {

std::map<std::string, std::string> generated_etc_files() {
    const std::string host = kHostname;
    return {
        {"passwd",
         "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
         "build:x:1000:1000:build:/build:/bin/sh\n"
         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
        {"group", "root:x:0:\nbuild:x:1000:\nnogroup:x:65534:\n"},
        {"hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t" + host + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
        {"hostname", host + "\n"},
        // A fixed id: the host's would identify the machine a build ran on.
        {"machine-id", "6865726d657469630000000000000001\n"},
    };
}

std::vector<std::string> default_etc_masks() {
    return {"shadow",      "shadow-",         "gshadow",       "gshadow-",     "sudoers",
            "sudoers.d",   "ssh",             "ssl/private",   "hermetic",     "security/opasswd",
            "krb5.keytab", "NetworkManager/system-connections", "wireguard",   "ipsec.secrets",
            "subuid",      "subgid"};
}

}  // namespace hermetic::sandbox
