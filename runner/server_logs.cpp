#include "runner/server_logs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "audit/verify.hpp"
#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::runner {

namespace {

std::string read_evidence(const std::string& path) {
    UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!f) throw_errno("read " + path);
    return read_to_end(f.get(), 64u << 20);
}

}  // namespace

void write_server_logs(const BuildDirectory& build, const std::string& logs_rel, const std::string& job_id,
                       const std::string& job_dir) {
    UniqueFd dir = build.open_dir(logs_rel);
    build.write_new_file(dir.get(), kJobIdLog, job_id + "\n");
    build.write_new_file(dir.get(), kSummaryLog, read_evidence(job_dir + "/" + audit::kSummaryFile));
    build.write_new_file(dir.get(), kAttestationLog, read_evidence(job_dir + "/" + audit::kAttestationFile));
}

}  // namespace hermetic::runner
