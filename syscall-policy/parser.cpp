#include "syscall-policy/parser.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <string.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <map>
#include <utility>

#include "syscall-policy/expand.hpp"
#include "syscall-policy/groups.hpp"
#include "syscall-policy/syscall_names.hpp"

namespace hermetic::policy {

namespace {

constexpr std::string_view kSuffix = ".policy";

// ---- names ------------------------------------------------------------------

const std::map<std::string, int, std::less<>>& errno_names() {
    static const std::map<std::string, int, std::less<>> names = [] {
        std::map<std::string, int, std::less<>> m;
        for (int e = 1; e <= 4095; ++e)
            if (const char* n = ::strerrorname_np(e)) m.emplace(n, e);
        m.emplace("EWOULDBLOCK", EWOULDBLOCK);
        m.emplace("EDEADLOCK", EDEADLOCK);
        m.emplace("ENOTSUP", ENOTSUP);
        return m;
    }();
    return names;
}

// Values spelled out where a header may not have them (CLONE_NEWTIME, ...).
const std::map<std::string, uint64_t, std::less<>>& constants() {
    static const std::map<std::string, uint64_t, std::less<>> m = {
        // socket(2) families and types
        {"AF_UNSPEC", AF_UNSPEC}, {"AF_UNIX", AF_UNIX}, {"AF_LOCAL", AF_LOCAL}, {"AF_INET", AF_INET},
        {"AF_INET6", AF_INET6}, {"AF_NETLINK", AF_NETLINK}, {"AF_PACKET", AF_PACKET}, {"AF_BLUETOOTH", AF_BLUETOOTH},
        {"AF_ALG", AF_ALG}, {"AF_VSOCK", AF_VSOCK}, {"AF_KEY", AF_KEY}, {"AF_XDP", 44},
        {"SOCK_STREAM", SOCK_STREAM}, {"SOCK_DGRAM", SOCK_DGRAM}, {"SOCK_RAW", SOCK_RAW},
        {"SOCK_SEQPACKET", SOCK_SEQPACKET}, {"SOCK_NONBLOCK", SOCK_NONBLOCK}, {"SOCK_CLOEXEC", SOCK_CLOEXEC},
        {"NETLINK_ROUTE", 0}, {"NETLINK_AUDIT", 9},
        // clone(2) flags
        {"CLONE_VM", 0x00000100}, {"CLONE_FS", 0x00000200}, {"CLONE_FILES", 0x00000400},
        {"CLONE_SIGHAND", 0x00000800}, {"CLONE_PIDFD", 0x00001000}, {"CLONE_PTRACE", 0x00002000},
        {"CLONE_VFORK", 0x00004000}, {"CLONE_THREAD", 0x00010000}, {"CLONE_NEWNS", 0x00020000},
        {"CLONE_NEWCGROUP", 0x02000000}, {"CLONE_NEWUTS", 0x04000000}, {"CLONE_NEWIPC", 0x08000000},
        {"CLONE_NEWUSER", 0x10000000}, {"CLONE_NEWPID", 0x20000000}, {"CLONE_NEWNET", 0x40000000},
        {"CLONE_NEWTIME", 0x00000080},
        // open(2)
        {"O_RDONLY", O_RDONLY}, {"O_WRONLY", O_WRONLY}, {"O_RDWR", O_RDWR}, {"O_ACCMODE", O_ACCMODE},
        {"O_CREAT", O_CREAT}, {"O_EXCL", O_EXCL}, {"O_TRUNC", O_TRUNC}, {"O_APPEND", O_APPEND},
        {"O_DIRECTORY", O_DIRECTORY}, {"O_NOFOLLOW", O_NOFOLLOW}, {"O_PATH", O_PATH}, {"O_TMPFILE", O_TMPFILE},
        {"O_CLOEXEC", O_CLOEXEC},
        // mmap(2) / mprotect(2)
        {"PROT_READ", PROT_READ}, {"PROT_WRITE", PROT_WRITE}, {"PROT_EXEC", PROT_EXEC},
        {"MAP_SHARED", MAP_SHARED}, {"MAP_PRIVATE", MAP_PRIVATE}, {"MAP_FIXED", MAP_FIXED},
        {"MAP_ANONYMOUS", MAP_ANONYMOUS},
        // ioctl(2) requests
        {"TCGETS", 0x5401}, {"TIOCSTI", 0x5412}, {"TIOCLINUX", 0x541C}, {"FIONREAD", 0x541B},
        {"FIONBIO", 0x5421}, {"FIOCLEX", 0x5451},
        // prctl(2), arch_prctl(2), seccomp(2), personality(2)
        {"PR_SET_TSC", 26}, {"PR_SET_SECCOMP", 22}, {"PR_SET_NO_NEW_PRIVS", 38}, {"PR_SET_DUMPABLE", 4},
        {"PR_SET_PTRACER", 0x59616d61}, {"ARCH_SET_CPUID", 0x1012},
        {"SECCOMP_SET_MODE_STRICT", 0}, {"SECCOMP_SET_MODE_FILTER", 1},
        {"SECCOMP_FILTER_FLAG_NEW_LISTENER", 1u << 3},
        {"PER_LINUX", 0}, {"ADDR_NO_RANDOMIZE", 0x0040000}, {"READ_IMPLIES_EXEC", 0x0400000},
    };
    return m;
}

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string quoted(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string stem(const std::string& file) {
    std::string s = file.substr(file.find_last_of('/') == std::string::npos ? 0 : file.find_last_of('/') + 1);
    if (s.size() > kSuffix.size() && s.ends_with(kSuffix)) s.resize(s.size() - kSuffix.size());
    return s;
}

// ---- tokens -----------------------------------------------------------------

struct Token {
    enum Kind { Word, Op, End } kind = End;
    std::string_view text;
    size_t col = 0;  // 1-based byte column
};

bool word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '@' ||
           c == '-' || c == '.';
}

// ---- the parser ---------------------------------------------------------------

struct State {
    const ParseOptions& options;
    std::vector<std::string> stack;  // profile names being parsed (cycle check)
    size_t total_bytes = 0;
};

// Parses `text` (the profile `name`, shown as `file`) into `out`, with the
// include stack and the size budget of `state`. `site` is the including line's
// "file:line:col" for limits ("" at the top).
void parse_profile_text(State& state, std::string_view text, const std::string& name, const std::string& file,
                        const std::string& site, Policy& out);

class FileParser {
public:
    FileParser(State& state, std::string file, Policy& out) : state_(state), file_(std::move(file)), out_(out) {}

    void parse(std::string_view text) {
        size_t start = 0;
        line_no_ = 0;
        while (start <= text.size()) {
            size_t end = text.find('\n', start);
            if (end == std::string_view::npos) end = text.size();
            ++line_no_;
            std::string_view line = text.substr(start, end - start);
            if (line.ends_with('\r')) line.remove_suffix(1);
            statement(line);
            if (end == text.size()) break;
            start = end + 1;
        }
    }

private:
    // "file:line:col: expected WHAT, got WHAT-IT-WAS"
    [[noreturn]] void fail(const Token& t, std::string_view expected, std::string_view note = {}) const {
        std::string got = t.kind == Token::End ? std::string("end of line") : quoted(t.text);
        std::string msg = where(t.col) + ": expected " + std::string(expected) + ", got " + got;
        if (!note.empty()) msg += " (" + std::string(note) + ")";
        throw PolicyError(msg);
    }
    [[noreturn]] void fail_at(size_t col, const std::string& message) const {
        throw PolicyError(where(col) + ": " + message);
    }
    std::string where(size_t col) const { return file_ + ":" + std::to_string(line_no_) + ":" + std::to_string(col); }
    std::string origin() const { return file_ + ":" + std::to_string(line_no_); }

    void tokenize(std::string_view line) {
        tokens_.clear();
        size_t i = 0;
        while (i < line.size()) {
            const unsigned char c = static_cast<unsigned char>(line[i]);
            if (c == ' ' || c == '\t') {
                ++i;
            } else if (c == '#') {
                break;
            } else if (word_char(c)) {
                size_t j = i;
                while (j < line.size() && word_char(static_cast<unsigned char>(line[j]))) ++j;
                tokens_.push_back({Token::Word, line.substr(i, j - i), i + 1});
                i = j;
            } else if (c == '*') {
                tokens_.push_back({Token::Word, line.substr(i, 1), i + 1});
                ++i;
            } else if (c == '=' || c == '!' || c == '<' || c == '>' || c == '&' || c == '|') {
                size_t n = 1;
                if (i + 1 < line.size()) {
                    const char d = line[i + 1];
                    if ((d == '=' && c != '&' && c != '|') || (c == '&' && d == '&')) n = 2;
                }
                tokens_.push_back({Token::Op, line.substr(i, n), i + 1});
                i += n;
            } else {
                fail({Token::Word, line.substr(i, 1), i + 1}, "a statement, a name, a number or an operator");
            }
        }
        tokens_.push_back({Token::End, {}, line.size() + 1});
        pos_ = 0;
    }

    const Token& peek() const { return tokens_[pos_]; }
    const Token& next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
    bool at_end() const { return peek().kind == Token::End; }
    void expect_end(std::string_view after) {
        if (!at_end()) fail(peek(), "end of line after " + std::string(after));
    }

    void statement(std::string_view line) {
        tokenize(line);
        if (at_end()) return;
        const Token& kw = next();
        const std::string_view k = kw.text;
        if (kw.kind == Token::Word) {
            if (k == "include") return include();
            if (k == "default") return default_statement();
            if (k == "abi") return abi();
            if (k == "allow") return rule(Action::allow(), kw);
            if (k == "deny") return rule(errno_action("deny"), kw);
            if (k == "kill") return rule(Action::kill(), kw);
            if (k == "virtualize") return rule(Action::virtualize(), kw);
            if (k == "log") return rule(Action::log(), kw);
        }
        fail(kw, "a statement (allow, deny, kill, virtualize, log, default, include, abi)");
    }

    Action errno_action(std::string_view after) {
        const Token& t = next();
        const std::string expected = "an errno (EPERM, ENOSYS, ... or 1..4095) after " + std::string(after);
        if (t.kind != Token::Word) fail(t, expected);
        if (auto e = errno_from_name(t.text)) return Action::error(*e);
        if (auto n = parse_number(t.text); n && *n >= 1 && *n <= 4095) return Action::error(static_cast<int>(*n));
        fail(t, expected);
    }

    void include() {
        const Token& t = next();
        if (t.kind != Token::Word) fail(t, "the name of a profile after include");
        const std::string name(t.text);
        if (name.ends_with(kSuffix)) fail(t, "the name of a profile (without .policy)");
        if (!valid_profile_name(name)) fail(t, "the name of a profile ([A-Za-z0-9_.-], at most 64 characters)");
        expect_end("the profile name");
        if (std::find(state_.stack.begin(), state_.stack.end(), name) != state_.stack.end()) {
            std::string chain;
            for (const std::string& s : state_.stack) chain += s + " -> ";
            fail_at(t.col, "include cycle: " + chain + name);
        }
        if (state_.stack.size() > state_.options.max_include_depth)
            fail_at(t.col, "includes nested deeper than " + std::to_string(state_.options.max_include_depth));

        if (std::optional<Policy> builtin = builtin_profile(name)) {
            merge(std::move(*builtin));
            return;
        }
        std::optional<std::string> text;
        if (state_.options.loader) text = state_.options.loader(name);
        if (!text) fail(t, "the name of a profile", "no such profile");
        Policy included;
        parse_profile_text(state_, *text, name, name + std::string(kSuffix), where(t.col), included);
        merge(std::move(included));
    }

    void merge(Policy&& inc) {
        check_rule_count(inc.rules.size());
        for (Rule& r : inc.rules) out_.rules.push_back(std::move(r));
        // An included profile's default and i386 action apply if it sets them,
        // as if its lines stood here.
        if (!inc.default_origin.empty()) {
            out_.default_action = inc.default_action;
            out_.default_origin = inc.default_origin;
        }
        if (inc.i386_action) {
            out_.i386_action = inc.i386_action;
            out_.i386_origin = inc.i386_origin;
        }
    }

    void check_rule_count(size_t more) const {
        if (out_.rules.size() + more > state_.options.max_rules)
            throw PolicyError(where(1) + ": more than " + std::to_string(state_.options.max_rules) + " rules");
    }

    void default_statement() {
        const Token& t = next();
        Action a;
        if (t.kind == Token::Word && t.text == "allow")
            a = Action::allow();
        else if (t.kind == Token::Word && t.text == "kill")
            a = Action::kill();
        else if (t.kind == Token::Word && t.text == "deny")
            a = errno_action("deny");
        else if (t.kind == Token::Word && (t.text == "virtualize" || t.text == "log"))
            fail(t, "allow, deny ERRNO or kill after default", "the default is answered in the kernel, never by the supervisor");
        else
            fail(t, "allow, deny ERRNO or kill after default");
        expect_end("the default action");
        out_.default_action = a;
        out_.default_origin = origin();
    }

    void abi() {
        const Token& t = next();
        if (t.kind != Token::Word || t.text != "i386")
            fail(t, "i386 after abi", "x86-64 is what the rules filter; x32 and other architectures are always killed");
        const Token& a = next();
        Action action;
        if (a.kind == Token::Word && a.text == "kill")
            action = Action::kill();
        else if (a.kind == Token::Word && a.text == "deny")
            action = errno_action("deny");
        else
            fail(a, "kill or deny ERRNO after abi i386");
        expect_end("the i386 action");
        out_.i386_action = action;
        out_.i386_origin = origin();
    }

    // ---- rules ----

    void rule(Action action, const Token& kw) {
        std::vector<std::pair<std::string, size_t>> targets;  // name, column
        bool star = false;
        size_t star_col = 0;
        while (!at_end() && !(peek().kind == Token::Word && peek().text == "if")) {
            const Token& t = next();
            if (t.kind != Token::Word) fail(t, "a syscall name, @group or *");
            if (t.text == "*") {
                star = true;
                star_col = t.col;
                continue;
            }
            check_target(t);
            targets.emplace_back(std::string(t.text), t.col);
        }
        if (targets.empty() && !star) fail(peek(), "a syscall name, @group or * after " + std::string(kw.text));
        if (star && !targets.empty())
            fail_at(star_col, "* stands for every syscall allowed so far; it can't be combined with other targets");

        std::vector<ArgCondition> conds;
        if (!at_end()) {
            const Token& if_tok = next();
            if (star) fail_at(if_tok.col, "* takes no conditions");
            if (action.kind == ActionKind::Allow)
                fail_at(if_tok.col,
                        "a conditional allow can't widen the syscall table; allow the syscall and deny the argument "
                        "values you don't want instead");
            conds = conditions();
        }

        if (star) {
            if (action.kind == ActionKind::Allow) fail_at(star_col, "allow * would change nothing (* stands for every syscall allowed so far)");
            std::vector<std::string> names = allowed_so_far();
            check_rule_count(names.size());
            for (std::string& n : names) out_.rules.push_back({std::move(n), {}, action, origin()});
            return;
        }
        check_rule_count(targets.size());
        for (auto& [name, col] : targets) out_.rules.push_back({std::move(name), conds, action, origin()});
    }

    void check_target(const Token& t) const {
        const std::string name(t.text);
        if (name.starts_with('@')) {
            if (!find_syscall_group(name)) fail(t, "a syscall name or @group", "no such group");
            return;
        }
        if (detail::is_derived_syscall(name))
            fail(t, "a syscall name or @group",
                 "the i386 multiplexer is derived from the calls it multiplexes: name those (socket, shmget, ...)");
        if (!detail::is_known_syscall(name))
            fail(t, "a syscall name or @group", "not a syscall libseccomp knows on x86-64 or i386");
    }

    // Every syscall whose verdict so far is an unconditional allow (for `*`).
    std::vector<std::string> allowed_so_far() const {
        const detail::Expanded e = detail::expand(out_);
        std::vector<std::string> names;
        if (out_.default_action.kind == ActionKind::Allow) {
            for (const detail::NameInfo& info : detail::known_names()) {
                if (detail::is_derived_syscall(info.name)) continue;
                const detail::SyscallEntry* entry = e.find(info.name);
                if (!entry || entry->table_action.kind == ActionKind::Allow) names.push_back(info.name);
            }
        } else {
            for (const detail::SyscallEntry& entry : e.entries)
                if (entry.table_action.kind == ActionKind::Allow) names.push_back(entry.name);
        }
        return names;
    }

    std::vector<ArgCondition> conditions() {
        std::vector<ArgCondition> conds;
        std::vector<size_t> seen_col(6, 0);
        for (;;) {
            const size_t col = peek().col;
            ArgCondition c = condition();
            if (seen_col[c.index])
                fail_at(col, "arg" + std::to_string(c.index) + " is already compared in this rule (column " +
                                 std::to_string(seen_col[c.index]) + "); use two rules or one masked compare");
            seen_col[c.index] = col;
            try {
                (void)detail::normalize_condition(c, "");
            } catch (const PolicyError& e) {
                // The library says "a1"; the format spells it "arg1".
                std::string m = e.what();
                if (m.starts_with(": ")) m.erase(0, 2);
                if (m.starts_with("condition on a")) m.insert(std::string_view("condition on a").size(), "rg");
                fail_at(col, m);
            }
            conds.push_back(c);
            if (at_end()) return conds;
            const Token& sep = next();
            if (!((sep.kind == Token::Word && sep.text == "and") || (sep.kind == Token::Op && sep.text == "&&")))
                fail(sep, "and or end of line after a condition");
        }
    }

    ArgCondition condition() {
        const Token& arg = next();
        ArgCondition c;
        if (arg.kind != Token::Word || arg.text.size() != 4 || !arg.text.starts_with("arg") || arg.text[3] < '0' ||
            arg.text[3] > '5')
            fail(arg, "an argument (arg0 .. arg5)");
        c.index = static_cast<unsigned>(arg.text[3] - '0');
        const Token& op = next();
        if (op.kind == Token::Op && op.text == "&") {
            c.op = CompareOp::MaskedEq;
            c.mask = value();
            const Token& eq = next();
            if (eq.kind != Token::Op || eq.text != "==")
                fail(eq, "== after the mask", "seccomp compares masked values for equality only");
            c.value = value();
            return c;
        }
        static const std::pair<std::string_view, CompareOp> ops[] = {{"==", CompareOp::Eq}, {"!=", CompareOp::Ne},
                                                                     {"<", CompareOp::Lt},  {"<=", CompareOp::Le},
                                                                     {">", CompareOp::Gt},  {">=", CompareOp::Ge}};
        const auto* it = std::find_if(std::begin(ops), std::end(ops),
                                      [&](const auto& o) { return op.kind == Token::Op && o.first == op.text; });
        if (it == std::end(ops)) fail(op, "an operator (==, !=, <, <=, >, >=, or & MASK ==)");
        c.op = it->second;
        c.value = value();
        return c;
    }

    // NUMBER or CONSTANT, '|'-joined.
    uint64_t value() {
        uint64_t v = 0;
        for (;;) {
            const Token& t = next();
            const std::string expected = "a number or a named constant";
            if (t.kind != Token::Word) fail(t, expected);
            if (auto n = parse_number(t.text)) {
                v |= *n;
            } else if (auto k = constant_value(t.text)) {
                v |= *k;
            } else if (!t.text.empty() && t.text[0] >= '0' && t.text[0] <= '9') {
                fail(t, "a number (decimal or 0x hex, at most 64 bits)");
            } else {
                fail(t, expected, "unknown constant");
            }
            if (peek().kind == Token::Op && peek().text == "|") {
                next();
                continue;
            }
            return v;
        }
    }

    static std::optional<uint64_t> parse_number(std::string_view s) {
        unsigned base = 10;
        if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
            base = 16;
            s.remove_prefix(2);
        }
        if (s.empty()) return std::nullopt;
        uint64_t v = 0;
        for (char ch : s) {
            unsigned d;
            if (ch >= '0' && ch <= '9')
                d = static_cast<unsigned>(ch - '0');
            else if (base == 16 && ch >= 'a' && ch <= 'f')
                d = static_cast<unsigned>(ch - 'a' + 10);
            else if (base == 16 && ch >= 'A' && ch <= 'F')
                d = static_cast<unsigned>(ch - 'A' + 10);
            else
                return std::nullopt;
            if (v > (~uint64_t{0} - d) / base) return std::nullopt;  // overflow
            v = v * base + d;
        }
        return v;
    }

    State& state_;
    std::string file_;
    Policy& out_;
    size_t line_no_ = 0;
    std::vector<Token> tokens_;
    size_t pos_ = 0;
};

void parse_profile_text(State& state, std::string_view text, const std::string& name, const std::string& file,
                        const std::string& site, Policy& out) {
    auto limit = [&](const std::string& what) { throw PolicyError((site.empty() ? file : site) + ": " + what); };
    if (text.size() > state.options.max_file_bytes)
        limit("profile \"" + name + "\" is " + std::to_string(text.size()) + " bytes (at most " +
              std::to_string(state.options.max_file_bytes) + ")");
    state.total_bytes += text.size();
    if (state.total_bytes > state.options.max_total_bytes)
        limit("the profile and its includes are more than " + std::to_string(state.options.max_total_bytes) +
              " bytes of text");
    out.name = stem(file);
    state.stack.push_back(name);
    FileParser(state, file, out).parse(text);
    state.stack.pop_back();
}

}  // namespace

Policy parse_policy(std::string_view text, const std::string& file, const ParseOptions& options) {
    State state{options, {}, 0};
    Policy out;
    parse_profile_text(state, text, stem(file), file, "", out);
    // What compile() would refuse (conflicting conditional rules, ...), now.
    (void)detail::expand(out);
    return out;
}

Policy load_profile(const std::string& name, const ParseOptions& options) {
    if (!valid_profile_name(name)) throw PolicyError("invalid profile name " + quoted(name));
    if (auto builtin = builtin_profile(name)) return std::move(*builtin);
    std::optional<std::string> text;
    if (options.loader) text = options.loader(name);
    if (!text) throw PolicyError("no such profile " + quoted(name));
    return parse_policy(*text, name + std::string(kSuffix), options);
}

bool valid_profile_name(std::string_view name) {
    if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
    if (name.ends_with(kSuffix)) return false;
    if (!(std::isalnum(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
}

const std::vector<std::string>& builtin_profile_names() {
    static const std::vector<std::string> names = {"baseline", "determinism"};
    return names;
}

std::optional<Policy> builtin_profile(std::string_view name) {
    std::optional<Policy> p;
    if (name == "baseline") p = baseline_policy();
    if (name == "determinism") p = determinism_policy();
    if (!p) return std::nullopt;
    p->name = std::string(name);
    for (Rule& r : p->rules)
        if (r.origin.empty()) r.origin = std::string(name);
    return p;
}

std::optional<int> errno_from_name(std::string_view name) {
    const auto& m = errno_names();
    auto it = m.find(name);
    if (it == m.end()) return std::nullopt;
    return it->second;
}

std::string errno_name(int e) {
    const char* n = e > 0 ? ::strerrorname_np(e) : nullptr;
    return n ? std::string(n) : std::to_string(e);
}

std::optional<uint64_t> constant_value(std::string_view name) {
    const auto& m = constants();
    auto it = m.find(name);
    if (it == m.end()) return std::nullopt;
    return it->second;
}

std::string format_action(const Action& a) {
    switch (a.kind) {
        case ActionKind::Allow: return "allow";
        case ActionKind::Errno: return "deny " + errno_name(a.errno_value);
        case ActionKind::Kill: return "kill";
        case ActionKind::Virtualize: return "virtualize";
        case ActionKind::Log: return "log";
    }
    return "?";
}

std::string format_condition(const ArgCondition& c) {
    const std::string arg = "arg" + std::to_string(c.index);
    // width32 is the same as a mask without the high word (expand.cpp).
    if (c.op == CompareOp::MaskedEq || c.width32) {
        uint64_t mask = c.op == CompareOp::MaskedEq ? c.mask : ~uint64_t{0};
        if (c.width32) mask &= 0xffffffffu;
        return arg + " & " + hex(mask) + " == " + hex(c.value);
    }
    const char* op = "==";
    switch (c.op) {
        case CompareOp::Eq: op = "=="; break;
        case CompareOp::Ne: op = "!="; break;
        case CompareOp::Lt: op = "<"; break;
        case CompareOp::Le: op = "<="; break;
        case CompareOp::Gt: op = ">"; break;
        case CompareOp::Ge: op = ">="; break;
        case CompareOp::MaskedEq: break;
    }
    return arg + " " + op + " " + hex(c.value);
}

namespace {
std::string conditions_text(const std::vector<ArgCondition>& conds) {
    std::string s;
    for (const ArgCondition& c : conds) s += (s.empty() ? " if " : " and ") + format_condition(c);
    return s;
}
}  // namespace

std::string format_rule(const Rule& r) { return format_action(r.action) + " " + r.target + conditions_text(r.conditions); }

std::vector<PolicyLine> format_policy(const Policy& p) {
    std::vector<PolicyLine> out;
    out.push_back({"default " + format_action(p.default_action), p.default_origin});
    if (p.i386_action) out.push_back({"abi i386 " + format_action(*p.i386_action), p.i386_origin});
    const Rule* prev = nullptr;
    for (const Rule& r : p.rules) {
        if (prev && prev->action == r.action && prev->origin == r.origin && prev->conditions == r.conditions) {
            // Same statement: append the target before the conditions.
            std::string& text = out.back().text;
            const std::string conds = conditions_text(r.conditions);
            text.insert(text.size() - conds.size(), " " + r.target);
        } else {
            out.push_back({format_rule(r), r.origin});
        }
        prev = &r;
    }
    return out;
}

std::string format_policy_text(const Policy& p) {
    std::string s;
    for (const PolicyLine& l : format_policy(p)) {
        s += l.text;
        if (!l.origin.empty()) s += "  # " + l.origin;
        s += "\n";
    }
    return s;
}

}  // namespace hermetic::policy
