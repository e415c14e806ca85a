#include "syscall-policy/policy_store.hpp"

#include <algorithm>

#include "common/sha256.hpp"
#include "syscall-policy/floor.hpp"

namespace hermetic::policy {

namespace {

constexpr size_t kMaxCached = 16;

bool is_builtin(const std::string& name) {
    const auto& b = builtin_profile_names();
    return std::find(b.begin(), b.end(), name) != b.end();
}

}  // namespace

PolicyStore::PolicyStore(ProfileLoader loader, Lister lister, PolicyStoreOptions options)
    : loader_(std::move(loader)), lister_(std::move(lister)), options_(std::move(options)) {
    if (!loader_) throw PolicyError("PolicyStore needs a loader");
    if (!valid_profile_name(options_.floor) || is_builtin(options_.floor))
        throw PolicyError("invalid floor profile name \"" + options_.floor + "\"");
}

std::vector<std::string> PolicyStore::list() const {
    std::vector<std::string> names;
    if (lister_)
        for (std::string& n : lister_())
            if (valid_profile_name(n) && !is_builtin(n)) names.push_back(std::move(n));
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

Policy PolicyStore::parse_recording(const std::string& name, std::vector<std::pair<std::string, std::string>>& texts) {
    ParseOptions opts = options_.parse;
    opts.loader = [&](const std::string& n) -> std::optional<std::string> {
        std::optional<std::string> text = loader_(n);
        // A missing include is recorded too: its appearance changes the result.
        texts.emplace_back(n, text ? sha256_hex(*text) : std::string());
        return text;
    };
    return load_profile(name, opts);
}

bool PolicyStore::fresh(const Entry& e) const {
    for (const auto& [name, digest] : e.texts) {
        std::optional<std::string> text = loader_(name);
        if ((text ? sha256_hex(*text) : std::string()) != digest) return false;
    }
    return true;
}

std::shared_ptr<const ResolvedPolicy> PolicyStore::get(const std::string& name) {
    if (!valid_profile_name(name)) throw PolicyError("invalid policy name \"" + name + "\"");
    if (is_builtin(name))
        throw PolicyError("\"" + name + "\" is a built-in building block for profiles, not a profile to run under");
    {
        std::lock_guard lock(mu_);
        for (const auto& [n, e] : cache_)
            if (n == name && fresh(e)) return e.resolved;
    }
    // Parsing and compiling outside the lock: a few ms that other sessions
    // needn't wait for. A concurrent miss computes the same value.
    Entry e;
    Policy p = parse_recording(name, e.texts);
    auto r = std::make_shared<ResolvedPolicy>();
    r->name = name;
    r->compiled = compile(p, options_.compile);
    r->policy = std::move(p);
    e.resolved = std::move(r);

    std::lock_guard lock(mu_);
    std::erase_if(cache_, [&](const auto& c) { return c.first == name; });
    cache_.emplace_back(name, e);
    if (cache_.size() > kMaxCached) cache_.erase(cache_.begin());
    return e.resolved;
}

std::shared_ptr<const ResolvedPolicy> PolicyStore::user(std::string_view text, const std::string& label) {
    std::shared_ptr<const ResolvedPolicy> base = floor();
    ParseOptions opts = options_.parse;
    opts.loader = loader_;
    const Policy mine = parse_policy(text, label, opts);
    auto r = std::make_shared<ResolvedPolicy>();
    r->policy = stack(base->policy, mine);
    r->name = r->policy.name;
    r->floor = base->name;
    r->compiled = compile(r->policy, options_.compile);
    return r;
}

Policy PolicyStore::show(const std::string& name) {
    if (auto b = builtin_profile(name)) return std::move(*b);
    return get(name)->policy;
}

void PolicyStore::clear() {
    std::lock_guard lock(mu_);
    cache_.clear();
}

}  // namespace hermetic::policy
