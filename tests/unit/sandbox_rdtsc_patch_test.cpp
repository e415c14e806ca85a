// The rdtsc patch of the dynamic loader (sandbox/determinism/rdtsc_patch.hpp):
// which sites it takes, and a patched site run in this process against a
// clock page it maps itself.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "sandbox/determinism/rdtsc_patch.hpp"
#include "sandbox/determinism/vdso.hpp"
#include "syscall-policy/determinism_rules.hpp"

namespace hermetic::sandbox::determinism {
namespace {

// Bytes from this machine's ld.so (glibc 2.36), the sites its start-up runs.
std::vector<uint8_t> window(std::initializer_list<uint8_t> head) {
    std::vector<uint8_t> w(head);
    w.resize(kRdtscWindow, 0x90);  // nops after: they touch no flag
    return w;
}

TEST(RdtscPatch, TheLoadersStartUpSitesArePatchable) {
    const uint64_t site = 0x7ffff7fe0000, tramp = 0x7ffff7fea200;
    // rdtsc; shl $32,%rdx; or %rdx,%rax
    EXPECT_TRUE(plan_rdtsc_patch(window({0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0}), site, tramp));
    // rdtsc; andb $0xdf, disp(%rip)  (RIP-relative, re-based)
    auto andb = plan_rdtsc_patch(window({0x0f, 0x31, 0x80, 0x25, 0x52, 0x86, 0x01, 0x00, 0xdf}), site, tramp);
    ASSERT_TRUE(andb);
    EXPECT_EQ(andb->site.size(), 9u);
    EXPECT_EQ(andb->site[0], 0xe9);
    // rdtsc; lea disp(%rip),%r13; mov %r13,%rdi; shl $32,%rdx
    EXPECT_TRUE(plan_rdtsc_patch(
        window({0x0f, 0x31, 0x4c, 0x8d, 0x2d, 0x55, 0x7e, 0x01, 0x00, 0x4c, 0x89, 0xef, 0x48, 0xc1, 0xe2, 0x20}), site, tramp));
    // rdtsc; xor %ecx,%ecx; mov %rax,%r9  (reads rdtsc's result)
    EXPECT_TRUE(plan_rdtsc_patch(window({0x0f, 0x31, 0x31, 0xc9, 0x49, 0x89, 0xc1}), site, tramp));
    // rdtsc; mov -0x270(%rbp),%r9; mov 0x2e0(%rbx),%esi; shl $32,%rdx
    EXPECT_TRUE(plan_rdtsc_patch(window({0x0f, 0x31, 0x4c, 0x8b, 0x8d, 0x90, 0xfd, 0xff, 0xff, 0x8b, 0xb3, 0xe0, 0x02,
                                         0x00, 0x00, 0x48, 0xc1, 0xe2, 0x20}),
                                 site, tramp));
}

TEST(RdtscPatch, RefusesWhatItCannotMoveOrWhereFlagsMayBeLive) {
    const uint64_t site = 0x7ffff7fe0000, tramp = 0x7ffff7fea200;
    // A conditional jump right after: it may read flags set before the rdtsc.
    EXPECT_FALSE(plan_rdtsc_patch(window({0x0f, 0x31, 0x74, 0x05}), site, tramp));
    // Only moves (no flag writer) for the whole window.
    std::vector<uint8_t> movs(kRdtscWindow, 0x90);
    movs[0] = 0x0f, movs[1] = 0x31;
    for (size_t i = 2; i + 3 <= movs.size(); i += 3) movs[i] = 0x48, movs[i + 1] = 0x89, movs[i + 2] = 0xc6;
    movs.resize(kRdtscWindow);
    EXPECT_FALSE(plan_rdtsc_patch(movs, site, tramp));
    // adc reads CF; a call can't be moved; rdtscp is not rdtsc.
    EXPECT_FALSE(plan_rdtsc_patch(window({0x0f, 0x31, 0x48, 0x83, 0xd0, 0x01}), site, tramp));
    EXPECT_FALSE(plan_rdtsc_patch(window({0x0f, 0x31, 0xe8, 0, 0, 0, 0}), site, tramp));
    EXPECT_FALSE(plan_rdtsc_patch(window({0x0f, 0x01, 0xf9, 0x48, 0xc1, 0xe2, 0x20}), site, tramp));
    // shl $32,%eax: the count masked to 5 bits is 0, the flags stay live for the jc.
    EXPECT_FALSE(plan_rdtsc_patch(window({0x0f, 0x31, 0xc1, 0xe0, 0x20, 0x72, 0x00}), site, tramp));
    // A trampoline out of rel32 reach.
    EXPECT_FALSE(plan_rdtsc_patch(window({0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0}), site, 0x20000));
}

// A patched function run here: "rdtsc; andb $0xdf, flag(%rip); shl $32,%rdx;
// or %rdx,%rax; ret" returns the virtual TSC from the clock page (mono ns at
// tsc_hz = 1 GHz), counts the read, and still runs the moved andb.
TEST(RdtscPatch, APatchedSiteReadsTheClockPageAndRunsWhatItMoved) {
    void* scratch = ::mmap(reinterpret_cast<void*>(policy::kScratchBase), 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (scratch == MAP_FAILED) GTEST_SKIP() << "the scratch address is taken in this process: " << std::strerror(errno);
    auto* page = static_cast<ClockPage*>(scratch);
    *page = ClockPage{0, 1'000'000'000'000, 10'000, 5'000, 1, 0, 1'000'000'000, 1'000'000'000};
    auto* tsc_count = reinterpret_cast<uint64_t*>(policy::kScratchBase + kRdtscCountOffset);

    const size_t len = 8192;
    auto* code = static_cast<uint8_t*>(::mmap(nullptr, len, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(code, MAP_FAILED);
    // The function at 0, its flag byte at 4096, the trampoline at 2048.
    const uint8_t fn[] = {0x0f, 0x31,                                // rdtsc
                          0x80, 0x25, 0, 0, 0, 0, 0xdf,              // andb $0xdf, flag(%rip)
                          0x48, 0xc1, 0xe2, 0x20,                    // shl $32, %rdx
                          0x48, 0x09, 0xd0,                          // or %rdx, %rax
                          0xc3};                                     // ret
    std::memcpy(code, fn, sizeof fn);
    const int32_t disp = 4096 - 9;
    std::memcpy(code + 4, &disp, 4);
    code[4096] = 0xff;
    std::vector<uint8_t> w(code, code + kRdtscWindow);
    const auto site = reinterpret_cast<uint64_t>(code), tramp = site + 2048;
    auto patch = plan_rdtsc_patch(w, site, tramp);
    ASSERT_TRUE(patch);
    std::memcpy(code + 2048, patch->trampoline.data(), patch->trampoline.size());
    std::memcpy(code, patch->site.data(), patch->site.size());
    auto call = reinterpret_cast<uint64_t (*)()>(code);

    EXPECT_EQ(call(), 1'000'000'010'000u + 5'000);  // base + one step + mono_off
    EXPECT_EQ(call(), 1'000'000'020'000u + 5'000);
    EXPECT_EQ(page->counter, 2u);
    EXPECT_EQ(*tsc_count, 2u);
    EXPECT_EQ(code[4096], 0xdf);  // the moved andb ran, on the right byte
    // Another frequency: scaled (3 GHz).
    page->tsc_hz = 3'000'000'000;
    EXPECT_EQ(call(), (1'000'000'030'000u + 5'000) * 3);
    // Disabled (a multi-threaded process): a real rdtsc, not the page.
    page->enabled = 0;
    (void)call();
    EXPECT_EQ(page->counter, 3u);
    EXPECT_EQ(*tsc_count, 3u);
    ::munmap(code, len);
    ::munmap(scratch, 4096);
}

// The loader's rseq site (ld.so 2.36: "mov $0x14e,%eax; syscall", then a
// 32-bit compare of the result) as a function: patched, it returns -ENOSYS
// without entering the kernel, counts the call, and leaves the flags as they were.
TEST(RdtscPatch, AnErrnoSiteAnswersWithoutTheKernelAndCounts) {
    const uint8_t rseq[] = {0xb8, 0x4e, 0x01, 0x00, 0x00, 0x0f, 0x05};
    EXPECT_FALSE(plan_errno_syscall_patch(rseq, 0x1000, 0x2000, 335, ENOSYS, kRseqCountOffset)) << "another call";
    const uint8_t other[] = {0xb8, 0x4e, 0x01, 0x00, 0x00, 0x90, 0x90};
    EXPECT_FALSE(plan_errno_syscall_patch(other, 0x1000, 0x2000, 334, ENOSYS, kRseqCountOffset)) << "no syscall";
    EXPECT_FALSE(plan_errno_syscall_patch(rseq, 0x1000, 0x2000, 334, 0, kRseqCountOffset)) << "not an error";

    void* scratch = ::mmap(reinterpret_cast<void*>(policy::kScratchBase), 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (scratch == MAP_FAILED) GTEST_SKIP() << "the scratch address is taken in this process: " << std::strerror(errno);
    auto* count = reinterpret_cast<uint64_t*>(policy::kScratchBase + kRseqCountOffset);
    *count = 0;
    auto* code = static_cast<uint8_t*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(code, MAP_FAILED);
    // stc; mov $334, %eax; syscall; setc %dl... : "rax = rseq(); rdx = CF" with CF set before.
    const uint8_t fn[] = {0x31, 0xd2,                          // xor %edx, %edx
                          0xf9,                                // stc
                          0xb8, 0x4e, 0x01, 0x00, 0x00,        // mov $334, %eax
                          0x0f, 0x05,                          // syscall
                          0x0f, 0x92, 0xc2,                    // setc %dl
                          0x48, 0x01, 0xd0,                    // add %rdx, %rax: -ENOSYS + CF
                          0xc3};                               // ret
    std::memcpy(code, fn, sizeof fn);
    const auto site = reinterpret_cast<uint64_t>(code) + 3, tramp = reinterpret_cast<uint64_t>(code) + 2048;
    auto patch = plan_errno_syscall_patch(std::span<const uint8_t>(code + 3, kSyscallSiteLen), site, tramp, 334, ENOSYS,
                                          kRseqCountOffset);
    ASSERT_TRUE(patch);
    EXPECT_EQ(patch->trampoline.size(), kErrnoTrampolineLen);
    std::memcpy(code + 2048, patch->trampoline.data(), patch->trampoline.size());
    std::memcpy(code + 3, patch->site.data(), patch->site.size());
    auto call = reinterpret_cast<int64_t (*)()>(code);
    EXPECT_EQ(call(), -ENOSYS + 1) << "the carry survives: the flags are untouched";
    EXPECT_EQ(call(), -ENOSYS + 1);
    EXPECT_EQ(*count, 2u);
    ::munmap(code, 4096);
    ::munmap(scratch, 4096);
}

// The loader's stat site sent to the in-process stat code: through its slot
// when the exec stub mapped it (the flag), else the call as it was.
TEST(RdtscPatch, AGuardedCallSiteCallsTheSlotOnlyOnceTheCodeIsMapped) {
    const uint8_t stat[] = {0xb8, 0x06, 0x01, 0x00, 0x00, 0x0f, 0x05};
    const uint8_t other[] = {0xb8, 0x06, 0x01, 0x00, 0x00, 0x90, 0x90};
    EXPECT_FALSE(plan_guarded_call_patch(other, 0x1000, 0x2000, kFastMappedOffset, 0x20000)) << "no syscall";
    EXPECT_TRUE(plan_guarded_call_patch(stat, 0x1000, 0x2000, kFastMappedOffset, 0x20000));

    void* scratch = ::mmap(reinterpret_cast<void*>(policy::kScratchBase), 4096, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (scratch == MAP_FAILED) GTEST_SKIP() << "the scratch address is taken in this process: " << std::strerror(errno);
    auto* mapped = reinterpret_cast<uint64_t*>(policy::kScratchBase + kFastMappedOffset);
    auto* slot = reinterpret_cast<uint64_t*>(policy::kScratchBase + 256);  // stands for the table's entry slot
    auto* code = static_cast<uint8_t*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(code, MAP_FAILED);
    // A wrapper: mov $39 (getpid), %eax; syscall; cmp $-4096, %eax; ret.
    const uint8_t fn[] = {0xb8, 0x27, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x3d, 0x00, 0xf0, 0xff, 0xff, 0xc3};
    std::memcpy(code, fn, sizeof fn);
    // What the slot points at: mov $12345, %eax; ret.
    const uint8_t answer[] = {0xb8, 0x39, 0x30, 0x00, 0x00, 0xc3};
    std::memcpy(code + 1024, answer, sizeof answer);
    *slot = reinterpret_cast<uint64_t>(code + 1024);
    const auto site = reinterpret_cast<uint64_t>(code), tramp = reinterpret_cast<uint64_t>(code) + 2048;
    auto patch = plan_guarded_call_patch(std::span<const uint8_t>(code, kSyscallSiteLen), site, tramp, kFastMappedOffset,
                                         static_cast<uint32_t>(policy::kScratchBase + 256));
    ASSERT_TRUE(patch);
    EXPECT_EQ(patch->trampoline.size(), kGuardedCallTrampolineLen);
    std::memcpy(code + 2048, patch->trampoline.data(), patch->trampoline.size());
    std::memcpy(code, patch->site.data(), patch->site.size());
    auto call = reinterpret_cast<int64_t (*)()>(code);
    *mapped = 0;
    EXPECT_EQ(call(), ::getpid()) << "not mapped: the call itself";
    *mapped = 1;
    EXPECT_EQ(call(), 12345) << "mapped: through the slot";
    *mapped = 0;
    EXPECT_EQ(call(), ::getpid());
    ::munmap(code, 4096);
    ::munmap(scratch, 4096);
}

}  // namespace
}  // namespace hermetic::sandbox::determinism
