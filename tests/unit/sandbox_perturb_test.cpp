// The --verify perturbation of directory order: on tmpfs (what /build is), a
// reversed directory really lists in reverse, in every subdirectory, with the
// contents unchanged.
#include "sandbox/perturb.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "tests/support/temp_dir.hpp"

namespace hermetic::sandbox {
namespace {

std::vector<std::string> listing(const std::string& dir) {
    std::vector<std::string> v;
    DIR* d = ::opendir(dir.c_str());
    while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") v.push_back(e->d_name);
    ::closedir(d);
    return v;
}

TEST(Perturb, ReversesTheListingOrderOfEveryDirectoryOnTmpfs) {
    struct statfs fs{};
    ASSERT_EQ(::statfs("/dev/shm", &fs), 0);
    if (fs.f_type != 0x01021994 /* TMPFS_MAGIC */) GTEST_SKIP() << "/dev/shm is not tmpfs";
    std::string root = "/dev/shm/hermetic-perturb-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
    std::vector<std::string> names = {"alpha", "beta", "gamma", "delta", "sub"};
    for (const auto& n : names)
        if (n != "sub") std::ofstream(root + "/" + n) << n;
    ASSERT_EQ(::mkdir((root + "/sub").c_str(), 0755), 0);
    for (const char* n : {"x", "y", "z"}) std::ofstream(root + "/sub/" + n) << n;

    std::vector<std::string> top = listing(root), sub = listing(root + "/sub");
    {
        UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        reverse_directory_order(fd.get());
    }
    EXPECT_EQ(listing(root), std::vector<std::string>(top.rbegin(), top.rend()));
    EXPECT_EQ(listing(root + "/sub"), std::vector<std::string>(sub.rbegin(), sub.rend()));
    std::string content;
    std::ifstream(root + "/gamma") >> content;
    EXPECT_EQ(content, "gamma");
    EXPECT_EQ(::system(("rm -rf " + root).c_str()), 0);
}

// The source may hold an entry with the name the reversal parks entries under
// while renaming: it must survive with its content, and so must the others.
TEST(Perturb, KeepsAnEntryNamedLikeItsTemporaryName) {
    test::TempDir root("hermetic-perturb");
    const std::vector<std::string> names = {".hermetic-perturb", ".hermetic-perturb_", "a", "b"};
    for (const auto& n : names) test::write_file(root / n, "content of " + n);
    {
        UniqueFd fd(::open(root.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        ASSERT_NO_THROW(reverse_directory_order(fd.get()));
    }
    std::vector<std::string> after = listing(root.path());
    std::sort(after.begin(), after.end());
    EXPECT_EQ(after, names);
    for (const auto& n : names) EXPECT_EQ(test::read_file(root / n), "content of " + n) << n;
}

}  // namespace
}  // namespace hermetic::sandbox
