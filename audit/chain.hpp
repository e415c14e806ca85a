// The per-job audit log: a hash chain of records (record.hpp) written through a
// bounded buffer to an fd, and its verification.
//
// Records, by "kind":
//   start      seq 0: format, job, bound (bytes), trace
//   event      one deviation: n (event number, 1-based, counting every event of
//              the job), t, pid, vpid, exe, nr, syscall, args, action, class,
//              value, and with --trace real
//   aggregate  "count more events like this were not written one by one": the key
//              (syscall, action, class; "*" when the key table was full), count,
//              first_n/last_n, first_t/last_t
//   end        totals: events = recorded + aggregated, aggregates (how many
//              aggregate records), aggregating_since (first event number that was
//              aggregated, or null)
//
// Bound. The file never exceeds `max_bytes`. Events are written one by one until
// the log reaches max_bytes minus a reserve (room for one aggregate record per
// key seen, the catch-all keys (one per action) and the end record, plus an eighth of the
// bound kept for novel events). From then on a repeated event (its key already
// seen) is only counted; an event of a new key is still written while the
// reserve allows, so a late socket attempt stays visible after a clock flood.
// Nothing is dropped: every event is either a record or inside an aggregate's
// exact count, and the summary's counts cover all of them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "audit/record.hpp"
#include "audit/hasher.hpp"

namespace hermetic::audit {

inline constexpr uint64_t kDefaultMaxLogBytes = 16ull << 20;
inline constexpr uint64_t kMinMaxLogBytes = 16ull << 10;
inline constexpr size_t kMaxAggregateLine = 1024;  // checked when written
inline constexpr size_t kMaxEndLine = 1024;
inline constexpr size_t kMaxNetworkEntries = 64;
inline constexpr size_t kMaxUnvirtualizable = 64;
inline constexpr size_t kMaxSummaryKeys = 1024;  // distinct syscalls/classes in a summary
inline constexpr size_t kMaxSeenKeys = 4096;     // kinds of event remembered as already seen
inline constexpr const char* kOtherKey = "(other)";

struct NetworkAttempt {
    std::string syscall;
    std::string action;
    std::string args;  // bounded to 128 bytes
    uint64_t count = 0;
};

// Exact counts over every event of the job, written or aggregated.
struct Tally {
    uint64_t events = 0;
    std::map<std::string, uint64_t> by_syscall;  // beyond kMaxSummaryKeys names: "(other)"
    std::map<std::string, uint64_t> by_action;
    std::map<std::string, uint64_t> by_class;    // beyond kMaxSummaryKeys: "(other)"
    std::vector<NetworkAttempt> network;         // distinct (syscall, action, args): see is_network_event
    uint64_t network_other = 0;                  // network events past kMaxNetworkEntries distinct ones
    std::vector<std::string> unvirtualizable;    // syscalls of events with class "unvirtualizable"
};

struct ChainOptions {
    std::string job;  // [a-z0-9-]{1,64}
    uint64_t max_bytes = kDefaultMaxLogBytes;
    bool trace = false;  // without it, real values are never written
    size_t buffer_bytes = 64u << 10;  // written to the fd when this much is pending
};

struct ChainResult {
    std::string head;        // H of the end record
    uint64_t records = 0;    // start + events + aggregates + end
    uint64_t bytes = 0;      // file size
    std::string file_sha256; // of the whole file
    uint64_t recorded = 0;   // event records
    uint64_t aggregated = 0; // events inside aggregate records
    uint64_t aggregate_records = 0;
    std::optional<uint64_t> aggregating_since;
};

// Appends to an empty file through `fd` (borrowed; the caller fsyncs it).
// Not thread-safe: the daemon's writer serializes calls.
class ChainWriter {
public:
    ChainWriter(int fd, ChainOptions options);
    ChainWriter(const ChainWriter&) = delete;
    ChainWriter& operator=(const ChainWriter&) = delete;
    void append(const Event& e);
    // Writes what is buffered. Throws SysError.
    void flush();
    // Writes the aggregate and end records and flushes. Once.
    ChainResult finish();

    [[nodiscard]] const Tally& tally() const { return tally_; }
    [[nodiscard]] uint64_t bytes() const { return bytes_; }
    [[nodiscard]] uint64_t records() const { return seq_; }

private:
    struct Slot {
        std::string syscall, action, cls;
        uint64_t count = 0, first_n = 0, last_n = 0;
        int64_t first_t = 0, last_t = 0;
    };
    void emit(nlohmann::json body);
    void commit(std::string_view body_text);
    void count(const Event& e, const std::string& syscall, const std::string& cls, uint64_t k = 1);
    void append_one(const Event& e);
    void append_repeats(const Event& e, uint64_t k);
    static void add_to(Slot& s, uint64_t n, int64_t t);
    [[nodiscard]] uint64_t reserve(size_t keys) const;

    int fd_;
    ChainOptions opt_;
    std::string buf_;
    std::string prev_;
    uint64_t seq_ = 0;
    uint64_t bytes_ = 0;
    Hasher file_hash_;
    Hasher line_hash_;
    std::string text_;
    Tally tally_;
    std::unordered_map<std::string, size_t> network_index_;
    std::unordered_map<std::string, Slot> fine_;  // key: syscall \x1f action \x1f class
    std::unordered_set<std::string> seen_;        // keys written one by one (novelty), bounded
    Slot catch_all_[kActionCount];                // ("*", action, "*") once fine_ is full
    size_t max_fine_keys_;
    uint64_t novel_reserve_;
    bool aggregating_ = false;
    std::optional<uint64_t> aggregating_since_;
    uint64_t recorded_ = 0;
    uint64_t aggregated_ = 0;
    bool finished_ = false;
};

// The result of checking a log on its own (without its summary).
struct ChainReport {
    bool ok = false;
    std::string error;                 // "record 17: content does not match its hash"
    std::optional<uint64_t> bad_record;  // seq (position) of the first bad record
    std::string job;
    uint64_t bound = 0;
    bool trace = false;
    uint64_t records = 0;              // good records before the first bad one (all, if ok)
    std::string head;                  // H of the last good record
    bool complete = false;             // ends with an end record
    uint64_t bytes = 0;
    std::string file_sha256;
    // From the end record (when complete), checked against the records:
    uint64_t events = 0, recorded = 0, aggregated = 0, aggregate_records = 0;
    std::optional<uint64_t> aggregating_since;
    std::map<std::string, uint64_t> by_action;  // recomputed from event + aggregate records
};

// Verifies every record: framing, hash, seq, prev, kinds and fields, one job,
// nothing after the end record, and the end record's totals. Stops at the first
// bad record. A log without an end record is reported ok=false ("incomplete")
// with the chain before it intact (records/head describe that prefix).
ChainReport verify_chain(std::string_view log);

// An event record's BODY, exactly as nlohmann's dump of the same object would
// write it (keys sorted, compact): untrusted strings are escaped by nlohmann;
// the rest are integers, hex digests and identifiers (bounded_ident) that need
// no escaping. Assembled by hand only because dumping a 15-key object per
// deviation cost microseconds; unit tests check the bytes against
// nlohmann::json::parse(body).dump(). Strings must already be bounded.
void encode_event_body(std::string& out, const std::string& job, uint64_t n, uint64_t seq, const std::string& prev,
                       const Event& e, const std::string& syscall, const std::string& cls, bool with_real);

// A network attempt: class "network", or a socket-family syscall whatever class
// the supervisor gave it (a denial routed to it is class "policy").
bool is_network_event(const std::string& syscall, const std::string& cls);

// Calls f(seq, parsed) for each record in order; stops at (and throws
// FormatError "record N: ...") the first that fails parse_line. For readers that
// trust a log already verified (diff, display).
void for_each_record(std::string_view log, const std::function<void(uint64_t, const ParsedLine&)>& f);

}  // namespace hermetic::audit
