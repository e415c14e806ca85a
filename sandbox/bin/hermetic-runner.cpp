// hermetic-runner: one sandbox's runner, spawned by hermeticd with its control
// socket on fd 3 and the daemon's pid as its argument (see sandbox/job_runner.hpp).
// Not for direct use.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "sandbox/job_runner.hpp"

int main(int argc, char** argv) {
    if (argc != 2 || ::fcntl(3, F_GETFD) < 0) {
        std::fputs("hermetic-runner is started by hermeticd; it is not a command\n", stderr);
        return 2;
    }
    return hermetic::sandbox::runner_main(3, static_cast<pid_t>(std::atol(argv[1])));
}
