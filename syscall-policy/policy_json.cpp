#include "syscall-policy/policy_json.hpp"

#include <charconv>

#include "syscall-policy/expand.hpp"

namespace hermetic::policy {

namespace {

using nlohmann::json;

constexpr const char* kFormat = "hermetic-policy/1";
constexpr size_t kMaxRules = 100000;  // ParseOptions' default: no real policy comes near
constexpr size_t kMaxConditions = 6;  // one per argument

Action action_from(const json& j, const std::string& what) {
    if (!j.is_string()) throw PolicyError("policy JSON: " + what + " is not a string");
    const std::string& s = j.get_ref<const std::string&>();
    if (s == "allow") return Action::allow();
    if (s == "kill") return Action::kill();
    if (s == "virtualize") return Action::virtualize();
    if (s == "log") return Action::log();
    if (s.starts_with("errno ")) {
        int e = 0;
        const char* first = s.data() + 6;
        const char* last = s.data() + s.size();
        auto [end, ec] = std::from_chars(first, last, e);
        if (ec == std::errc() && end == last && first != last && e >= 1 && e <= 4095) return Action::error(e);
    }
    throw PolicyError("policy JSON: " + what + ": unknown action \"" + s.substr(0, 40) + "\"");
}

CompareOp op_from(const json& j, const std::string& what) {
    if (j.is_string()) {
        const std::string& s = j.get_ref<const std::string&>();
        for (CompareOp op : {CompareOp::Eq, CompareOp::Ne, CompareOp::Lt, CompareOp::Le, CompareOp::Gt, CompareOp::Ge,
                             CompareOp::MaskedEq})
            if (s == detail::op_text(op)) return op;
    }
    throw PolicyError("policy JSON: " + what + ": unknown comparison " + j.dump().substr(0, 40));
}

const json& field(const json& obj, const char* key, const std::string& what) {
    auto it = obj.find(key);
    if (it == obj.end()) throw PolicyError("policy JSON: " + what + " has no \"" + key + "\"");
    return *it;
}

std::string string_field(const json& obj, const char* key, const std::string& what, bool required = true) {
    auto it = obj.find(key);
    if (it == obj.end()) {
        if (required) throw PolicyError("policy JSON: " + what + " has no \"" + key + "\"");
        return {};
    }
    if (!it->is_string()) throw PolicyError("policy JSON: " + what + ": \"" + key + "\" is not a string");
    return it->get<std::string>();
}

uint64_t u64_field(const json& obj, const char* key, const std::string& what, uint64_t fallback, bool required) {
    auto it = obj.find(key);
    if (it == obj.end()) {
        if (required) throw PolicyError("policy JSON: " + what + " has no \"" + key + "\"");
        return fallback;
    }
    if (!it->is_number_unsigned()) throw PolicyError("policy JSON: " + what + ": \"" + key + "\" is not an unsigned number");
    return it->get<uint64_t>();
}

json condition_to_json(const ArgCondition& c) {
    json j = {{"arg", c.index}, {"op", detail::op_text(c.op)}, {"value", c.value}};
    if (c.mask != ~uint64_t{0}) j["mask"] = c.mask;
    if (c.width32) j["width32"] = true;
    return j;
}

ArgCondition condition_from(const json& j, const std::string& what) {
    if (!j.is_object()) throw PolicyError("policy JSON: " + what + " is not an object");
    ArgCondition c;
    const uint64_t index = u64_field(j, "arg", what, 0, true);
    if (index > 5) throw PolicyError("policy JSON: " + what + ": argument index " + std::to_string(index) + " (max 5)");
    c.index = static_cast<unsigned>(index);
    c.op = op_from(field(j, "op", what), what);
    c.value = u64_field(j, "value", what, 0, true);
    c.mask = u64_field(j, "mask", what, ~uint64_t{0}, false);
    if (auto it = j.find("width32"); it != j.end()) {
        if (!it->is_boolean()) throw PolicyError("policy JSON: " + what + ": \"width32\" is not a boolean");
        c.width32 = it->get<bool>();
    }
    return c;
}

}  // namespace

json policy_to_json(const Policy& policy) {
    json rules = json::array();
    for (const Rule& r : policy.rules) {
        json jr = {{"target", r.target}, {"action", detail::action_text(r.action)}, {"origin", r.origin}};
        if (!r.conditions.empty()) {
            json conds = json::array();
            for (const ArgCondition& c : r.conditions) conds.push_back(condition_to_json(c));
            jr["if"] = std::move(conds);
        }
        rules.push_back(std::move(jr));
    }
    json j = {{"format", kFormat},
              {"name", policy.name},
              {"default", detail::action_text(policy.default_action)},
              {"default_origin", policy.default_origin},
              {"rules", std::move(rules)}};
    if (policy.i386_action) {
        j["i386"] = detail::action_text(*policy.i386_action);
        j["i386_origin"] = policy.i386_origin;
    }
    return j;
}

Policy policy_from_json(const json& j) {
    if (!j.is_object()) throw PolicyError("policy JSON: not an object");
    if (string_field(j, "format", "policy") != kFormat) throw PolicyError("policy JSON: unknown format");
    Policy p;
    p.name = string_field(j, "name", "policy");
    p.default_action = action_from(field(j, "default", "policy"), "default");
    p.default_origin = string_field(j, "default_origin", "policy", false);
    if (auto it = j.find("i386"); it != j.end()) {
        p.i386_action = action_from(*it, "i386 action");
        p.i386_origin = string_field(j, "i386_origin", "policy", false);
    }
    const json& rules = field(j, "rules", "policy");
    if (!rules.is_array()) throw PolicyError("policy JSON: \"rules\" is not an array");
    if (rules.size() > kMaxRules) throw PolicyError("policy JSON: more than " + std::to_string(kMaxRules) + " rules");
    p.rules.reserve(rules.size());
    for (size_t i = 0; i < rules.size(); ++i) {
        const json& jr = rules[i];
        const std::string what = "rule #" + std::to_string(i + 1);
        if (!jr.is_object()) throw PolicyError("policy JSON: " + what + " is not an object");
        Rule r;
        r.target = string_field(jr, "target", what);
        r.action = action_from(field(jr, "action", what), what + " action");
        r.origin = string_field(jr, "origin", what, false);
        if (auto it = jr.find("if"); it != jr.end()) {
            if (!it->is_array() || it->size() > kMaxConditions)
                throw PolicyError("policy JSON: " + what + ": \"if\" is not an array of at most 6 conditions");
            for (size_t k = 0; k < it->size(); ++k)
                r.conditions.push_back(condition_from((*it)[k], what + " condition #" + std::to_string(k + 1)));
        }
        p.rules.push_back(std::move(r));
    }
    return p;
}

}  // namespace hermetic::policy
