// directory_tree_digest: the one walk behind the client's source digest and the
// runner's input-root digest, against tree_digest of the entries written here.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "audit/identity.hpp"
#include "common/sha256.hpp"
#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::audit {
namespace {

using test::TempDir;
using test::write_file;

TEST(DirectoryTreeDigest, FilesDirsAndLinksAsFoundSpecialFilesAndTheExcludedDirLeftOut) {
    TempDir t("hermetic-tree-digest");
    const std::string r = t.path();
    write_file(r + "/a", "alpha", 0644);
    ASSERT_EQ(::mkdir((r + "/d").c_str(), 0750), 0);
    write_file(r + "/d/b", "beta", 0755);
    ASSERT_EQ(::symlink("a", (r + "/l").c_str()), 0);
    ASSERT_EQ(::mkfifo((r + "/fifo").c_str(), 0644), 0);
    ASSERT_EQ(::mkdir((r + "/out").c_str(), 0755), 0);
    write_file(r + "/out/x", "excluded");
    ASSERT_EQ(::chmod((r + "/d").c_str(), 0750), 0);
    ASSERT_EQ(::chmod((r + "/d/b").c_str(), 0755), 0);
    ASSERT_EQ(::chmod((r + "/a").c_str(), 0644), 0);
    struct stat out{};
    ASSERT_EQ(::stat((r + "/out").c_str(), &out), 0);

    UniqueFd dir(::open(r.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir);
    TreeWalk walk;
    walk.exclude = std::pair<uint64_t, uint64_t>{out.st_dev, out.st_ino};
    const std::string want = tree_digest({{"a", "file", 0644, sha256_hex("alpha")},
                                          {"d", "dir", 0750, std::nullopt},
                                          {"d/b", "file", 0755, sha256_hex("beta")},
                                          {"l", "symlink", 0777, sha256_hex("a")}});
    EXPECT_EQ(directory_tree_digest(dir.get(), walk), want);

    // Without the exclusion the directory and its file count.
    EXPECT_NE(directory_tree_digest(dir.get(), TreeWalk{}), want);
}

TEST(DirectoryTreeDigest, ErrorsCarryTheCallersContextAndTheDepthBound) {
    TempDir t("hermetic-tree-digest");
    ASSERT_EQ(::mkdir((t.path() + "/1").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((t.path() + "/1/2").c_str(), 0755), 0);
    UniqueFd dir(::open(t.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    TreeWalk walk;
    walk.context = "input root: ";
    walk.max_depth = 1;
    try {
        (void)directory_tree_digest(dir.get(), walk);
        FAIL() << "no error past the depth bound";
    } catch (const SysError& e) {
        EXPECT_EQ(e.code(), ELOOP);
        EXPECT_EQ(std::string(e.what()).rfind("input root: nested too deep", 0), 0u) << e.what();
    }
}

}  // namespace
}  // namespace hermetic::audit
