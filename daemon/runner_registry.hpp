// Which job runners this daemon has alive, kept on disk so that the next life of
// the daemon can finish off what a crash (kill -9, OOM kill, power loss of the
// daemon alone) left behind.
//
// Every runner spawned gets a file STATE/runners/<sandbox id> holding its pid and
// start time (field 22 of /proc/PID/stat), removed once the runner is reaped. The
// runner and everything below it die with the daemon anyway (PR_SET_PDEATHSIG down
// the chain), but asynchronously: crash recovery kills the recorded runners that
// still exist and waits until they are gone, so that nothing of the previous life
// is still running when the new one serves its first request. The start time keeps
// a recycled pid from being mistaken for a runner.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace hermetic::daemon {

// A process's start time in clock ticks since boot, or nullopt if it is gone.
std::optional<uint64_t> process_start_time(pid_t pid);

// One runner's record; removing the file is RAII (after the runner was reaped:
// declare it before the RunnerProcess it describes).
class RunnerRecord {
public:
    RunnerRecord() = default;
    // Writes DIR/<sandbox_id>. Never throws: a record that can't be written is
    // logged (the runner still dies with the daemon, only not under watch).
    static RunnerRecord create(const std::string& dir, const std::string& sandbox_id, pid_t pid);
    RunnerRecord(RunnerRecord&& o) noexcept;
    RunnerRecord& operator=(RunnerRecord&& o) noexcept;
    RunnerRecord(const RunnerRecord&) = delete;
    RunnerRecord& operator=(const RunnerRecord&) = delete;
    ~RunnerRecord();

private:
    std::string path_;
};

// Crash recovery: SIGKILLs every recorded runner that still exists (same pid and
// start time), waits (bounded) until each is gone, and removes every record.
// Returns how many were still alive.
size_t kill_recorded_runners(const std::string& dir);

}  // namespace hermetic::daemon
