// A temporary directory removed (recursively) when the test ends.
#pragma once

#include <string>

namespace hermetic::test {

class TempDir {
public:
    explicit TempDir(const std::string& prefix = "hermetic-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

private:
    std::string path_;
};

void write_file(const std::string& path, const std::string& content, unsigned mode = 0644);
std::string read_file(const std::string& path);
void remove_tree(const std::string& path);

}  // namespace hermetic::test
