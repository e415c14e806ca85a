// runner/build_directory: every runner path is resolved beneath the build
// directory by the kernel, whatever the tree holds.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>

#include "runner/build_directory.hpp"
#include "tests/support/temp_dir.hpp"

using hermetic::runner::BuildDirectory;
using hermetic::runner::PathError;
using hermetic::runner::is_clean_relative;
using hermetic::test::TempDir;
using hermetic::test::read_file;
using hermetic::test::write_file;

namespace {

int error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const PathError& e) {
        return e.err();
    }
    return 0;
}

TEST(RunnerBuildDirectory, CleanRelativePaths) {
    EXPECT_TRUE(is_clean_relative(""));
    EXPECT_TRUE(is_clean_relative("a"));
    EXPECT_TRUE(is_clean_relative("a/b/c"));
    EXPECT_FALSE(is_clean_relative("/a"));
    EXPECT_FALSE(is_clean_relative("a/../b"));
    EXPECT_FALSE(is_clean_relative(".."));
    EXPECT_FALSE(is_clean_relative("./a"));
    EXPECT_FALSE(is_clean_relative("a//b"));
    EXPECT_FALSE(is_clean_relative("a/"));
    EXPECT_FALSE(is_clean_relative(std::string("a\0b", 3)));
}

TEST(RunnerBuildDirectory, ResolvesBeneathWithoutSymlinks) {
    TempDir t("hermetic-bd");
    ASSERT_EQ(::mkdir((t / "in").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((t / "in/sub").c_str(), 0755), 0);
    ASSERT_EQ(::symlink("/", (t / "in/root").c_str()), 0);
    ASSERT_EQ(::symlink("sub", (t / "in/inner").c_str()), 0);
    BuildDirectory b(t / "in");
    EXPECT_TRUE(b.exists("sub"));
    EXPECT_FALSE(b.exists("nope"));
    EXPECT_NO_THROW((void)b.open_dir("sub"));
    EXPECT_EQ(error_of([&] { (void)b.open_dir("root/etc"); }), ELOOP);
    EXPECT_EQ(error_of([&] { (void)b.open_dir("inner"); }), ELOOP);  // even one that stays inside
    EXPECT_EQ(error_of([&] { (void)b.open_dir("../in"); }), EINVAL);
    EXPECT_TRUE(PathError("x", EXDEV).escapes());
    // Relative to another directory beneath it (the working directory in the input root).
    auto sub = b.open_dir("sub");
    ASSERT_EQ(::mkdir((t / "in/sub/wd").c_str(), 0755), 0);
    EXPECT_NO_THROW((void)b.open_dir("wd", sub.get()));
}

TEST(RunnerBuildDirectory, CreatesFilesExclusivelyAndRemovesThem) {
    TempDir t("hermetic-bd");
    BuildDirectory b(t.path());
    { auto f = b.create_file("out"); }
    EXPECT_EQ(error_of([&] { (void)b.create_file("out"); }), EEXIST);
    ASSERT_EQ(::symlink("/tmp/hermetic-bd-target", (t / "link").c_str()), 0);
    EXPECT_NE(error_of([&] { (void)b.create_file("link"); }), 0);  // never through a symlink
    EXPECT_NE(::access("/tmp/hermetic-bd-target", F_OK), 0);
    b.remove_file("out");
    EXPECT_NE(::access((t / "out").c_str(), F_OK), 0);
    auto dir = b.open_dir("");
    b.write_new_file(dir.get(), "log", "evidence");
    EXPECT_EQ(read_file(t / "log"), "evidence");
}

}  // namespace
