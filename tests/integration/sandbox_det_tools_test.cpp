// Real tools under the determinism engine: each script runs twice in a mini
// sandbox under perturbation (real time >= 1 s apart, another CPU, the source
// tree created in reverse order) and must print the same bytes; what it prints
// includes the SHA-256 of every artifact it made. Tools that are not installed
// are skipped by the scripts themselves ("skip: NAME").
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include "sandbox/determinism/mini_sandbox.hpp"

namespace hermetic::sandbox::determinism {
namespace {

using namespace std::chrono_literals;

std::string first_difference(const std::string& a, const std::string& b) {
    std::istringstream ia(a), ib(b);
    std::string la, lb;
    for (int n = 1;; ++n) {
        bool ga = static_cast<bool>(std::getline(ia, la)), gb = static_cast<bool>(std::getline(ib, lb));
        if (!ga && !gb) return "no difference";
        if (ga != gb || la != lb)
            return "line " + std::to_string(n) + ":\n  first:  " + (ga ? la : "<end>") + "\n  second: " + (gb ? lb : "<end>");
    }
}

// A small multi-file C project (make -j4), a Python module, a Java class.
std::vector<std::pair<std::string, std::string>> project() {
    std::vector<std::pair<std::string, std::string>> f = {{"proj/", ""}, {"proj/src/", ""}, {"tree/", ""}, {"tree/sub/", ""}};
    std::string objs;
    for (int i = 0; i < 12; ++i) {
        std::string n = std::to_string(i);
        f.push_back({"proj/src/m" + n + ".c",
                     "#include \"common.h\"\nint f" + n + "(int x) { return x * " + n + " + COMMON; }\n"
                     "const char* when" + n + "(void) { return __DATE__ \" \" __TIME__; }\n"});
        objs += " src/m" + n + ".o";
    }
    f.push_back({"proj/src/common.h", "#define COMMON 7\n"});
    std::string main_c = "#include <stdio.h>\n";
    for (int i = 0; i < 12; ++i) main_c += "int f" + std::to_string(i) + "(int);\n";
    main_c += "int main(void) { int s = 0;\n";
    for (int i = 0; i < 12; ++i) main_c += "  s += f" + std::to_string(i) + "(s);\n";
    main_c += "  printf(\"%d\\n\", s); return 0; }\n";
    f.push_back({"proj/src/main.c", main_c});
    f.push_back({"proj/Makefile",
                 "OBJS =" + objs + " src/main.o\n"
                 "all: prog libm.a stamp\n"
                 "prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n"
                 "libm.a: $(OBJS)\n\tar rc $@ $(OBJS)\n"
                 "stamp: prog libm.a\n\tdate > $@\n"
                 "src/%.o: src/%.c src/common.h\n\t$(CC) -O2 -c -o $@ $<\n"});
    for (const char* n : {"zeta", "alpha", "Mike", "beta", "_under", "9nine", "sub/inner"})
        f.push_back({std::string("tree/") + n, std::string("content of ") + n + "\n"});
    f.push_back({"tree/mod.py", "import time\nSTAMP = 1\ndef f():\n    return {'a': 1, 'b': 2}\n"});
    // The JVM's main thread reads its clock after start-up, and how many timed
    // waits it made by then depends on its service threads' scheduling (each
    // wait advances the clock by its timeout): README.md "Limits". Its random
    // bytes are keyed by thread pedigree, so the UUID must match. For the same
    // reason the jar is made with --date (as reproducible Java builds do): its
    // entries would carry javac's clock (Hello.class's mtime) and jar's own,
    // and a loaded CI host once put them a DOS 2-second step apart.
    f.push_back({"Hello.java", "public class Hello { public static void main(String[] a) { System.out.println(\"hi \" + java.util.UUID.randomUUID()); } }\n"});
    return f;
}

const char* kScript = R"SH(
set -u
cd /build
have() { command -v "$1" >/dev/null 2>&1 || { echo "skip: $1"; return 1; }; }
echo "== identity"
hostname; uname -a; nproc; getconf _NPROCESSORS_ONLN; id
echo "== time"
date; date +%s.%N; date -u +%FT%T
echo "== order"
ls -f tree | head -20
ls -la --full-time --time-style=+%s.%N tree | sed 1d
find tree | head -20
find tree -newer tree/zeta | sort
stat -c '%n %i %Y %Z %W %h %s' tree/* tree/sub/*
echo "== archives"
tar -cf /tmp/t.tar tree && sha256sum /tmp/t.tar
tar --sort=none -czf /tmp/t.tgz tree && sha256sum /tmp/t.tgz
gzip -c tree/alpha > /tmp/a.gz && sha256sum /tmp/a.gz
gzip -c < tree/alpha > /tmp/b.gz && sha256sum /tmp/b.gz
have zip && { zip -q -X -r /tmp/t.zip tree && sha256sum /tmp/t.zip; zip -q -r /tmp/t2.zip tree && sha256sum /tmp/t2.zip; }
echo "== shells"
echo "random $RANDOM $RANDOM"
t=$(mktemp); echo "mktemp $t"; d=$(mktemp -d); echo "mktemp -d $d"
have perl && perl -e 'print "perl ", time, " ", rand(), " ", join(",", sort keys %{{map { $_ => 1 } qw(a b c d e)}}), " ", join(",", keys %{{map { $_ => 1 } qw(a b c d e f g h)}}), "\n"'
echo "== python"
have python3 && {
python3 -c 'import time, os, uuid, random, tempfile; print(time.time(), time.monotonic(), os.urandom(8).hex(), uuid.uuid4(), uuid.uuid1(), random.random(), hash("abc"), list({"a","b","c","d","e"}), tempfile.mktemp(), os.cpu_count(), len(os.sched_getaffinity(0)))'
python3 -c 'import time; t=time.monotonic(); time.sleep(0.3); print("slept", round(time.monotonic()-t, 3))'
python3 -c 'import py_compile; py_compile.compile("tree/mod.py", cfile="/tmp/mod.pyc")' && sha256sum /tmp/mod.pyc
python3 -c 'import threading, queue; q=queue.Queue(); print("queue timeout", q.get(timeout=0.2) if False else "ok"); threading.Event().wait(0.2); print("event waited")'
}
echo "== c"
have gcc && {
printf '#include <stdio.h>\nint main(void){printf("%%s %%s\\n", __DATE__, __TIME__);return 0;}\n' > /tmp/d.c
env -u SOURCE_DATE_EPOCH gcc -o /tmp/d /tmp/d.c && /tmp/d && sha256sum /tmp/d
gcc -o /tmp/d2 /tmp/d.c && /tmp/d2
cd proj && env -u SOURCE_DATE_EPOCH make -s -j4 CC=gcc && ./prog && sha256sum prog libm.a src/*.o && cat stamp
env -u SOURCE_DATE_EPOCH make -j4 CC=gcc 2>&1 | sed 's/^make\[[0-9]*\]/make/'; ar tv libm.a | head -3; cd /build
}
echo "== java"
have javac && {
javac -d /tmp/jc Hello.java && sha256sum /tmp/jc/Hello.class
java -Xshare:off -cp /tmp/jc Hello
(cd /tmp/jc && jar --date=2023-11-14T22:13:20Z cf /tmp/h.jar Hello.class) && sha256sum /tmp/h.jar
}
echo "== done"
)SH";

TEST(DetTools, RealToolsTwiceByteIdentical) {
    MiniSandboxOptions o;
    o.argv = {"/bin/bash", "/build/run.sh"};
    o.files = project();
    o.files.push_back({"run.sh", kScript});
    o.config.seed = 7;
    o.config.epoch = 1700000000;
    o.config.cpus = 4;
    o.cpu = 0;
    auto t0 = std::chrono::steady_clock::now();
    MiniSandboxResult a = run_mini_sandbox(o);
    std::this_thread::sleep_for(1100ms);
    o.cpu = ::sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0;
    std::reverse(o.files.begin(), o.files.end());
    auto dirs_end = std::stable_partition(o.files.begin(), o.files.end(), [](const auto& f) { return f.first.back() == '/'; });
    std::sort(o.files.begin(), dirs_end);  // parents before their children
    MiniSandboxResult b = run_mini_sandbox(o);
    std::cerr << "two runs: " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
    EXPECT_EQ(a.status, 0) << a.err;
    EXPECT_EQ(b.status, 0) << b.err;
    EXPECT_TRUE(a.out == b.out) << first_difference(a.out, b.out) << "\n--- first run:\n" << a.out << "\n--- stderr:\n" << a.err;
    EXPECT_EQ(a.err, b.err) << first_difference(a.err, b.err);
    EXPECT_NE(a.out.find("== done"), std::string::npos) << a.out << a.err;
    // No host facts.
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    EXPECT_EQ(a.out.find(std::string(" ") + host + " "), std::string::npos);

    for (const auto& u : a.summary.unvirtualizable) std::cerr << "unvirtualizable: " << u << "\n";
    for (const auto& n : a.summary.notes) std::cerr << "note: " << n << "\n";
    for (const auto& [what, count] : a.summary.denied) std::cerr << "denied: " << what << " x" << count << "\n";
    std::vector<std::pair<uint64_t, std::string>> top;
    for (const auto& [name, count] : a.summary.by_syscall) top.push_back({count, name});
    std::sort(top.rbegin(), top.rend());
    for (size_t i = 0; i < top.size() && i < 12; ++i) std::cerr << "  " << top[i].second << " x" << top[i].first << "\n";
    std::cerr << "traps " << a.summary.traps << ", mean " << (a.summary.traps ? a.summary.trap_ns_total / a.summary.traps : 0)
              << " ns in the supervisor; processes " << a.summary.processes << ", execs " << a.summary.execs << "\n";
}

}  // namespace
}  // namespace hermetic::sandbox::determinism
