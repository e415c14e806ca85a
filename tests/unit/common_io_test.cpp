// common/io: directory listing, whose end and failure readdir tells apart only
// by errno.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/io.hpp"
#include "common/sys_error.hpp"
#include "tests/support/temp_dir.hpp"

using namespace hermetic;
using hermetic::test::TempDir;
using hermetic::test::write_file;

namespace {

std::vector<std::string> names_of(const std::vector<DirEntry>& entries) {
    std::vector<std::string> n;
    for (const auto& e : entries) n.push_back(e.name);
    std::sort(n.begin(), n.end());
    return n;
}

TEST(ListDirectory, NamesAndTypesWithoutDotEntries) {
    TempDir d;
    write_file(d / "a", "x");
    ASSERT_EQ(::mkdir((d / "sub").c_str(), 0755), 0);
    UniqueFd fd = open_dir(d.path().c_str());
    auto entries = list_directory(fd.get(), d.path());
    EXPECT_EQ(names_of(entries), (std::vector<std::string>{"a", "sub"}));
    for (const auto& e : entries) EXPECT_EQ(e.type, e.name == "sub" ? DT_DIR : DT_REG) << e.name;
    // The caller's descriptor is not consumed: listing again gives the same.
    EXPECT_EQ(names_of(list_directory(fd.get(), d.path())), (std::vector<std::string>{"a", "sub"}));
    EXPECT_EQ(list_directory(fd.get(), d.path(), 1).size(), 1u);
    EXPECT_FALSE(directory_is_empty(fd.get(), d.path()));
}

TEST(ListDirectory, EmptyDirectory) {
    TempDir d;
    UniqueFd fd = open_dir(d.path().c_str());
    EXPECT_TRUE(list_directory(fd.get(), d.path()).empty());
    EXPECT_TRUE(directory_is_empty(fd.get(), d.path()));
}

TEST(ListDirectory, AFailureIsAnErrorNotAnEmptyListing) {
    TempDir d;
    write_file(d / "file", "x");
    UniqueFd file(::open((d / "file").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(file);
    EXPECT_THROW((void)directory_is_empty(file.get(), "a file"), SysError);
    // A directory removed while open: readdir fails or ends, never invents entries.
    ASSERT_EQ(::mkdir((d / "gone").c_str(), 0755), 0);
    UniqueFd gone = open_dir((d / "gone").c_str());
    ASSERT_EQ(::rmdir((d / "gone").c_str()), 0);
    try {
        EXPECT_TRUE(list_directory(gone.get(), "a removed directory").empty());
    } catch (const SysError& e) {
        EXPECT_EQ(e.code(), ENOENT) << e.what();
    }
}

}  // namespace
