#include "ctl/source_digest.hpp"

#include <cstdint>
#include <utility>

#include "audit/identity.hpp"
#include "common/sys_error.hpp"
#include "ctl/client.hpp"

namespace hermetic::ctl {

std::string source_tree_digest(int dirfd, const std::optional<protocol::FileId>& exclude) {
    audit::TreeWalk walk;
    walk.context = "source: ";
    if (exclude) walk.exclude = std::pair<uint64_t, uint64_t>{exclude->dev, exclude->ino};
    try {
        return audit::directory_tree_digest(dirfd, walk);
    } catch (const SysError& e) {
        throw CtlError(e.what());
    }
}

}  // namespace hermetic::ctl
