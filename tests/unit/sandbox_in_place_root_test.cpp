// Reclaiming an in-place input root after the build: what the build's uid
// created (files, directories, symlinks, fifos) goes to the input root's
// owner, everything else is left alone, and the outputs list exactly the
// build's files, directories and symlinks, hashed. Needs root (chown).
#include "sandbox/in_place_root.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>

#include "common/sha256.hpp"
#include "common/unique_fd.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::sandbox {
namespace {

constexpr uid_t kBuild = 61001;  // no such user needed: only numbers
constexpr uid_t kOwner = 61002;
constexpr gid_t kOwnerGroup = 61003;
constexpr uid_t kOther = 61004;

void own(const std::string& path, uid_t uid) { ASSERT_EQ(::lchown(path.c_str(), uid, uid), 0) << path; }

struct stat lstat_of(const std::string& path) {
    struct stat st{};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
}

TEST(InPlaceRoot, ReclaimHandsTheBuildsEntriesToTheOwnerAndListsThem) {
    if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
    test::TempDir root("hermetic-reclaim");
    test::write_file(root / "input.c", "int main;\n");  // the worker's: untouched
    own(root / "input.c", kOwner);
    ASSERT_EQ(::mkdir((root / "out").c_str(), 0777), 0);  // the worker's writable dir
    own(root / "out", kOwner);
    test::write_file(root / "out/a.o", "object");
    own(root / "out/a.o", kBuild);
    ASSERT_EQ(::mkdir((root / "out/sub").c_str(), 0750), 0);
    own(root / "out/sub", kBuild);
    test::write_file(root / "out/sub/b.txt", "bee", 0600);
    own(root / "out/sub/b.txt", kBuild);
    test::write_file(root / "out/sub/foreign", "x");  // another uid's, inside the build's dir
    own(root / "out/sub/foreign", kOther);
    ASSERT_EQ(::symlink("/etc/passwd", (root / "out/link").c_str()), 0);
    own(root / "out/link", kBuild);
    ASSERT_EQ(::mkfifo((root / "out/fifo").c_str(), 0644), 0);
    own(root / "out/fifo", kBuild);

    UniqueFd dir(::open(root.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir);
    auto outputs = reclaim_input_root(dir.get(), kBuild, kOwner, kOwnerGroup);

    std::map<std::string, protocol::OutputEntry> by_path;
    for (auto& e : outputs) by_path.emplace(e.path, e);
    ASSERT_EQ(by_path.size(), 4u);
    EXPECT_EQ(by_path.at("out/a.o").type, "file");
    EXPECT_EQ(by_path.at("out/a.o").sha256, sha256_hex("object"));
    EXPECT_EQ(by_path.at("out/sub").type, "dir");
    EXPECT_EQ(by_path.at("out/sub").mode, 0750u);
    EXPECT_EQ(by_path.at("out/sub/b.txt").sha256, sha256_hex("bee"));
    EXPECT_EQ(by_path.at("out/link").type, "symlink");
    EXPECT_EQ(by_path.at("out/link").target, "/etc/passwd");

    for (const char* p : {"out/a.o", "out/sub", "out/sub/b.txt", "out/link", "out/fifo"}) {
        struct stat st = lstat_of(root / p);
        EXPECT_EQ(st.st_uid, kOwner) << p;
        EXPECT_EQ(st.st_gid, kOwnerGroup) << p;
    }
    EXPECT_EQ(lstat_of(root / "input.c").st_uid, kOwner);
    EXPECT_EQ(lstat_of(root / "out/sub/foreign").st_uid, kOther);
    // The symlink itself was chowned, never what it points to.
    EXPECT_EQ(lstat_of("/etc/passwd").st_uid, 0u);
}

}  // namespace
}  // namespace hermetic::sandbox
