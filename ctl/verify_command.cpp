// hermeticctl run --verify: is this build reproducible, and if not, why?
//
// Two builds of the same request, the second under different host conditions
// (the daemon's "perturb": the source copied in reverse order so directory
// order on disk differs, the build pinned to other CPUs, another sandbox slot so
// other host uids, and a later real time). Both record real values (--trace),
// so where the outputs differ the audit diff can say which syscall saw what.
// The first build's outputs go to --out; the second's to a scratch directory
// kept only when they differ (for diffoscope or the user).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "common/sys_error.hpp"
#include "ctl/audit_command.hpp"
#include "ctl/client.hpp"
#include "ctl/run_command.hpp"

namespace hermetic::ctl {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int kDiffer = 104;  // as Nix's --check: both builds ran, outputs differ

// A scratch directory beside `near` (same file system as the user's --out) or
// under $TMPDIR. Created by the user, so the daemon's writer (running as the
// user) can fill it.
std::string scratch_dir(const std::optional<std::string>& near) {
    std::string base;
    if (near) {
        fs::path p = fs::absolute(*near).lexically_normal();
        base = p.has_parent_path() ? p.parent_path().string() : ".";
    } else {
        const char* t = std::getenv("TMPDIR");
        base = t && *t ? t : "/tmp";
    }
    std::string tmpl = base + "/.hermetic-verify-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw CtlError("--verify: cannot create a scratch directory in " + base + ": " +
                                                errno_string(errno));
    return tmpl;
}

struct Entry {
    std::string type;
    uint32_t mode = 0;
    std::string digest;  // sha256 (file), target (symlink), "" (dir)
};

std::map<std::string, Entry> entries_of(const json& result) {
    std::map<std::string, Entry> m;
    for (const auto& o : result.value("outputs", json::array())) {
        Entry e;
        e.type = o.value("type", "");
        e.mode = o.value("mode", 0u);
        if (o.contains("target") && o["target"].is_string()) e.digest = o["target"].get<std::string>();
        else if (o.contains("sha256") && o["sha256"].is_string()) e.digest = o["sha256"].get<std::string>();
        m[o.value("path", "")] = e;
    }
    return m;
}

struct FileDifference {
    std::string path;
    std::string what;  // one line
};

std::vector<FileDifference> compare_outputs(const json& a, const json& b) {
    std::vector<FileDifference> out;
    auto ea = entries_of(a), eb = entries_of(b);
    for (const auto& [path, x] : ea) {
        auto it = eb.find(path);
        if (it == eb.end()) {
            out.push_back({path, "only in the first build"});
            continue;
        }
        const Entry& y = it->second;
        if (x.type != y.type) out.push_back({path, "type " + x.type + " vs " + y.type});
        else if (x.digest != y.digest)
            out.push_back({path, x.type == "symlink" ? "target " + x.digest + " vs " + y.digest
                                                     : "content sha256 " + x.digest.substr(0, 16) + "... vs " +
                                                           y.digest.substr(0, 16) + "..."});
        else if (x.mode != y.mode) {
            std::ostringstream s;
            s << "mode " << std::oct << x.mode << " vs " << y.mode;
            out.push_back({path, s.str()});
        }
    }
    for (const auto& [path, y] : eb)
        if (!ea.count(path)) out.push_back({path, "only in the second build"});
    return out;
}

bool have_diffoscope() {
    const char* path = std::getenv("PATH");
    std::stringstream ss(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(ss, dir, ':'))
        if (!dir.empty() && ::access((dir + "/diffoscope").c_str(), X_OK) == 0) return true;
    return false;
}

// diffoscope's text report for one file, first `max_lines` lines.
std::string diffoscope_summary(const std::string& a, const std::string& b, size_t max_lines) {
    std::string cmd = "diffoscope --no-progress --text - --max-report-size 200000 -- '" + a + "' '" + b + "' 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return "(diffoscope could not start)\n";
    std::string out, line;
    char buf[4096];
    size_t lines = 0;
    while (fgets(buf, sizeof buf, p)) {
        if (lines++ < max_lines) out += buf;
    }
    ::pclose(p);
    if (lines > max_lines) out += "    ... (" + std::to_string(lines - max_lines) + " more lines)\n";
    return out;
}

// Single quotes are the only character a path can't carry through popen here.
bool shell_safe(const std::string& s) { return s.find('\'') == std::string::npos; }

}  // namespace

int verify_command(const RunOptions& opts) {
    RunOptions first = opts;
    first.request.trace = true;  // real values: what the plain build would have seen
    RunOptions second = first;
    if (second.request.key) *second.request.key += "/verify";  // a different request: its own key

    std::cerr << "hermetic: --verify: first build\n";
    RunOnce a = run_once(first, opts.out, RunOnce::Stream::Live);
    if (a.status != 0) {
        std::cerr << "hermetic: --verify: the first build did not succeed (exit " << a.status
                  << "); nothing to compare\n";
        return a.status;
    }
    std::string scratch = scratch_dir(opts.out);
    std::string out_b = scratch + "/out";
    std::cerr << "hermetic: --verify: second build (perturbed: reversed source order, other CPUs, another sandbox)\n";
    RunOnce b = run_once(second, out_b, RunOnce::Stream::Quiet, /*perturb=*/1);
    if (b.status != 0) {
        std::error_code ec;
        fs::remove_all(scratch, ec);
        std::cerr << "hermetic: --verify: the second build did not succeed (exit " << b.status
                  << ") although the first did: the build itself is not deterministic\n";
        return b.status == 130 ? 130 : 125;
    }
    const std::string job_a = a.result.value("job", ""), job_b = b.result.value("job", "");
    std::vector<FileDifference> diffs = compare_outputs(a.result, b.result);

    json audit_diff;
    if (!diffs.empty()) {
        try {
            json m = protocol::make_message("audit-diff");
            m["job1"] = job_a;
            m["job2"] = job_b;
            m["max"] = 10;
            audit_diff = request(opts.socket, m).value("diff", json());
        } catch (const CtlError& e) {
            std::cerr << "hermetic: --verify: audit diff unavailable: " << e.what() << "\n";
        }
    }

    if (opts.json) {
        json d = json::array();
        for (const auto& x : diffs) d.push_back({{"path", x.path}, {"difference", x.what}});
        json j = {{"verdict", diffs.empty() ? "reproducible" : "differ"},
                  {"runs", {result_json(a.result), result_json(b.result)}},
                  {"differences", d}};
        if (!audit_diff.is_null()) j["audit_diff"] = audit_diff;
        if (!diffs.empty()) j["second_out"] = out_b;
        std::cout << j.dump() << std::endl;
    }
    size_t files = entries_of(a.result).size();
    if (diffs.empty()) {
        std::error_code ec;
        fs::remove_all(scratch, ec);
        std::cerr << "hermetic: --verify: reproducible: " << files << " output entr" << (files == 1 ? "y" : "ies")
                  << " identical in jobs " << job_a << " and " << job_b << "\n";
        return 0;
    }
    std::ostringstream o;
    o << "hermetic: --verify: NOT reproducible: " << diffs.size() << " of " << files
      << " output entries differ between jobs " << job_a << " and " << job_b << "\n";
    const bool diffoscope = opts.out && have_diffoscope();
    size_t shown = 0;
    for (const auto& x : diffs) {
        o << "  " << x.path << ": " << x.what << "\n";
        if (diffoscope && shown < 5 && x.what.starts_with("content")) {
            std::string pa = *opts.out + "/" + x.path, pb = out_b + "/" + x.path;
            if (shell_safe(pa) && shell_safe(pb)) {
                ++shown;
                o << diffoscope_summary(pa, pb, 30);
            }
        }
    }
    if (!opts.out) o << "  (with --out, diffoscope's view of each differing file is shown when it is installed)\n";
    if (!audit_diff.is_null()) o << "where the builds' syscalls first saw different things:\n" << format_diff(audit_diff);
    o << "the second build's outputs: " << out_b << "\n";
    std::cerr << o.str();
    return kDiffer;
}

}  // namespace hermetic::ctl
