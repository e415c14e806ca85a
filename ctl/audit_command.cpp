#include "ctl/audit_command.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>

#include "audit/dsse.hpp"
#include "audit/encoding.hpp"
#include "audit/files.hpp"
#include "audit/record.hpp"
#include "common/io.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "ctl/client.hpp"
#include "protocol/messages.hpp"

namespace hermetic::ctl {

using nlohmann::json;

namespace {

constexpr size_t kMaxEvidenceFile = 1ull << 30;

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------
// Receiving evidence streams (see daemon/evidence_requests.hpp)

struct Received {
    std::map<std::string, std::string> files;
    json end;
};

using ChunkSink = std::function<void(const std::string& name, std::string_view chunk)>;

// Sends msg and collects the stream; with `direct`, file bytes go there instead
// of into memory.
Received fetch(const std::string& socket, const json& msg, const ChunkSink& direct = {}) {
    Client c(socket);
    c.send(msg);
    Received r;
    std::string name, want_sha;
    uint64_t remaining = 0;
    Sha256 hash;
    bool in_file = false;
    auto file_done = [&] {
        if (hash.hex_digest() != want_sha)
            throw CtlError("the transfer of " + name + " was corrupted (sha256 mismatch)");
        in_file = false;
    };
    for (;;) {
        protocol::Frame f = c.receive();
        if (f.kind != protocol::FrameKind::Control) {
            if (!in_file || f.payload.size() > remaining) throw CtlError("unexpected data from hermeticd");
            hash.update(f.payload);
            remaining -= f.payload.size();
            if (direct) direct(name, f.payload);
            else r.files[name] += f.payload;
            if (remaining == 0) file_done();
            continue;
        }
        json m = c.control(f);  // throws CtlError on {"type":"error"}
        const std::string type = m.value("type", "");
        if (in_file) throw CtlError("hermeticd ended " + name + " early");
        if (type == "evidence-file") {
            name = m.value("name", "");
            if (name.empty() || name.find('/') != std::string::npos) throw CtlError("bad file name from hermeticd");
            remaining = m.value("size", uint64_t{0});
            want_sha = m.value("sha256", "");
            if (remaining > kMaxEvidenceFile) throw CtlError(name + " is too large");
            r.files[name];  // exists even when empty
            in_file = true;
            if (remaining == 0) file_done();
        } else if (type == "evidence-end") {
            r.end = m;
            return r;
        } else {
            throw CtlError("unexpected reply '" + type.substr(0, 64) + "' from hermeticd");
        }
    }
}

json evidence_request(const char* type, const std::string& job) {
    json m = protocol::make_message(type);
    m["job"] = job;
    return m;
}

// ---------------------------------------------------------------------------
// Formatting

std::string counts_line(const json& m, size_t limit = 12) {
    std::vector<std::pair<std::string, uint64_t>> v;
    for (auto it = m.begin(); it != m.end(); ++it) v.emplace_back(it.key(), it.value().get<uint64_t>());
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string s;
    for (size_t i = 0; i < v.size() && i < limit; ++i) s += (i ? ", " : "") + v[i].first + " " + std::to_string(v[i].second);
    if (v.size() > limit) s += ", ... (" + std::to_string(v.size() - limit) + " more)";
    return s.empty() ? "none" : s;
}

std::string quoted(const json& v) { return v.is_null() ? "(none)" : v.dump(-1, ' ', false, json::error_handler_t::replace); }

bool starts_with_flag(const std::string& a) { return a.size() > 1 && a[0] == '-'; }

// ---------------------------------------------------------------------------
// Export files and directory walks

void write_user_file(const std::string& path, std::string_view content) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) throw CtlError("cannot write " + path + ": " + errno_string(errno));
    write_all(fd.get(), content);
}

std::string read_user_file(const std::string& path) {
    std::optional<std::string> s;
    try {
        s = audit::read_file_if_exists(path, kMaxEvidenceFile);
    } catch (const std::exception& e) {
        throw CtlError(e.what());
    }
    if (!s) throw CtlError(path + ": no such file");
    return *s;
}

void hash_tree(int dirfd, const std::string& prefix, std::map<std::string, std::string>& out, int depth) {
    if (depth > 256) throw CtlError("directory tree too deep at " + prefix);
    UniqueFd own(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
    DIR* d = ::fdopendir(own.get());
    if (!d) throw CtlError("cannot list " + (prefix.empty() ? std::string(".") : prefix) + ": " + errno_string(errno));
    (void)own.release();
    std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        std::string rel = prefix.empty() ? n : prefix + "/" + n;
        struct stat st{};
        if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
            throw CtlError("cannot stat " + rel + ": " + errno_string(errno));
        if (S_ISDIR(st.st_mode)) {
            UniqueFd sub(::openat(::dirfd(d), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!sub) throw CtlError("cannot open " + rel + ": " + errno_string(errno));
            hash_tree(sub.get(), rel, out, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            UniqueFd f(::openat(::dirfd(d), n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (!f) throw CtlError("cannot read " + rel + ": " + errno_string(errno));
            // A read error throws SysError "cannot read REL: ...", reported as a CtlError is.
            out[rel] = sha256_hex_of_fd(f.get(), "cannot read " + rel);
        }
    }
}

audit::Keyring keyring_from_file(const std::string& key_file) {
    audit::Keyring ring;
    try {
        ring.add_pem_bundle(read_user_file(key_file));
    } catch (const audit::KeyError& e) {
        throw CtlError(key_file + ": " + e.what());
    }
    return ring;
}

std::string verified_line(const audit::VerifyReport& r) {
    std::string s = "job " + r.chain.job + ": verified: " + std::to_string(r.chain.records) + " records, chain head " +
                    r.chain.head + ", summary signed by key " + r.summary_key_id + ", audit digest " + r.audit_digest;
    if (r.attestation_checked) s += ", attestation verified (" + std::to_string(r.subjects.size()) + " subjects)";
    return s;
}

// ---------------------------------------------------------------------------
// Commands

int audit_show(const std::string& socket, const std::string& job, bool as_json) {
    if (as_json) {
        json m = evidence_request("audit", job);
        m["json"] = true;
        fetch(socket, m,
              [](const std::string&, std::string_view chunk) { std::cout.write(chunk.data(), static_cast<std::streamsize>(chunk.size())); });
        std::cout.flush();
        return 0;
    }
    json r = request(socket, evidence_request("audit", job));
    std::cout << format_audit(r);
    return 0;
}

int audit_verify_online(const std::string& socket, const std::string& job, const std::optional<std::string>& key_file) {
    Received got = fetch(socket, evidence_request("audit-export", job));
    audit::Bundle b;
    b.log = got.files[audit::kLogFile];
    if (got.files.count(audit::kSummaryFile)) b.summary = got.files[audit::kSummaryFile];
    if (got.files.count(audit::kAttestationFile)) b.attestation = got.files[audit::kAttestationFile];
    audit::Keyring ring;
    if (key_file) {
        ring = keyring_from_file(*key_file);
    } else {
        for (const auto& k : got.end.value("public_keys", json::array()))
            ring.add(audit::PublicKey::from_pem(k.at("pem").get<std::string>()));
    }
    audit::VerifyReport r = audit::verify_bundle(b, ring);
    if (!r.ok) {
        std::cerr << "hermeticctl: audit of job " << job << " does not verify: " << r.error << "\n";
        return 1;
    }
    std::cout << verified_line(r) << (key_file ? "" : " (with the daemon's own keys; pin them with --key)") << "\n";
    return 0;
}

int audit_diff(const std::string& socket, const std::string& a, const std::string& b, bool as_json, size_t max) {
    json m = protocol::make_message("audit-diff");
    m["job1"] = a;
    m["job2"] = b;
    m["max"] = max;
    json r = request(socket, m);
    const json& d = r.at("diff");
    if (as_json) std::cout << d.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else std::cout << format_diff(d);
    return d.value("identical", false) ? 0 : 1;
}

int audit_export(const std::string& socket, const std::string& job, const std::string& dir) {
    Received got = fetch(socket, evidence_request("audit-export", job));
    ExportPaths p = export_paths(dir, job);
    write_user_file(p.log, got.files[audit::kLogFile]);
    std::cout << p.log << "\n";
    if (got.files.count(audit::kSummaryFile)) {
        write_user_file(p.summary, got.files[audit::kSummaryFile]);
        std::cout << p.summary << "\n";
    } else {
        std::cerr << "hermeticctl: job " << job << " has no summary yet (not finished): exported the log only\n";
    }
    if (got.files.count(audit::kAttestationFile)) {
        write_user_file(p.attestation, got.files[audit::kAttestationFile]);
        std::cout << p.attestation << "\n";
    }
    return 0;
}

const char* kAuditUsage =
    "Usage:\n"
    "  hermeticctl audit JOB                 the job's deviation summary\n"
    "  hermeticctl audit JOB --json          the audit log: one JSON record per line\n"
    "  hermeticctl audit JOB --verify [--key KEY]\n"
    "                                        check the hash chain, the signed summary and the\n"
    "                                        attestation (exit 1 naming the first bad record)\n"
    "  hermeticctl audit diff JOB1 JOB2 [--json] [--max N]\n"
    "                                        the first deviations whose values differ (exit 1 if any)\n"
    "  hermeticctl audit export JOB [--dir D]\n"
    "                                        write D/JOB.audit.log, .audit.summary.json, .attestation.json\n"
    "  hermeticctl audit verify FILE --key KEY [--out DIR]\n"
    "                                        check an export offline against the public key(s) in KEY\n"
    "                                        (from `hermeticctl pubkey --all`); with --out, the\n"
    "                                        attestation's subjects must be exactly DIR's files\n"
    "  hermeticctl attest JOB [--statement]  the job's signed in-toto/SLSA attestation (DSSE)\n"
    "  hermeticctl pubkey [--all]            the daemon's current public key (--all: every key)\n";

int audit_main(const std::vector<std::string>& args, const std::string& socket) {
    if (args.empty()) throw UsageError("audit: missing JOB");
    if (args[0] == "--help" || args[0] == "-h") {
        std::cout << kAuditUsage;
        return 0;
    }
    std::vector<std::string> pos;
    bool as_json = false, verify = false;
    std::optional<std::string> key, dir, out;
    size_t max = 20;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&](const char* flag) {
            if (i + 1 >= args.size()) throw UsageError(std::string(flag) + " needs a value");
            return args[++i];
        };
        if (a == "--json") as_json = true;
        else if (a == "--verify") verify = true;
        else if (a == "--key") key = value("--key");
        else if (a == "--dir") dir = value("--dir");
        else if (a == "--out") out = value("--out");
        else if (a == "--max") {
            std::string v = value("--max");
            try {
                max = std::stoul(v);
            } catch (...) {
                throw UsageError("--max: not a number: " + v);
            }
        } else if (starts_with_flag(a)) throw UsageError("audit: unknown option " + a);
        else pos.push_back(a);
    }
    if (pos[0] == "diff") {
        if (pos.size() != 3) throw UsageError("audit diff needs JOB1 JOB2");
        return audit_diff(socket, pos[1], pos[2], as_json, max);
    }
    if (pos[0] == "export") {
        if (pos.size() != 2) throw UsageError("audit export needs JOB");
        return audit_export(socket, pos[1], dir.value_or("."));
    }
    if (pos[0] == "verify") {
        if (pos.size() != 2) throw UsageError("audit verify needs FILE");
        if (!key) throw UsageError("audit verify needs --key KEY (the daemon's public key: hermeticctl pubkey --all)");
        return verify_export(pos[1], *key, out, std::cout, std::cerr);
    }
    if (pos.size() != 1) throw UsageError("audit: expected one JOB");
    if (verify) return audit_verify_online(socket, pos[0], key);
    return audit_show(socket, pos[0], as_json);
}

}  // namespace

// ---------------------------------------------------------------------------

std::string format_audit(const json& r) {
    std::ostringstream o;
    const std::string job = r.value("job", "?");
    const json& s = r.contains("summary") ? r.at("summary") : json(nullptr);
    if (s.is_null()) {
        o << "job " << job << ": " << r.value("records", uint64_t{0}) << " audit records so far, no summary yet";
        if (r.contains("state")) o << " (job " << r.value("state", "") << ")";
        o << "\n";
        if (r.contains("summary_error")) o << "warning: " << r.value("summary_error", "") << "\n";
        return o.str();
    }
    const json& ev = s.at("events");
    const json& ch = s.at("chain");
    const json& res = s.at("result");
    o << "job " << job << ": " << ev.value("total", uint64_t{0}) << " deviations";
    o << " (" << res.value("state", "?");
    if (!res.at("exit_code").is_null()) o << ", exit " << res.at("exit_code").get<int>();
    if (!res.at("signal").is_null()) o << ", signal " << res.at("signal").get<int>();
    o << ")" << (s.value("trace", false) ? ", traced" : "") << "\n";
    o << "  by action:   " << counts_line(s.at("by_action")) << "\n";
    o << "  by class:    " << counts_line(s.at("by_class")) << "\n";
    o << "  by syscall:  " << counts_line(s.at("by_syscall")) << "\n";
    const json& net = s.at("network");
    if (net.empty()) {
        o << "  network:     no attempts\n";
    } else {
        o << "  network:     ";
        for (size_t i = 0; i < net.size(); ++i)
            o << (i ? "\n               " : "") << net[i].value("syscall", "") << "(" << net[i].value("args", "") << ") "
              << net[i].value("action", "") << " x" << net[i].value("count", uint64_t{0});
        if (s.value("network_other", uint64_t{0}))
            o << "\n               ... " << s.value("network_other", uint64_t{0}) << " more attempts";
        o << "\n";
    }
    const json& unv = s.at("unvirtualizable");
    o << "  unvirtualizable: ";
    if (unv.empty()) o << "none";
    for (size_t i = 0; i < unv.size(); ++i) o << (i ? "; " : "") << unv[i].get<std::string>();
    o << "\n";
    for (const auto& n : s.value("notes", json::array())) o << "  note:        " << n.get<std::string>() << "\n";
    o << "  log:         " << ch.value("records", uint64_t{0}) << " records, " << ch.value("bytes", uint64_t{0})
      << " bytes (bound " << ch.value("bound", uint64_t{0}) << "); " << ev.value("recorded", uint64_t{0})
      << " events recorded one by one";
    if (ev.value("aggregated", uint64_t{0}))
        o << ", " << ev.value("aggregated", uint64_t{0}) << " repeated events counted in "
          << ev.value("aggregate_records", uint64_t{0}) << " aggregate records (from event "
          << ev.at("aggregating_since").get<uint64_t>() << " on)";
    o << "\n";
    o << "  chain head:  " << ch.value("head", "") << "\n";
    o << "  signed by:   key " << s.value("key_id", "") << "\n";
    o << "  audit digest: " << r.value("audit_digest", "") << "\n";
    o << "  policy:      " << s.value("policy_digest", "") << "\n";
    return o.str();
}

std::string format_diff(const json& d) {
    std::ostringstream o;
    const std::string a = d.value("job1", "?"), b = d.value("job2", "?");
    if (d.value("identical", false)) {
        o << "jobs " << a << " and " << b << ": no differences in " << d.value("compared", uint64_t{0})
          << " compared deviations\n";
    } else {
        o << "jobs " << a << " and " << b << " differ: " << d.value("total_differences", uint64_t{0})
          << " difference(s) (" << counts_line(d.at("by_kind")) << ") in " << d.value("compared", uint64_t{0})
          << " compared deviations\n";
        bool first = true;
        for (const auto& x : d.at("differences")) {
            o << (first ? "\nfirst difference: " : "\nthen: ");
            first = false;
            o << "process " << x.value("vpid", int64_t{0}) << " (" << x.value("exe", "") << "), its deviation #"
              << x.value("index", uint64_t{0}) + 1 << " (event " << quoted(x.at("n1")) << " of job 1, "
              << quoted(x.at("n2")) << " of job 2)\n";
            o << "  " << x.value("syscall", "") << "(" << (x.at("args1").is_null() ? quoted(x.at("args2")) : x.value("args1", ""))
              << ")\n";
            const std::string kind = x.value("kind", "");
            if (kind == "real") {
                o << "  real values differ: " << quoted(x.at("real1")) << " vs " << quoted(x.at("real2"))
                  << "\n  (both builds were given " << quoted(x.at("value1"))
                  << ": without the sandbox they would have seen different results here)\n";
            } else if (kind == "value") {
                o << "  the builds were given different values: " << quoted(x.at("value1")) << " vs "
                  << quoted(x.at("value2")) << "\n";
                if (!x.at("real1").is_null() || !x.at("real2").is_null())
                  o << "  real values: " << quoted(x.at("real1")) << " vs " << quoted(x.at("real2")) << "\n";
            } else if (kind == "syscall") {
                o << "  the process diverged: job 2 made " << x.value("syscall2", "?") << " here\n";
            } else if (kind == "args") {
                o << "  arguments differ: " << quoted(x.at("args1")) << " vs " << quoted(x.at("args2")) << "\n";
            } else if (kind == "missing") {
                o << "  only job " << (x.at("n1").is_null() ? "2" : "1")
                  << " made this deviation (the process made fewer in the other job)\n";
            }
            const json& ctx = x.at("context");
            if (!ctx.empty()) {
                o << "  before it (same in both):";
                for (const auto& c : ctx)
                    o << "\n    " << c.value("syscall", "") << "(" << c.value("args", "") << ") = " << c.value("value", "");
                o << "\n";
            }
        }
        size_t shown = d.at("differences").size();
        if (d.value("total_differences", uint64_t{0}) > shown)
            o << "\n... " << d.value("total_differences", uint64_t{0}) - shown << " more (--max N, or --json)\n";
        o << "\ndifferences by syscall: " << counts_line(d.at("by_syscall")) << "\n";
    }
    for (const char* k : {"processes_only_in_job1", "processes_only_in_job2"}) {
        if (d.contains(k) && !d.at(k).empty())
            o << (std::string(k) == "processes_only_in_job1" ? "processes only in job 1: " : "processes only in job 2: ")
              << d.at(k).dump() << "\n";
    }
    for (const auto& n : d.value("notes", json::array())) o << "note: " << n.get<std::string>() << "\n";
    return o.str();
}

ExportPaths export_paths(const std::string& dir, const std::string& job) {
    std::string base = (dir.empty() ? std::string(".") : dir) + "/" + job;
    return {job, base + ".audit.log", base + ".audit.summary.json", base + ".attestation.json"};
}

ExportPaths locate_export(const std::string& file) {
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0) throw CtlError(file + ": " + errno_string(errno));
    if (S_ISDIR(st.st_mode)) {
        std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(file.c_str()), ::closedir);
        if (!d) throw CtlError(file + ": " + errno_string(errno));
        std::vector<std::string> jobs;
        while (dirent* e = ::readdir(d.get())) {
            std::string n = e->d_name;
            if (n.ends_with(".audit.log")) jobs.push_back(n.substr(0, n.size() - 10));
        }
        if (jobs.size() != 1)
            throw CtlError(file + ": holds " + std::to_string(jobs.size()) + " exported audit logs; name one of them");
        return export_paths(file, jobs[0]);
    }
    for (const char* suffix : {".audit.log", ".audit.summary.json", ".attestation.json"}) {
        std::string s = suffix;
        if (file.size() > s.size() && file.ends_with(s)) {
            std::string stem = file.substr(0, file.size() - s.size());
            size_t slash = stem.rfind('/');
            std::string dir = slash == std::string::npos ? "." : stem.substr(0, slash);
            std::string job = slash == std::string::npos ? stem : stem.substr(slash + 1);
            return export_paths(dir, job);
        }
    }
    throw CtlError(file + ": not an export (expected JOB.audit.log, JOB.audit.summary.json or JOB.attestation.json)");
}

std::optional<std::string> compare_subjects(const std::vector<audit::Subject>& subjects, const std::string& dir) {
    UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw CtlError("cannot open " + dir + ": " + errno_string(errno));
    std::map<std::string, std::string> files;
    hash_tree(root.get(), "", files, 0);
    std::map<std::string, std::string> claimed;
    for (const auto& s : subjects) claimed[s.name] = s.sha256;
    for (const auto& [name, sha] : claimed) {
        auto it = files.find(name);
        if (it == files.end()) return "subject " + name + ": not in " + dir;
        if (it->second != sha) return "subject " + name + ": sha256 differs from " + dir + "/" + name;
    }
    for (const auto& [name, sha] : files)
        if (!claimed.count(name)) return dir + "/" + name + ": not a subject of the attestation";
    return std::nullopt;
}

int verify_export(const std::string& file, const std::string& key_file, const std::optional<std::string>& out_dir,
                  std::ostream& out, std::ostream& err) {
    ExportPaths p = locate_export(file);
    audit::Keyring ring = keyring_from_file(key_file);
    audit::Bundle b;
    b.log = read_user_file(p.log);
    b.summary = audit::read_file_if_exists(p.summary, kMaxEvidenceFile);
    b.attestation = audit::read_file_if_exists(p.attestation, kMaxEvidenceFile);
    audit::VerifyReport r = audit::verify_bundle(b, ring);
    if (!r.ok) {
        err << "hermeticctl: " << p.job << ": does not verify: " << r.error << "\n";
        return 1;
    }
    if (out_dir) {
        if (!r.attestation_checked) {
            err << "hermeticctl: " << p.job << ": no attestation to compare " << *out_dir << " with\n";
            return 1;
        }
        if (auto m = compare_subjects(r.subjects, *out_dir)) {
            err << "hermeticctl: " << p.job << ": outputs do not match: " << *m << "\n";
            return 1;
        }
    }
    out << verified_line(r) << (out_dir ? ", subjects match " + *out_dir : std::string()) << "\n";
    return 0;
}

int audit_command(const std::vector<std::string>& args, const std::string& socket) {
    try {
        return audit_main(args, socket);
    } catch (const UsageError& e) {
        std::cerr << "hermeticctl: " << e.what() << "\n\n" << kAuditUsage;
        return 2;
    }
}

int attest_command(const std::vector<std::string>& args, const std::string& socket) {
    std::optional<std::string> job;
    bool statement = false;
    for (const auto& a : args) {
        if (a == "--help" || a == "-h") {
            std::cout << "Usage: hermeticctl attest JOB [--statement]\n"
                         "  prints the job's DSSE envelope (in-toto Statement v1, SLSA Provenance v1);\n"
                         "  --statement prints the decoded statement instead\n";
            return 0;
        }
        if (a == "--statement") statement = true;
        else if (!starts_with_flag(a) && !job) job = a;
        else {
            std::cerr << "hermeticctl: attest: unexpected argument " << a << "\n";
            return 2;
        }
    }
    if (!job) {
        std::cerr << "hermeticctl: attest: missing JOB\n";
        return 2;
    }
    Received got = fetch(socket, evidence_request("attest", *job));
    const std::string& env = got.files[audit::kAttestationFile];
    if (!statement) {
        std::cout << env;
        if (!env.empty() && env.back() != '\n') std::cout << "\n";
        return 0;
    }
    audit::Envelope e = audit::parse_envelope(env);
    std::cout << json::parse(e.payload).dump(2) << "\n";
    return 0;
}

int pubkey_command(const std::vector<std::string>& args, const std::string& socket) {
    bool all = false;
    for (const auto& a : args) {
        if (a == "--all") all = true;
        else if (a == "--help" || a == "-h") {
            std::cout << "Usage: hermeticctl pubkey [--all]\n"
                         "  the daemon's current Ed25519 public key (PEM); --all: every key it ever signed with\n";
            return 0;
        } else {
            std::cerr << "hermeticctl: pubkey: unexpected argument " << a << "\n";
            return 2;
        }
    }
    json r = request(socket, protocol::make_message("pubkey"));
    const std::string current = r.value("current", "");
    bool printed = false;
    for (const auto& k : r.value("keys", json::array())) {
        if (!all && k.value("key_id", "") != current) continue;
        std::cout << k.value("pem", "");
        printed = true;
    }
    if (!printed) throw CtlError("hermeticd sent no public key");
    return 0;
}

}  // namespace hermetic::ctl
