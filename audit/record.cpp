#include "audit/record.hpp"

#include "audit/encoding.hpp"
#include "common/sha256.hpp"

namespace hermetic::audit {

const char* to_string(Action a) {
    switch (a) {
        case Action::Virtualized: return "virtualized";
        case Action::Denied: return "denied";
        case Action::Reordered: return "reordered";
        case Action::Killed: return "killed";
        case Action::Logged: return "logged";
    }
    return "unknown";
}

std::optional<Action> parse_action(std::string_view s) {
    if (s == "virtualized") return Action::Virtualized;
    if (s == "denied") return Action::Denied;
    if (s == "reordered") return Action::Reordered;
    if (s == "killed") return Action::Killed;
    if (s == "logged") return Action::Logged;
    return std::nullopt;
}

namespace {
constexpr std::string_view kPrefix = "{\"h\":\"";
constexpr size_t kHashEnd = kPrefix.size() + 64;  // the closing quote of H
}  // namespace

std::string append_line(std::string& out, std::string_view b, Hasher& hasher) {
    if (b.size() < 3 || b.front() != '{') throw std::logic_error("audit record body must be a non-empty object");
    hasher.update(b);
    std::string h = hasher.hex_digest();
    out.reserve(out.size() + b.size() + kLineOverhead);
    out += kPrefix;
    out += h;
    out += "\",";
    out.append(b.substr(1));
    out += '\n';
    return h;
}

ParsedLine parse_line(std::string_view line) {
    if (line.size() < kHashEnd + 4 || line.substr(0, kPrefix.size()) != kPrefix || line[kHashEnd] != '"' ||
        line[kHashEnd + 1] != ',')
        throw FormatError("not a record line (expected {\"h\":\"<sha256>\",...})");
    ParsedLine p;
    p.h = std::string(line.substr(kPrefix.size(), 64));
    if (!is_sha256_hex(p.h)) throw FormatError("\"h\" is not a lowercase sha256");
    std::string body = "{";
    body.append(line.substr(kHashEnd + 2));
    thread_local Hasher hasher;  // keeps its OpenSSL context between records
    hasher.update(body);
    if (hasher.hex_digest() != p.h) throw FormatError("content does not match its hash");
    p.body = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (p.body.is_discarded() || !p.body.is_object()) throw FormatError("not valid JSON");
    // A second "h" inside BODY would make the line's meaning depend on the parser.
    if (p.body.contains("h")) throw FormatError("duplicate \"h\"");
    return p;
}

bool is_valid_job_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    return true;
}

}  // namespace hermetic::audit
