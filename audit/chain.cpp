#include "audit/chain.hpp"

#include <algorithm>

#include "audit/encoding.hpp"
#include "common/io.hpp"

namespace hermetic::audit {

using nlohmann::json;

namespace {

const std::string& checked_job(const std::string& job) {
    if (!is_valid_job_id(job)) throw std::invalid_argument("audit log: invalid job id");
    return job;
}

}  // namespace

ChainWriter::ChainWriter(int fd, ChainOptions options)
    : fd_(fd), opt_(std::move(options)), prev_(kGenesis) {
    checked_job(opt_.job);
    if (opt_.max_bytes < kMinMaxLogBytes)
        throw std::invalid_argument("audit log bound " + std::to_string(opt_.max_bytes) + " is below the minimum of " +
                                    std::to_string(kMinMaxLogBytes) + " bytes");
    // A quarter of the bound holds the tail (aggregates + end); an eighth stays for
    // events of kinds not seen before the bound was reached.
    uint64_t tail_slots = (opt_.max_bytes / 4 - kMaxEndLine) / kMaxAggregateLine;
    max_fine_keys_ = static_cast<size_t>(std::clamp<int64_t>(static_cast<int64_t>(tail_slots) - kActionCount, 1, 4096));
    novel_reserve_ = opt_.max_bytes / 8;
    for (int a = 0; a < kActionCount; ++a) {
        catch_all_[a].syscall = "*";
        catch_all_[a].cls = "*";
        catch_all_[a].action = to_string(static_cast<Action>(a));
    }
    emit(json{{"kind", "start"}, {"format", kLogFormat}, {"job", opt_.job}, {"bound", opt_.max_bytes},
              {"trace", opt_.trace}});
}

uint64_t ChainWriter::reserve(size_t keys) const {
    return (keys + kActionCount) * kMaxAggregateLine + kMaxEndLine;
}

void ChainWriter::emit(json body) {
    body["seq"] = seq_;
    body["prev"] = prev_;
    commit(body.dump(-1, ' ', false, json::error_handler_t::replace));
}

void ChainWriter::commit(std::string_view body_text) {
    size_t start = buf_.size();
    prev_ = append_line(buf_, body_text, line_hash_);
    std::string_view line(buf_.data() + start, buf_.size() - start);
    ++seq_;
    bytes_ += line.size();
    file_hash_.update(line);
    if (buf_.size() >= opt_.buffer_bytes) flush();
}

void ChainWriter::flush() {
    if (buf_.empty()) return;
    write_all(fd_, buf_);
    buf_.clear();
}

void ChainWriter::add_to(Slot& s, uint64_t n, int64_t t) {
    if (s.count++ == 0) s.first_n = n, s.first_t = t;
    s.last_n = n;
    s.last_t = t;
}

void ChainWriter::count(const Event& e, const std::string& syscall, const std::string& cls, uint64_t k) {
    auto bump = [k](std::map<std::string, uint64_t>& m, const std::string& key) {
        auto it = m.find(key);
        if (it != m.end()) it->second += k;
        else if (m.size() < kMaxSummaryKeys) m.emplace(key, k);
        else m[kOtherKey] += k;
    };
    bump(tally_.by_syscall, syscall);
    tally_.by_action[to_string(e.action)] += k;
    bump(tally_.by_class, cls);
    if (is_network_event(syscall, cls)) {
        std::string args = bounded_text(e.args, 128);
        std::string key = syscall + '\x1f' + to_string(e.action) + '\x1f' + args;
        auto it = network_index_.find(key);
        if (it != network_index_.end()) {
            tally_.network[it->second].count += k;
        } else if (tally_.network.size() < kMaxNetworkEntries) {
            network_index_.emplace(key, tally_.network.size());
            tally_.network.push_back({syscall, to_string(e.action), std::move(args), k});
        } else {
            tally_.network_other += k;
        }
    } else if (cls == "unvirtualizable") {
        auto& u = tally_.unvirtualizable;
        if (u.size() < kMaxUnvirtualizable && std::find(u.begin(), u.end(), syscall) == u.end()) u.push_back(syscall);
    }
}

bool is_network_event(const std::string& syscall, const std::string& cls) {
    static const std::unordered_map<std::string, bool> kSocketCalls = {
        {"socket", true},  {"socketpair", true}, {"connect", true},  {"bind", true},    {"listen", true},
        {"accept", true},  {"accept4", true},    {"sendto", true},   {"sendmsg", true}, {"sendmmsg", true},
        {"recvfrom", true}, {"recvmsg", true},   {"recvmmsg", true}, {"socketcall", true}};
    return cls == "network" || kSocketCalls.count(syscall) != 0;
}

void ChainWriter::append(const Event& e) {
    if (finished_) throw std::logic_error("audit log: append after finish");
    append_one(e);
    if (e.count > 1) append_repeats(e, e.count - 1);
}

// The rest of a batch: counted exactly, into the aggregate of the batch's kind
// (its first event was just written or aggregated like any other).
void ChainWriter::append_repeats(const Event& e, uint64_t k) {
    const uint64_t first = tally_.events + 1;
    tally_.events += k;
    std::string syscall = bounded_ident(e.syscall, kMaxSyscallName);
    std::string cls = bounded_ident(e.cls, kMaxClass);
    const char* action = to_string(e.action);
    count(e, syscall, cls, k);
    std::string key = syscall + '\x1f' + action + '\x1f' + cls;
    auto it = fine_.find(key);
    Slot* slot;
    if (it != fine_.end()) {
        slot = &it->second;
    } else if (fine_.size() < max_fine_keys_ && bytes_ + reserve(fine_.size() + 1) <= opt_.max_bytes) {
        slot = &fine_.emplace(std::move(key), Slot{syscall, action, cls}).first->second;
    } else {
        slot = &catch_all_[static_cast<int>(e.action)];
    }
    if (!aggregating_since_) aggregating_since_ = first;
    aggregated_ += k;
    add_to(*slot, first, e.vtime_ns);
    slot->count += k - 1;
    slot->last_n = first + k - 1;
}

void ChainWriter::append_one(const Event& e) {
    const uint64_t n = ++tally_.events;
    std::string syscall = bounded_ident(e.syscall, kMaxSyscallName);
    std::string cls = bounded_ident(e.cls, kMaxClass);
    const char* action = to_string(e.action);
    count(e, syscall, cls);

    std::string key = syscall;
    key += '\x1f';
    key += action;
    key += '\x1f';
    key += cls;
    auto it = fine_.find(key);
    const bool known = it != fine_.end();
    const bool can_add = !known && fine_.size() < max_fine_keys_;
    // Novelty is remembered apart from aggregation slots, so that a new kind is
    // still written one by one when the slots (bounded by the log's tail
    // reserve) are all taken; its repeats then go to a catch-all.
    const bool novel = !seen_.count(key) && seen_.size() < kMaxSeenKeys;

    // Before the bound every event is a candidate; after it, only a new kind.
    if (!aggregating_ || novel) {
        Event bounded;
        bounded.vtime_ns = e.vtime_ns;
        bounded.pid = e.pid;
        bounded.vpid = e.vpid;
        bounded.syscall_nr = e.syscall_nr;
        bounded.action = e.action;
        bounded.exe = bounded_text(e.exe, kMaxExe);
        bounded.args = bounded_text(e.args, kMaxArgs);
        bounded.value = bounded_text(e.value, kMaxValue);
        const bool with_real = opt_.trace && e.real_value;
        if (with_real) bounded.real_value = bounded_text(*e.real_value, kMaxValue);
        text_.clear();
        encode_event_body(text_, opt_.job, n, seq_, prev_, bounded, syscall, cls, with_real);
        uint64_t need = bytes_ + text_.size() + kLineOverhead + reserve(fine_.size() + (can_add ? 1 : 0)) +
                        (aggregating_ ? 0 : novel_reserve_);
        if (need <= opt_.max_bytes) {
            if (novel) seen_.insert(key);
            if (can_add) fine_.emplace(std::move(key), Slot{syscall, action, cls});
            commit(text_);
            ++recorded_;
            return;
        }
        if (!aggregating_) {
            aggregating_ = true;
            aggregating_since_ = n;
        }
    }
    ++aggregated_;
    Slot* slot;
    if (known) {
        slot = &it->second;
    } else if (can_add && bytes_ + reserve(fine_.size() + 1) <= opt_.max_bytes) {
        slot = &fine_.emplace(std::move(key), Slot{syscall, action, cls}).first->second;
    } else {
        slot = &catch_all_[static_cast<int>(e.action)];
    }
    add_to(*slot, n, e.vtime_ns);
}

ChainResult ChainWriter::finish() {
    if (finished_) throw std::logic_error("audit log: finished twice");
    finished_ = true;
    std::vector<const Slot*> slots;
    for (const auto& [k, s] : fine_)
        if (s.count) slots.push_back(&s);
    std::sort(slots.begin(), slots.end(), [](const Slot* a, const Slot* b) {
        return std::tie(a->syscall, a->action, a->cls) < std::tie(b->syscall, b->action, b->cls);
    });
    for (const auto& s : catch_all_)
        if (s.count) slots.push_back(&s);
    uint64_t aggregate_records = 0;
    for (const Slot* s : slots) {
        uint64_t before = bytes_;
        emit(json{{"kind", "aggregate"},
                  {"job", opt_.job},
                  {"syscall", s->syscall},
                  {"action", s->action},
                  {"class", s->cls},
                  {"count", s->count},
                  {"first_n", s->first_n},
                  {"last_n", s->last_n},
                  {"first_t", s->first_t},
                  {"last_t", s->last_t}});
        if (bytes_ - before > kMaxAggregateLine) throw std::logic_error("audit aggregate record over its bound");
        ++aggregate_records;
    }
    uint64_t before = bytes_;
    emit(json{{"kind", "end"},
              {"job", opt_.job},
              {"events", tally_.events},
              {"recorded", recorded_},
              {"aggregated", aggregated_},
              {"aggregates", aggregate_records},
              {"aggregating_since", aggregating_since_ ? json(*aggregating_since_) : json(nullptr)}});
    if (bytes_ - before > kMaxEndLine) throw std::logic_error("audit end record over its bound");
    flush();
    ChainResult r;
    r.head = prev_;
    r.records = seq_;
    r.bytes = bytes_;
    r.file_sha256 = file_hash_.hex_digest();
    r.recorded = recorded_;
    r.aggregated = aggregated_;
    r.aggregate_records = aggregate_records;
    r.aggregating_since = aggregating_since_;
    return r;
}

namespace {

void put_string(std::string& out, const std::string& s) {
    // Valid UTF-8 already (bounded_text); `replace` is only a second guard.
    out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

void encode_event_body(std::string& out, const std::string& job, uint64_t n, uint64_t seq, const std::string& prev,
                       const Event& e, const std::string& syscall, const std::string& cls, bool with_real) {
    // Keys in nlohmann's (std::map) order.
    out += "{\"action\":\"";
    out += to_string(e.action);
    out += "\",\"args\":";
    put_string(out, e.args);
    out += ",\"class\":\"";
    out += cls;
    out += "\",\"exe\":";
    put_string(out, e.exe);
    out += ",\"job\":\"";
    out += job;
    out += "\",\"kind\":\"event\",\"n\":";
    out += std::to_string(n);
    out += ",\"nr\":";
    out += std::to_string(e.syscall_nr);
    out += ",\"pid\":";
    out += std::to_string(e.pid);
    out += ",\"prev\":\"";
    out += prev;
    out += '"';
    if (with_real && e.real_value) {
        out += ",\"real\":";
        put_string(out, *e.real_value);
    }
    out += ",\"seq\":";
    out += std::to_string(seq);
    out += ",\"syscall\":\"";
    out += syscall;
    out += "\",\"t\":";
    out += std::to_string(e.vtime_ns);
    out += ",\"value\":";
    put_string(out, e.value);
    out += ",\"vpid\":";
    out += std::to_string(e.vpid);
    out += '}';
}

// ---------------------------------------------------------------------------
// Verification

namespace {

struct BadRecord : std::runtime_error {
    using std::runtime_error::runtime_error;
};

const json& field(const json& b, const char* k) {
    auto it = b.find(k);
    if (it == b.end()) throw BadRecord(std::string("\"") + k + "\" is missing");
    return *it;
}
uint64_t u64(const json& b, const char* k) {
    const json& v = field(b, k);
    if (!v.is_number_unsigned()) throw BadRecord(std::string("\"") + k + "\" is not a non-negative integer");
    return v.get<uint64_t>();
}
int64_t i64(const json& b, const char* k) {
    const json& v = field(b, k);
    if (!v.is_number_integer()) throw BadRecord(std::string("\"") + k + "\" is not an integer");
    return v.get<int64_t>();
}
const std::string& str(const json& b, const char* k) {
    const json& v = field(b, k);
    if (!v.is_string()) throw BadRecord(std::string("\"") + k + "\" is not a string");
    return v.get_ref<const std::string&>();
}
std::string action_of(const json& b) {
    const std::string& a = str(b, "action");
    if (!parse_action(a)) throw BadRecord("unknown action '" + a.substr(0, 32) + "'");
    return a;
}

}  // namespace

void for_each_record(std::string_view log, const std::function<void(uint64_t, const ParsedLine&)>& f) {
    uint64_t seq = 0;
    size_t pos = 0;
    while (pos < log.size()) {
        size_t nl = log.find('\n', pos);
        if (nl == std::string_view::npos) throw FormatError("record " + std::to_string(seq) + ": truncated (no newline)");
        ParsedLine p;
        try {
            p = parse_line(log.substr(pos, nl - pos));
        } catch (const FormatError& e) {
            throw FormatError("record " + std::to_string(seq) + ": " + e.what());
        }
        f(seq++, p);
        pos = nl + 1;
    }
}

ChainReport verify_chain(std::string_view log) {
    ChainReport r;
    r.bytes = log.size();
    r.file_sha256 = Hasher().hex(log);
    std::string prev(kGenesis);
    uint64_t seq = 0, last_n = 0, event_records = 0, aggregated = 0, aggregate_records = 0;
    bool in_aggregates = false, ended = false;
    size_t pos = 0;
    try {
        if (log.empty()) throw BadRecord("missing (the log is empty)");
        while (pos < log.size()) {
            size_t nl = log.find('\n', pos);
            if (nl == std::string_view::npos) throw BadRecord("truncated (no newline at the end)");
            ParsedLine p;
            try {
                p = parse_line(log.substr(pos, nl - pos));
            } catch (const FormatError& e) {
                throw BadRecord(e.what());
            }
            const json& b = p.body;
            if (ended) throw BadRecord("follows the end record");
            uint64_t s = u64(b, "seq");
            if (s != seq) throw BadRecord("seq is " + std::to_string(s) + ", expected " + std::to_string(seq));
            if (str(b, "prev") != prev) throw BadRecord("\"prev\" does not match the previous record's hash");
            const std::string& kind = str(b, "kind");
            if (seq == 0) {
                if (kind != "start") throw BadRecord("the first record is not a start record");
                if (str(b, "format") != kLogFormat) throw BadRecord("unknown format '" + str(b, "format").substr(0, 64) + "'");
                r.job = str(b, "job");
                if (!is_valid_job_id(r.job)) throw BadRecord("invalid job id");
                r.bound = u64(b, "bound");
                const json& t = field(b, "trace");
                if (!t.is_boolean()) throw BadRecord("\"trace\" is not a boolean");
                r.trace = t.get<bool>();
            } else {
                if (str(b, "job") != r.job) throw BadRecord("belongs to job '" + str(b, "job").substr(0, 64) + "', not '" + r.job + "'");
                if (kind == "event") {
                    if (in_aggregates) throw BadRecord("event record after the aggregate records");
                    uint64_t n = u64(b, "n");
                    if (n <= last_n) throw BadRecord("event number " + std::to_string(n) + " does not increase");
                    last_n = n;
                    i64(b, "t"), i64(b, "pid"), i64(b, "vpid"), i64(b, "nr");
                    for (const char* k : {"exe", "syscall", "args", "class", "value"}) str(b, k);
                    if (b.contains("real")) {
                        if (!r.trace) throw BadRecord("carries a real value in a log without --trace");
                        str(b, "real");
                    }
                    ++r.by_action[action_of(b)];
                    ++event_records;
                } else if (kind == "aggregate") {
                    in_aggregates = true;
                    str(b, "syscall"), str(b, "class");
                    uint64_t c = u64(b, "count");
                    if (c == 0) throw BadRecord("aggregate of zero events");
                    if (u64(b, "first_n") > u64(b, "last_n")) throw BadRecord("first_n is after last_n");
                    i64(b, "first_t"), i64(b, "last_t");
                    r.by_action[action_of(b)] += c;
                    aggregated += c;
                    ++aggregate_records;
                } else if (kind == "end") {
                    r.events = u64(b, "events");
                    r.recorded = u64(b, "recorded");
                    r.aggregated = u64(b, "aggregated");
                    r.aggregate_records = u64(b, "aggregates");
                    const json& since = field(b, "aggregating_since");
                    if (!since.is_null()) r.aggregating_since = u64(b, "aggregating_since");
                    if (r.recorded != event_records)
                        throw BadRecord("says " + std::to_string(r.recorded) + " events were recorded, the log has " +
                                        std::to_string(event_records));
                    if (r.aggregated != aggregated || r.aggregate_records != aggregate_records)
                        throw BadRecord("aggregate totals do not match the aggregate records");
                    if (r.events != r.recorded + r.aggregated)
                        throw BadRecord("events != recorded + aggregated");
                    if (last_n > r.events) throw BadRecord("an event number exceeds the event total");
                    ended = true;
                } else {
                    throw BadRecord("unknown kind '" + kind.substr(0, 32) + "'");
                }
            }
            prev = p.h;
            r.head = p.h;
            ++seq;
            r.records = seq;
            pos = nl + 1;
        }
    } catch (const BadRecord& e) {
        r.bad_record = seq;
        r.error = "record " + std::to_string(seq) + ": " + e.what();
        return r;
    } catch (const json::exception& e) {
        r.bad_record = seq;
        r.error = "record " + std::to_string(seq) + ": " + e.what();
        return r;
    }
    r.complete = ended;
    if (!ended) {
        r.error = "incomplete: no end record after record " + std::to_string(seq - 1) +
                  " (the job is still running, or was cut short)";
        return r;
    }
    if (r.bytes > r.bound) {
        r.error = "the log is " + std::to_string(r.bytes) + " bytes, over its bound of " + std::to_string(r.bound);
        return r;
    }
    r.ok = true;
    return r;
}

}  // namespace hermetic::audit
