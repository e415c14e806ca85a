// Shared by the benchmark programs: medians and the min/median/max row each prints.
#pragma once

#include <algorithm>
#include <cstdio>
#include <vector>

namespace hermetic::bench {

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// "NAME  min X  median Y  max Z ms", NAME padded to WIDTH.
inline void print_row(const char* name, std::vector<double> v, int width = 40) {
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    std::printf("%-*s min %9.2f  median %9.2f  max %9.2f ms\n", width, name, v.front(), median(v), v.back());
}

}  // namespace hermetic::bench
