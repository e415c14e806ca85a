// hermeticd's configuration: every option from the file and from the command
// line, precedence, sizes, each validation rule and its message, --help/--version.
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "daemon/config.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace hermetic;
using namespace hermetic::daemon;
using hermetic::test::TempDir;
using hermetic::test::write_file;

constexpr uint64_t K = 1ull << 10, M = 1ull << 20, G = 1ull << 30, T = 1ull << 40;

ParsedArgs parse(std::vector<std::string> args) {
    args.insert(args.begin(), "hermeticd");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    return parse_command_line(static_cast<int>(args.size()), argv.data());
}

// The ConfigError message of parsing `text` as a config file ("" if it parses).
std::string file_error(const std::string& text, const std::string& origin = "test.conf") {
    try {
        (void)parse_config_text(text, origin);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

std::string cli_error(const std::vector<std::string>& args) {
    try {
        (void)parse(args);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

struct OptionCase {
    std::string name, value;
    std::function<void(const DaemonConfig&)> check;
};

// One non-default value for every option both the file and the command line accept.
std::vector<OptionCase> every_option() {
    return {
        {"socket", "/tmp/h/x.sock", [](const DaemonConfig& c) { EXPECT_EQ(c.socket_path, "/tmp/h/x.sock"); }},
        {"state-dir", "/srv/hstate", [](const DaemonConfig& c) { EXPECT_EQ(c.state_dir, "/srv/hstate"); }},
        {"policy-dir", "/srv/hpol", [](const DaemonConfig& c) { EXPECT_EQ(c.policy_dir, "/srv/hpol"); }},
        {"group", "builders", [](const DaemonConfig& c) { EXPECT_EQ(c.group, "builders"); }},
        {"log-level", "warn", [](const DaemonConfig& c) { EXPECT_EQ(c.log_level, "warn"); }},
        {"id-base", "200000", [](const DaemonConfig& c) { EXPECT_EQ(c.id_base, 200000u); }},
        {"id-count", "4096", [](const DaemonConfig& c) { EXPECT_EQ(c.id_count, 4096u); }},
        {"max-jobs", "3", [](const DaemonConfig& c) { EXPECT_EQ(c.max_jobs, 3u); }},
        {"max-queued", "7", [](const DaemonConfig& c) { EXPECT_EQ(c.max_queued, 7u); }},
        {"max-jobs-per-user", "2", [](const DaemonConfig& c) { EXPECT_EQ(c.max_jobs_per_user, 2u); }},
        {"max-connections", "9", [](const DaemonConfig& c) { EXPECT_EQ(c.max_connections, 9u); }},
        {"request-timeout-ms", "1500",
         [](const DaemonConfig& c) { EXPECT_EQ(c.request_timeout, std::chrono::milliseconds(1500)); }},
        {"root-dir", "/srv/root", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.root_dir, "/srv/root"); }},
        {"ro-bind", "/var/lib/dpkg",
         [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.ro_binds, std::vector<std::string>{"/var/lib/dpkg"}); }},
        {"etc-mask", "shadow",
         [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.etc_masks, std::vector<std::string>{"shadow"}); }},
        {"build-size", "2G", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.build_bytes, 2 * G); }},
        {"out-size", "3M", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.out_bytes, 3 * M); }},
        {"tmp-size", "5G", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.tmp_bytes, 5 * G); }},
        {"source-max-bytes", "1T", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.source_limits.max_bytes, T); }},
        {"source-max-files", "123", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.source_limits.max_entries, 123u); }},
        {"output-max-bytes", "7K", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.output_limits.max_bytes, 7 * K); }},
        {"output-max-files", "456", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.output_limits.max_entries, 456u); }},
        {"default-memory", "1G", [](const DaemonConfig& c) { EXPECT_EQ(c.default_memory, G); }},
        {"max-memory", "32G", [](const DaemonConfig& c) { EXPECT_EQ(c.max_memory, 32 * G); }},
        {"pids-max", "100", [](const DaemonConfig& c) { EXPECT_EQ(c.pids_max, 100u); }},
        {"cpu-limit", "1.5", [](const DaemonConfig& c) { EXPECT_DOUBLE_EQ(c.cpu_limit, 1.5); }},
        {"cpus-visible", "8", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.default_cpus_visible, 8u); }},
        {"nofile", "1024", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.nofile_limit, 1024u); }},
        {"default-timeout", "60", [](const DaemonConfig& c) { EXPECT_EQ(c.default_timeout_sec, 60u); }},
        {"max-timeout", "200000", [](const DaemonConfig& c) { EXPECT_EQ(c.max_timeout_sec, 200000u); }},
        {"log-cap", "1M", [](const DaemonConfig& c) { EXPECT_EQ(c.log_cap_bytes, M); }},
        {"max-output", "10G", [](const DaemonConfig& c) { EXPECT_EQ(c.max_output_bytes, 10 * G); }},
        {"default-epoch", "1000", [](const DaemonConfig& c) { EXPECT_EQ(c.default_epoch, 1000); }},
        {"clock-step", "50000", [](const DaemonConfig& c) { EXPECT_EQ(c.default_clock_step_ns, 50000); }},
        {"netns-pool", "5", [](const DaemonConfig& c) { EXPECT_EQ(c.netns_pool, 5u); }},
        {"sandbox-pool", "3", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox_pool, 3u); }},
        {"cgroup-root", "/sys/fs/cgroup/unified",
         [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.cgroup.root, "/sys/fs/cgroup/unified"); }},
        {"cgroup-parent", "hermetic-x", [](const DaemonConfig& c) { EXPECT_EQ(c.sandbox.cgroup.parent, "hermetic-x"); }},
    };
}

TEST(DaemonConfig, HelpListsEveryOption) {
    std::string h = help_text();
    EXPECT_NE(h.find("Usage: hermeticd"), std::string::npos);
    for (const auto& o : every_option()) EXPECT_NE(h.find("--" + o.name), std::string::npos) << o.name;
    for (const char* cli : {"--config", "--foreground", "--check-config", "--help", "--version"})
        EXPECT_NE(h.find(cli), std::string::npos) << cli;
}

TEST(DaemonConfig, EveryOptionParsesFromTheFile) {
    for (const auto& o : every_option()) {
        SCOPED_TRACE(o.name);
        DaemonConfig c;
        ASSERT_NO_THROW(c = parse_config_text(o.name + " = " + o.value + "\n", "test.conf")) << file_error(o.name + " = " + o.value);
        o.check(c);
    }
}

TEST(DaemonConfig, EveryOptionParsesFromTheFileNamedByConfig) {
    TempDir dir("hermetic-config");
    std::string text;
    for (const auto& o : every_option()) text += o.name + " = " + o.value + "\n";
    write_file(dir / "all.conf", text);
    ParsedArgs a;
    ASSERT_NO_THROW(a = parse({"--config", dir / "all.conf"})) << cli_error({"--config", dir / "all.conf"});
    for (const auto& o : every_option()) {
        SCOPED_TRACE(o.name);
        o.check(a.config);
    }
    EXPECT_EQ(a.config.config_file, dir / "all.conf");
}

TEST(DaemonConfig, EveryOptionParsesFromTheCommandLine) {
    TempDir dir("hermetic-config");
    write_file(dir / "empty.conf", "");
    for (const auto& o : every_option()) {
        SCOPED_TRACE(o.name);
        // Both spellings: "--name value" and "--name=value".
        ParsedArgs a, b;
        ASSERT_NO_THROW(a = parse({"--config", dir / "empty.conf", "--" + o.name, o.value}))
            << cli_error({"--config", dir / "empty.conf", "--" + o.name, o.value});
        o.check(a.config);
        ASSERT_NO_THROW(b = parse({"--config", dir / "empty.conf", "--" + o.name + "=" + o.value}));
        o.check(b.config);
    }
}

TEST(DaemonConfig, CommandLineOnlySwitches) {
    TempDir dir("hermetic-config");
    write_file(dir / "empty.conf", "");
    auto a = parse({"--config", dir / "empty.conf"});
    EXPECT_FALSE(a.config.foreground);
    EXPECT_FALSE(a.config.check_config);
    EXPECT_FALSE(a.print_and_exit);
    auto b = parse({"--config", dir / "empty.conf", "--foreground", "--check-config"});
    EXPECT_TRUE(b.config.foreground);
    EXPECT_TRUE(b.config.check_config);
    // They are not config-file options.
    EXPECT_NE(file_error("foreground = true\n"), "");
}

TEST(DaemonConfig, DefaultsWithoutAnyFile) {
    TempDir dir("hermetic-config");
    write_file(dir / "empty.conf", "");
    const DaemonConfig d;
    auto a = parse({"--config", dir / "empty.conf"});
    EXPECT_EQ(a.config.socket_path, d.socket_path);
    EXPECT_EQ(a.config.state_dir, d.state_dir);
    EXPECT_EQ(a.config.max_jobs, d.max_jobs);
    EXPECT_EQ(a.config.request_timeout, d.request_timeout);
    EXPECT_EQ(a.config.default_memory, d.default_memory);
    EXPECT_EQ(a.config.sandbox.build_bytes, d.sandbox.build_bytes);
    EXPECT_FALSE(a.config.sandbox.root_dir);
    EXPECT_TRUE(a.config.sandbox.ro_binds.empty());
    EXPECT_FALSE(a.config.sandbox.etc_masks.empty()) << "the default secret masks were lost";
}

TEST(DaemonConfig, MissingDefaultConfigFileIsFine) {
    if (::access("/etc/hermetic/hermeticd.conf", F_OK) == 0) GTEST_SKIP() << "this host has a default config file";
    // Without --config the default file is read only if it exists.
    ParsedArgs a;
    EXPECT_NO_THROW(a = parse({"--socket", "/tmp/x.sock"})) << cli_error({"--socket", "/tmp/x.sock"});
    EXPECT_EQ(a.config.socket_path, "/tmp/x.sock");
}

TEST(DaemonConfig, MissingExplicitConfigFileIsAnError) {
    TempDir dir("hermetic-config");
    auto e = cli_error({"--config", dir / "absent.conf"});
    EXPECT_NE(e.find(dir / "absent.conf"), std::string::npos) << e;
    EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
}

TEST(DaemonConfig, CommandLineOverridesTheFile) {
    TempDir dir("hermetic-config");
    write_file(dir / "h.conf", "max-jobs = 3\nlog-cap = 2M\nsocket = /run/file.sock\nlog-level = warn\n");
    auto a = parse({"--config", dir / "h.conf", "--max-jobs", "5", "--log-cap=8M"});
    EXPECT_EQ(a.config.max_jobs, 5u);             // command line wins
    EXPECT_EQ(a.config.log_cap_bytes, 8 * M);     // command line wins
    EXPECT_EQ(a.config.socket_path, "/run/file.sock");  // file value kept where the CLI is silent
    EXPECT_EQ(a.config.log_level, "warn");
}

TEST(DaemonConfig, RoBindIsRepeatableInTheFile) {
    auto c = parse_config_text("ro-bind = /var/lib/dpkg\nro-bind = /opt/tools\n", "t");
    EXPECT_EQ(c.sandbox.ro_binds, (std::vector<std::string>{"/var/lib/dpkg", "/opt/tools"}));
}

TEST(DaemonConfig, RoBindIsRepeatableOnTheCommandLine) {
    TempDir dir("hermetic-config");
    write_file(dir / "empty.conf", "");
    auto a = parse({"--config", dir / "empty.conf", "--ro-bind", "/a", "--ro-bind=/b"});
    EXPECT_EQ(a.config.sandbox.ro_binds, (std::vector<std::string>{"/a", "/b"}));
}

TEST(DaemonConfig, RoBindFromTheFileSurvivesACommandLineWithoutIt) {
    TempDir dir("hermetic-config");
    write_file(dir / "h.conf", "ro-bind = /var/lib/dpkg\nro-bind = /opt/tools\netc-mask = shadow\nroot-dir = /srv/r\n");
    auto a = parse({"--config", dir / "h.conf", "--max-jobs", "2"});
    EXPECT_EQ(a.config.sandbox.ro_binds, (std::vector<std::string>{"/var/lib/dpkg", "/opt/tools"}));
    EXPECT_EQ(a.config.sandbox.etc_masks, std::vector<std::string>{"shadow"});
    EXPECT_EQ(a.config.sandbox.root_dir, "/srv/r");
}

TEST(DaemonConfig, SizesTakeSuffixes) {
    struct {
        const char* text;
        uint64_t bytes;
    } cases[] = {
        {"5000000", 5000000}, {"12B", 12},       {"4K", 4 * K},   {"4KiB", 4 * K}, {"4M", 4 * M},
        {"4MiB", 4 * M},      {"4G", 4 * G},     {"4GiB", 4 * G}, {"2T", 2 * T},   {"2TiB", 2 * T},
        {"0", 0},             {"16777215T", 16777215 * T},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        DaemonConfig d;
        ASSERT_NO_THROW(d = parse_config_text(std::string("log-cap = ") + c.text + "\n", "t"))
            << file_error(std::string("log-cap = ") + c.text + "\n");
        EXPECT_EQ(d.log_cap_bytes, c.bytes);
    }
}

TEST(DaemonConfig, BadSizesAreRefusedWithTheOptionName) {
    struct {
        const char* text;
        const char* why;
    } cases[] = {
        {"4g", "unknown size suffix"},  {"4X", "unknown size suffix"}, {"1.5G", "unknown size suffix"},
        {"4 G", "unknown size suffix"}, {"G", "not a size"},           {"lots", "not a size"},
        {"99999999999999999999", "not a size"}, {"16777216T", "too large"},
        {"-1", "not a size"},           {"-4G", "not a size"},         {"+4G", "not a size"},
    };
    for (const auto& c : cases) {
        auto e = file_error(std::string("max-output = ") + c.text + "\n");
        EXPECT_NE(e.find("max-output"), std::string::npos) << c.text << ": " << e;
        EXPECT_NE(e.find(c.why), std::string::npos) << c.text << ": " << e;
    }
    EXPECT_NE(file_error("max-output =\n").find("max-output"), std::string::npos);
}

TEST(DaemonConfig, NegativeCountsAreRefused) {
    // Unsigned options must not wrap "-1" around to 4294967295.
    for (const char* opt : {"max-jobs", "max-connections", "request-timeout-ms", "pids-max", "nofile",
                            "default-timeout", "source-max-files", "max-queued"}) {
        auto e = file_error(std::string(opt) + " = -1\n");
        EXPECT_NE(e, "") << opt << " = -1 was accepted";
        EXPECT_NE(e.find(opt), std::string::npos) << e;
        EXPECT_NE(e.find("negative"), std::string::npos) << e;
    }
    auto c = cli_error({"--max-connections=-1"});
    EXPECT_NE(c.find("max-connections: must not be negative"), std::string::npos) << c;
    // Signed options keep their sign where it means something.
    EXPECT_NE(file_error("default-epoch = -5\n").find("default-epoch: must be between"), std::string::npos);
}

TEST(DaemonConfig, NotANumberIsRefusedWithTheOptionName) {
    auto e = file_error("max-jobs = many\n");
    EXPECT_NE(e.find("max-jobs"), std::string::npos) << e;
    EXPECT_NE(e.find("test.conf"), std::string::npos) << e;
    auto c = cli_error({"--max-jobs", "many"});
    EXPECT_NE(c.find("max-jobs"), std::string::npos) << c;
    EXPECT_NE(c.find("command line"), std::string::npos) << c;
}

TEST(DaemonConfig, UnknownOptionInTheFileIsAnErrorNamingIt) {
    auto e = file_error("max-jobs = 2\nfrobnicate = yes\n", "/etc/hermetic/x.conf");
    EXPECT_NE(e.find("frobnicate"), std::string::npos) << e;
    EXPECT_NE(e.find("/etc/hermetic/x.conf"), std::string::npos) << e;
    // Also through --config.
    TempDir dir("hermetic-config");
    write_file(dir / "h.conf", "frobnicate = yes\n");
    auto c = cli_error({"--config", dir / "h.conf"});
    EXPECT_NE(c.find("frobnicate"), std::string::npos) << c;
    EXPECT_NE(c.find(dir / "h.conf"), std::string::npos) << c;
}

TEST(DaemonConfig, UnknownOptionOnTheCommandLineIsAnError) {
    auto e = cli_error({"--frobnicate"});
    EXPECT_NE(e.find("frobnicate"), std::string::npos) << e;
}

TEST(DaemonConfig, HelpAndVersionPrintAndExit) {
    auto h = parse({"--help"});
    ASSERT_TRUE(h.print_and_exit);
    EXPECT_NE(h.print_and_exit->find("Usage: hermeticd"), std::string::npos);
    EXPECT_NE(h.print_and_exit->find("--ro-bind"), std::string::npos);
    auto v = parse({"--version"});
    ASSERT_TRUE(v.print_and_exit);
    EXPECT_EQ(*v.print_and_exit, "hermeticd " HERMETIC_VERSION "\n");
    // Even with a config file that would not parse.
    TempDir dir("hermetic-config");
    write_file(dir / "bad.conf", "frobnicate = 1\n");
    EXPECT_TRUE(parse({"--config", dir / "bad.conf", "--help"}).print_and_exit);
    EXPECT_TRUE(parse({"--config", dir / "bad.conf", "--version"}).print_and_exit);
}

struct ValidationCase {
    std::string text;     // config file lines
    std::string message;  // expected in the error
};

TEST(DaemonConfig, EachValidationRuleHasItsMessage) {
    const std::vector<ValidationCase> cases = {
        {"socket = relative.sock", "socket: must be an absolute path"},
        {"socket = /run/../x.sock", "socket: must be an absolute path"},
        {"state-dir = /", "state-dir: must be an absolute path other than /"},
        {"state-dir = var/lib", "state-dir: must be an absolute path other than /"},
        {"policy-dir = pol", "policy-dir: must be an absolute path"},
        {"group =", "group: must not be empty"},
        {"id-base = 1000", "id-base: must be at least 65536"},
        {"id-count = 1", "id-count: must be between 2 and 2^30"},
        {"id-count = 1073741825", "id-count: must be between 2 and 2^30"},
        {"id-base = 4294900000\nid-count = 100000", "id-base + id-count: beyond the uid range"},
        {"max-jobs = 0", "max-jobs: must be at least 1"},
        {"max-connections = 0", "max-connections: must be at least 1"},
        {"request-timeout-ms = 99", "request-timeout-ms: must be at least 100"},
        {"default-memory = 1M", "default-memory: must be at least 4M and at most max-memory"},
        {"default-memory = 20G\nmax-memory = 10G", "default-memory: must be at least 4M and at most max-memory"},
        {"pids-max = 15", "pids-max: must be at least 16"},
        {"cpu-limit = 4097", "cpu-limit: must be between 0 and 4096"},
        {"cpu-limit = -0.5", "cpu-limit: must be between 0 and 4096"},
        {"cpu-limit = nan", "cpu-limit: must be between 0 and 4096"},
        {"cpus-visible = 0", "cpus-visible: 1..4096"},
        {"cpus-visible = 4097", "cpus-visible: 1..4096"},
        {"nofile = 63", "nofile: must be 64..1048576"},
        {"nofile = 1048577", "nofile: must be 64..1048576"},
        {"default-timeout = 0", "default-timeout: must be at least 1 and at most max-timeout"},
        {"default-timeout = 100\nmax-timeout = 99", "default-timeout: must be at least 1 and at most max-timeout"},
        {"build-size = 1023K", "build-size, out-size, tmp-size: must each be at least 1M"},
        {"out-size = 1K", "build-size, out-size, tmp-size: must each be at least 1M"},
        {"tmp-size = 0", "build-size, out-size, tmp-size: must each be at least 1M"},
        {"default-epoch = -1", "default-epoch: must be between 0 and year 9999"},
        {"default-epoch = 253402300800", "default-epoch: must be between 0 and year 9999"},
        {"clock-step = 0", "clock-step: 1..1000000000 (ns)"},
        {"clock-step = 1000000001", "clock-step: 1..1000000000 (ns)"},
        {"netns-pool = 65", "netns-pool: at most 64"},
        {"sandbox-pool = 65\nid-count = 4096", "sandbox-pool: at most 64"},
        {"id-count = 8\nmax-jobs = 4\nsandbox-pool = 1", "max-jobs + sandbox-pool: each needs two ids"},
        {"root-dir = srv/root", "root-dir: must be an absolute path"},
        {"ro-bind = /", "ro-bind: must be an absolute path other than /: /"},
        {"ro-bind = var/lib/dpkg", "ro-bind: must be an absolute path other than /: var/lib/dpkg"},
        {"etc-mask = /etc/shadow", "etc-mask: must be relative to /etc: /etc/shadow"},
        {"etc-mask = ../shadow", "etc-mask: must be relative to /etc: ../shadow"},
        {"cgroup-parent = /abs", "cgroup-parent: must be a relative name"},
        {"cgroup-parent = a/../b", "cgroup-parent: must be a relative name"},
        {"cgroup-parent =", "cgroup-parent: must be a relative name"},
        {"log-level = loud", "log-level: must be one of trace, debug, info, warn, error, critical, off"},
    };
    for (const auto& c : cases) {
        auto e = file_error(c.text + "\n", "/etc/hermetic/t.conf");
        EXPECT_NE(e.find(c.message), std::string::npos) << "config: " << c.text << "\nerror: " << e;
        EXPECT_EQ(e.rfind("/etc/hermetic/t.conf", 0), 0u) << "the error must start with the file: " << e;
    }
}

TEST(DaemonConfig, ValidationAppliesToTheCommandLineToo) {
    TempDir dir("hermetic-config");
    write_file(dir / "empty.conf", "");
    auto e = cli_error({"--config", dir / "empty.conf", "--max-jobs", "0"});
    EXPECT_NE(e.find("max-jobs: must be at least 1"), std::string::npos) << e;
    EXPECT_EQ(e.rfind("command line", 0), 0u) << e;
}

TEST(DaemonConfig, BoundaryValuesAreAccepted) {
    for (const char* ok : {"id-base = 65536", "id-count = 1073741824", "request-timeout-ms = 100",
                           "default-memory = 4M", "pids-max = 16", "cpu-limit = 0", "cpu-limit = 4096",
                           "cpus-visible = 4096", "nofile = 64", "nofile = 1048576", "build-size = 1M",
                           "default-epoch = 0", "default-epoch = 253402300799", "clock-step = 1",
                           "clock-step = 1000000000", "netns-pool = 64",
                           "netns-pool = 0", "sandbox-pool = 0", "log-level = off"}) {
        EXPECT_EQ(file_error(std::string(ok) + "\n"), "") << ok;
    }
}

TEST(DaemonConfig, CommentsAndBlankLinesAreIgnored) {
    auto c = parse_config_text("# a comment\n\nmax-jobs = 2 # trailing\n   \n", "t");
    EXPECT_EQ(c.max_jobs, 2u);
}

// Found by fuzz/fuzz_config.cpp: Boost's message for a bad value that itself
// holds one of its placeholders ("%value%") never finished. Refused up front,
// quickly (a hang here would be the test's timeout).
TEST(DaemonConfig, PercentSignsAreRefusedBeforeBoostSeesThem) {
    EXPECT_EQ(file_error("max-jobs = 1%value%\n"), "test.conf: line 1: '%' is not allowed in option names or values");
    EXPECT_EQ(file_error("# 100% fine in a comment\nmax-jobs = 2\n"), "");
    const char* argv[] = {"hermeticd", "--max-jobs", "%value%"};
    try {
        (void)parse_command_line(3, argv);
        ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("'%' is not allowed"), std::string::npos) << e.what();
    }
}

}  // namespace
