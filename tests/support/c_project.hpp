// A generated C project (FILES translation units of 20 small functions each,
// a main, a Makefile): the "real build" workload of the determinism and audit
// benchmarks. Paths are relative ("proj/src/m0.c"); a trailing '/' is a directory.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace hermetic::test {

std::vector<std::pair<std::string, std::string>> c_project(int files);

// Writes c_project(files) under DIR.
void write_c_project(const std::string& dir, int files);

}  // namespace hermetic::test
