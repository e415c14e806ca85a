#include "audit/chain.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "audit/encoding.hpp"
#include "audit/record.hpp"
#include "common/sha256.hpp"
#include "tests/unit/audit_test_util.hpp"

namespace hermetic::audit {
namespace {

using nlohmann::json;
using namespace testing;

std::vector<std::string> lines_of(const std::string& log) {
    std::vector<std::string> v;
    size_t pos = 0;
    while (pos < log.size()) {
        size_t nl = log.find('\n', pos);
        v.push_back(log.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return v;
}

// Offsets [begin, end) of each record's line, newline included.
std::vector<std::pair<size_t, size_t>> line_spans(const std::string& log) {
    std::vector<std::pair<size_t, size_t>> v;
    size_t pos = 0;
    while (pos < log.size()) {
        size_t nl = log.find('\n', pos);
        v.emplace_back(pos, nl + 1);
        pos = nl + 1;
    }
    return v;
}

TEST(AuditChain, RecordsEveryKindOfDeviationAndVerifies) {
    ChainResult res;
    Tally tally;
    std::string log = small_log("job-1", false, &res, &tally);
    auto lines = lines_of(log);
    ASSERT_EQ(lines.size(), 7u);  // start, 5 events, end
    EXPECT_EQ(res.records, 7u);
    EXPECT_EQ(res.bytes, log.size());
    EXPECT_EQ(res.file_sha256, sha256_hex(log));
    EXPECT_EQ(res.recorded, 5u);
    EXPECT_EQ(res.aggregated, 0u);

    json start = parse_line(lines[0]).body;
    EXPECT_EQ(start["kind"], "start");
    EXPECT_EQ(start["format"], kLogFormat);
    EXPECT_EQ(start["prev"], std::string(kGenesis));

    json ev = parse_line(lines[1]).body;
    EXPECT_EQ(ev["kind"], "event");
    EXPECT_EQ(ev["job"], "job-1");
    EXPECT_EQ(ev["seq"], 1);
    EXPECT_EQ(ev["n"], 1);
    EXPECT_EQ(ev["t"], 100);
    EXPECT_EQ(ev["pid"], 40002);
    EXPECT_EQ(ev["vpid"], 2);
    EXPECT_EQ(ev["exe"], "/usr/bin/date");
    EXPECT_EQ(ev["nr"], 228);
    EXPECT_EQ(ev["syscall"], "clock_gettime");
    EXPECT_EQ(ev["args"], "CLOCK_REALTIME");
    EXPECT_EQ(ev["action"], "virtualized");
    EXPECT_EQ(ev["class"], "time");
    EXPECT_EQ(ev["value"], "315532800.100");
    EXPECT_FALSE(ev.contains("real"));
    EXPECT_EQ(ev["prev"], parse_line(lines[0]).h);

    EXPECT_EQ(parse_line(lines[4]).body["action"], "reordered");
    json sock = parse_line(lines[5]).body;
    EXPECT_EQ(sock["syscall"], "socket");
    EXPECT_EQ(sock["action"], "denied");
    EXPECT_EQ(sock["class"], "network");

    json end = parse_line(lines[6]).body;
    EXPECT_EQ(end["kind"], "end");
    EXPECT_EQ(end["events"], 5);
    EXPECT_EQ(end["recorded"], 5);
    EXPECT_EQ(end["aggregated"], 0);
    EXPECT_TRUE(end["aggregating_since"].is_null());
    EXPECT_EQ(parse_line(lines[6]).h, res.head);

    EXPECT_EQ(tally.by_syscall.at("clock_gettime"), 2u);
    EXPECT_EQ(tally.by_action.at("virtualized"), 3u);
    EXPECT_EQ(tally.by_action.at("reordered"), 1u);
    EXPECT_EQ(tally.by_class.at("network"), 1u);
    ASSERT_EQ(tally.network.size(), 1u);
    EXPECT_EQ(tally.network[0].args, "AF_INET, SOCK_STREAM, 0");

    ChainReport rep = verify_chain(log);
    EXPECT_TRUE(rep.ok) << rep.error;
    EXPECT_TRUE(rep.complete);
    EXPECT_EQ(rep.records, 7u);
    EXPECT_EQ(rep.head, res.head);
    EXPECT_EQ(rep.job, "job-1");
    EXPECT_EQ(rep.by_action.at("virtualized"), 3u);
}

TEST(AuditChain, NetworkAttemptsAreListedWhateverTheirClass) {
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-net", kDefaultMaxLogBytes, false});
    Event denied = socket_try(1);
    denied.cls = "policy";  // a denial the policy routed to the supervisor
    w.append(denied);
    w.append(denied);
    Event conn = socket_try(2);
    conn.syscall = "connect";
    conn.args = "fd 3, AF_INET 93.184.216.34:443";
    conn.value = "-ENETUNREACH";
    w.append(conn);
    w.append(clock_read(3));
    w.finish();
    const Tally& t = w.tally();
    ASSERT_EQ(t.network.size(), 2u);
    EXPECT_EQ(t.network[0].syscall, "socket");
    EXPECT_EQ(t.network[0].count, 2u);
    EXPECT_EQ(t.network[1].args, "fd 3, AF_INET 93.184.216.34:443");
    EXPECT_TRUE(is_network_event("sendmsg", "policy"));
    EXPECT_FALSE(is_network_event("clock_gettime", "time"));
}

TEST(AuditChain, TraceKeepsRealValuesOnlyWhenAsked) {
    std::string traced = small_log("job-t", true);
    EXPECT_EQ(parse_line(lines_of(traced)[1]).body["real"], "1712345678.5");
    EXPECT_TRUE(verify_chain(traced).ok);

    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-p", kDefaultMaxLogBytes, false});
    w.append(clock_read(1, 2, "1712345678.5"));
    w.finish();
    EXPECT_FALSE(parse_line(lines_of(f.contents())[1]).body.contains("real"));
}

TEST(AuditChain, OneFlippedByteAnywhereFailsAtThatRecord) {
    std::string log = small_log("job-flip", true);
    auto spans = line_spans(log);
    for (uint8_t mask : {0x01, 0x20, 0x80}) {
        for (size_t i = 0; i < log.size(); ++i) {
            std::string bad = log;
            bad[i] = static_cast<char>(bad[i] ^ mask);
            ChainReport r = verify_chain(bad);
            ASSERT_FALSE(r.ok) << "flip at " << i << " went unnoticed";
            size_t rec = 0;
            while (!(spans[rec].first <= i && i < spans[rec].second)) ++rec;
            ASSERT_TRUE(r.bad_record.has_value()) << "offset " << i << ": " << r.error;
            EXPECT_EQ(*r.bad_record, rec) << "offset " << i << " mask " << int(mask) << ": " << r.error;
            EXPECT_EQ(r.error.rfind("record " + std::to_string(rec) + ":", 0), 0u) << r.error;
        }
    }
}

TEST(AuditChain, BytesTurnedIntoNewlinesFailAtThatRecord) {
    std::string log = small_log("job-nl");
    auto spans = line_spans(log);
    for (size_t i = 0; i < log.size(); i += 7) {
        if (log[i] == '\n') continue;
        std::string bad = log;
        bad[i] = '\n';
        ChainReport r = verify_chain(bad);
        size_t rec = 0;
        while (!(spans[rec].first <= i && i < spans[rec].second)) ++rec;
        ASSERT_TRUE(r.bad_record.has_value()) << i;
        EXPECT_EQ(*r.bad_record, rec) << r.error;
    }
}

TEST(AuditChain, RemovedReorderedOrTruncatedRecordsAreNamed) {
    std::string log = small_log("job-x");
    auto spans = line_spans(log);
    // Record 3 removed: record 4 now sits at position 3 and names the wrong seq.
    std::string removed = log.substr(0, spans[3].first) + log.substr(spans[3].second);
    ChainReport r = verify_chain(removed);
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 3u);
    EXPECT_NE(r.error.find("seq is 4, expected 3"), std::string::npos) << r.error;

    // Records 2 and 3 swapped.
    std::string l2 = log.substr(spans[2].first, spans[2].second - spans[2].first);
    std::string l3 = log.substr(spans[3].first, spans[3].second - spans[3].first);
    std::string swapped = log.substr(0, spans[2].first) + l3 + l2 + log.substr(spans[3].second);
    r = verify_chain(swapped);
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 2u);

    // Cut in the middle of the last record.
    r = verify_chain(log.substr(0, log.size() - 10));
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 6u);

    // Cut at a record boundary: intact but incomplete.
    r = verify_chain(log.substr(0, spans[5].first));
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.bad_record);
    EXPECT_FALSE(r.complete);
    EXPECT_EQ(r.records, 5u);
    EXPECT_NE(r.error.find("incomplete"), std::string::npos);

    // Something appended after the end.
    r = verify_chain(log + log.substr(spans[1].first, spans[1].second - spans[1].first));
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 7u);

    // A record of another job's log spliced in, hash intact.
    std::string other = small_log("job-y");
    auto ospans = line_spans(other);
    std::string spliced = log.substr(0, spans[2].first) +
                          other.substr(ospans[2].first, ospans[2].second - ospans[2].first) + log.substr(spans[3].first);
    r = verify_chain(spliced);
    ASSERT_TRUE(r.bad_record);
    EXPECT_EQ(*r.bad_record, 2u);

    EXPECT_EQ(*verify_chain("").bad_record, 0u);
}

TEST(AuditChain, FloodOfAMillionClockReadsStaysInItsBoundWithExactCounts) {
    constexpr uint64_t kBound = 64 << 10;
    constexpr uint64_t kReads = 1'000'000;
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-flood", kBound, false});
    w.append(dir_read(1, 3));
    for (uint64_t i = 0; i < kReads; ++i) w.append(clock_read(static_cast<int64_t>(10 + i)));
    // After the flood: a new kind of event is still written one by one.
    w.append(socket_try(2'000'000, 4));
    w.append(socket_try(2'000'001, 4));  // a repeat: aggregated
    ChainResult res = w.finish();
    std::string log = f.contents();

    EXPECT_LE(log.size(), kBound);
    EXPECT_EQ(res.bytes, log.size());
    const Tally& t = w.tally();
    EXPECT_EQ(t.events, kReads + 3);
    EXPECT_EQ(t.by_syscall.at("clock_gettime"), kReads);
    EXPECT_EQ(t.by_syscall.at("socket"), 2u);
    EXPECT_EQ(t.by_action.at("virtualized"), kReads);
    EXPECT_EQ(t.by_action.at("denied"), 2u);
    EXPECT_EQ(t.by_class.at("time"), kReads);
    EXPECT_EQ(res.recorded + res.aggregated, kReads + 3);
    EXPECT_GT(res.aggregated, kReads - 1000);
    ASSERT_TRUE(res.aggregating_since);

    ChainReport rep = verify_chain(log);
    ASSERT_TRUE(rep.ok) << rep.error;
    EXPECT_EQ(rep.events, kReads + 3);
    EXPECT_EQ(rep.by_action.at("virtualized"), kReads);

    // The log says exactly what was aggregated: one clock_gettime aggregate and
    // one socket aggregate, with exact counts; the first socket is a record.
    uint64_t clock_records = 0, clock_aggregated = 0, socket_records = 0, socket_aggregated = 0;
    for_each_record(log, [&](uint64_t, const ParsedLine& p) {
        const json& b = p.body;
        if (b["kind"] == "event" && b["syscall"] == "clock_gettime") ++clock_records;
        if (b["kind"] == "event" && b["syscall"] == "socket") ++socket_records;
        if (b["kind"] == "aggregate" && b["syscall"] == "clock_gettime") {
            clock_aggregated += b["count"].get<uint64_t>();
            EXPECT_EQ(b["last_n"], kReads + 1);
            EXPECT_EQ(b["first_n"], *res.aggregating_since);
        }
        if (b["kind"] == "aggregate" && b["syscall"] == "socket") socket_aggregated += b["count"].get<uint64_t>();
    });
    EXPECT_EQ(clock_records + clock_aggregated, kReads);
    EXPECT_EQ(socket_records, 1u);
    EXPECT_EQ(socket_aggregated, 1u);
}

// Clock reads the supervisor served in-process arrive as one event with a
// count: its first read is a record, the rest an exact aggregate.
TEST(AuditChain, ABatchEventCountsEveryReadExactly) {
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-batch", kDefaultMaxLogBytes, false});
    w.append(random_read(1));
    Event batch = clock_read(2);
    batch.count = 1'000'000;
    w.append(batch);
    w.append(random_read(3));
    ChainResult res = w.finish();
    EXPECT_EQ(w.tally().events, 1'000'002u);
    EXPECT_EQ(w.tally().by_syscall.at("clock_gettime"), 1'000'000u);
    EXPECT_EQ(res.recorded, 3u);
    EXPECT_EQ(res.aggregated, 999'999u);
    ASSERT_TRUE(res.aggregating_since.has_value());
    EXPECT_EQ(*res.aggregating_since, 3u);
    ChainReport rep = verify_chain(f.contents());
    EXPECT_TRUE(rep.ok) << rep.error;
    EXPECT_EQ(rep.events, 1'000'002u);
}

TEST(AuditChain, ANewKindIsWrittenEvenWhenEveryAggregationSlotIsTaken) {
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-tiny", kMinMaxLogBytes, false});  // one slot
    for (int i = 0; i < 5000; ++i) w.append(clock_read(i));
    w.append(random_read(6000));
    w.append(socket_try(6001, 4));
    w.append(socket_try(6002, 4));
    ChainResult res = w.finish();
    std::string log = f.contents();
    EXPECT_LE(log.size(), kMinMaxLogBytes);
    ASSERT_TRUE(verify_chain(log).ok);
    uint64_t sockets = 0, randoms = 0, catch_all = 0;
    for_each_record(log, [&](uint64_t, const ParsedLine& p) {
        if (p.body["kind"] == "event" && p.body["syscall"] == "socket") ++sockets;
        if (p.body["kind"] == "event" && p.body["syscall"] == "getrandom") ++randoms;
        if (p.body["kind"] == "aggregate" && p.body["syscall"] == "*") catch_all += p.body["count"].get<uint64_t>();
    });
    EXPECT_EQ(sockets, 1u);
    EXPECT_EQ(randoms, 1u);
    EXPECT_EQ(catch_all, 1u);  // the second socket
    EXPECT_EQ(res.recorded + res.aggregated, 5003u);
}

TEST(AuditChain, ManyDistinctKindsFallIntoCatchAllsWithinTheBound) {
    constexpr uint64_t kBound = 16 << 10;
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-kinds", kBound, false});
    for (int i = 0; i < 20000; ++i) {
        Event e = clock_read(i);
        e.syscall = "sys" + std::to_string(i % 5000);
        e.cls = "class" + std::to_string(i % 300);
        e.action = static_cast<Action>(i % kActionCount);
        w.append(e);
    }
    ChainResult res = w.finish();
    std::string log = f.contents();
    EXPECT_LE(log.size(), kBound);
    ChainReport rep = verify_chain(log);
    ASSERT_TRUE(rep.ok) << rep.error;
    EXPECT_EQ(rep.events, 20000u);
    uint64_t sum = 0;
    for (const auto& [k, v] : w.tally().by_syscall) sum += v;
    EXPECT_EQ(sum, 20000u);
    EXPECT_LE(w.tally().by_syscall.size(), kMaxSummaryKeys + 1);
    EXPECT_EQ(w.tally().by_syscall.at(kOtherKey), 5000u * 4 - kMaxSummaryKeys * 4);
    bool catch_all = false;
    for_each_record(log, [&](uint64_t, const ParsedLine& p) {
        if (p.body["kind"] == "aggregate" && p.body["syscall"] == "*") catch_all = true;
    });
    EXPECT_TRUE(catch_all);
    EXPECT_EQ(res.recorded + res.aggregated, 20000u);
}

TEST(AuditChain, HostileStringsAreBoundedAndKeptValidJson) {
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-s", kMinMaxLogBytes * 4, true});
    Event e = clock_read(1);
    e.exe = std::string("/tmp/\xff\xfe\"\\\n") + std::string(10000, 'x');
    e.args = std::string(5000, '\x01');
    e.value = "caf\xc3\xa9 \xc3";
    e.real_value = std::string(100000, 'r');
    e.syscall = "evil\"name with spaces" + std::string(200, 'z');
    w.append(e);
    w.finish();
    std::string log = f.contents();
    ASSERT_TRUE(verify_chain(log).ok);
    json b = parse_line(lines_of(log)[1]).body;
    std::string exe = b["exe"];
    EXPECT_EQ(exe.rfind("/tmp/\\xff\\xfe\"\\\n", 0), 0u);
    EXPECT_NE(exe.find("...[+"), std::string::npos);
    EXPECT_LE(exe.size(), kMaxExe + 32);
    EXPECT_EQ(b["value"], "caf\xc3\xa9 \\xc3");
    EXPECT_LE(b["real"].get<std::string>().size(), kMaxValue + 32);
    std::string sc = b["syscall"];
    EXPECT_LE(sc.size(), kMaxSyscallName);
    EXPECT_EQ(sc.find('"'), std::string::npos);
    EXPECT_EQ(sc.find(' '), std::string::npos);
}

// The writer assembles event bodies itself (for speed); they must be exactly
// what nlohmann's dump of the same object gives, whatever the strings hold.
TEST(AuditChain, EventBodiesAreByteForByteNlohmannDumps) {
    std::mt19937_64 rng(12345);
    auto random_text = [&](size_t max) {
        std::string s(rng() % max, '\0');
        for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 32 + rng() % 95);
        return s;
    };
    MemFile f;
    ChainWriter w(f.fd.get(), ChainOptions{"job-enc", 64ull << 20, true});
    for (int i = 0; i < 3000; ++i) {
        Event e;
        e.vtime_ns = static_cast<int64_t>(rng()) * (i % 2 ? -1 : 1);
        e.pid = static_cast<int64_t>(rng() % 100000) - 50;
        e.vpid = static_cast<int64_t>(rng() % 1000);
        e.syscall_nr = static_cast<int>(rng() % 500) - 1;
        e.exe = random_text(300);
        e.syscall = random_text(80);
        e.args = random_text(700);
        e.action = static_cast<Action>(rng() % kActionCount);
        e.cls = random_text(40);
        e.value = random_text(700);
        if (i % 3) e.real_value = random_text(700);
        w.append(e);
    }
    w.finish();
    std::string log = f.contents();
    ASSERT_TRUE(verify_chain(log).ok);
    size_t events = 0;
    for (const auto& line : lines_of(log)) {
        std::string body = "{" + line.substr(72);  // {"h":"<64 hex>",
        ASSERT_EQ(json::parse(body).dump(), body);
        events += json::parse(body)["kind"] == "event";
    }
    EXPECT_EQ(events, 3000u);
}

TEST(AuditChain, RejectsABoundBelowTheMinimumAndBadJobIds) {
    MemFile f;
    EXPECT_THROW(ChainWriter(f.fd.get(), ChainOptions{"job", kMinMaxLogBytes - 1, false}), std::invalid_argument);
    EXPECT_THROW(ChainWriter(f.fd.get(), ChainOptions{"../etc", kDefaultMaxLogBytes, false}), std::invalid_argument);
    EXPECT_THROW(ChainWriter(f.fd.get(), ChainOptions{"", kDefaultMaxLogBytes, false}), std::invalid_argument);
}

TEST(AuditChain, BoundHoldsForEveryBoundAndEventMix) {
    for (uint64_t bound : {kMinMaxLogBytes, kMinMaxLogBytes + 1, uint64_t{20000}, uint64_t{100000}}) {
        for (int variant = 0; variant < 3; ++variant) {
            MemFile f;
            ChainWriter w(f.fd.get(), ChainOptions{"job-b", bound, variant == 1});
            for (int i = 0; i < 3000; ++i) {
                Event e = variant == 2 ? socket_try(i, i % 7) : clock_read(i, i % 5, "real");
                if (i % 97 == 0) e.syscall = "s" + std::to_string(i);
                w.append(e);
            }
            w.finish();
            std::string log = f.contents();
            EXPECT_LE(log.size(), bound) << bound << "/" << variant;
            ChainReport r = verify_chain(log);
            EXPECT_TRUE(r.ok) << r.error;
            EXPECT_EQ(r.events, 3000u);
        }
    }
}

TEST(AuditEncoding, Base64RoundTripsAndIsStrict) {
    for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                          std::string("\0\xff\x10 binary", 10)})
        EXPECT_EQ(base64_decode(base64_encode(s)), s);
    EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
    EXPECT_THROW(base64_decode("aGVsbG8"), FormatError);
    EXPECT_THROW(base64_decode("aGVs bG8="), FormatError);
    EXPECT_THROW(base64_decode("aG=sbG8="), FormatError);
}

}  // namespace
}  // namespace hermetic::audit
