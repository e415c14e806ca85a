#include "sandbox/determinism/vdso.hpp"

#include <elf.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>

#include "sandbox/determinism/fast_stat_abi.h"
#include "syscall-policy/determinism_rules.hpp"

namespace hermetic::sandbox::determinism {

// In-process clock routines (copied into the vDSO; position-independent, the
// clock page at the fixed scratch address, no other memory). Offsets: counter 0,
// base 8, step 16, mono_off 24, enabled 32.
asm(R"(
    .pushsection .rodata.hermetic_vdso_code, "a"
    .intel_syntax noprefix
    .globl hermetic_ip_cgt_start, hermetic_ip_cgt_end, hermetic_ip_gtod_start, hermetic_ip_gtod_end
    .globl hermetic_ip_time_start, hermetic_ip_time_end, hermetic_ip_getcpu_start, hermetic_ip_getcpu_end
hermetic_ip_cgt_start:
    cmp edi, 11
    ja 8f
    mov eax, 1
    mov ecx, edi
    shl eax, cl
    xor r8d, r8d
    test eax, 0x121
    jnz 1f
    test eax, 0x800
    jnz 2f
    test eax, 0x2d2
    jz 8f
    mov edx, 0x10000
    mov r8, qword ptr [rdx + 24]
    jmp 1f
2:
    movabs r8, 37000000000
1:
    mov edx, 0x10000
    cmp dword ptr [rdx + 32], 0
    je 8f
    mov eax, 1
    lock xadd qword ptr [rdx], rax
    add rax, 1
    imul rax, qword ptr [rdx + 16]
    add rax, qword ptr [rdx + 8]
    add rax, r8
    xor edx, edx
    mov r9d, 1000000000
    div r9
    mov qword ptr [rsi], rax
    mov qword ptr [rsi + 8], rdx
    xor eax, eax
    ret
8:
    mov eax, 228
    syscall
    ret
hermetic_ip_cgt_end:
hermetic_ip_gtod_start:
    mov edx, 0x10000
    cmp dword ptr [rdx + 32], 0
    je 8f
    test rdi, rdi
    jz 1f
    mov eax, 1
    lock xadd qword ptr [rdx], rax
    add rax, 1
    imul rax, qword ptr [rdx + 16]
    add rax, qword ptr [rdx + 8]
    xor edx, edx
    mov r9d, 1000000000
    div r9
    mov qword ptr [rdi], rax
    mov rax, rdx
    xor edx, edx
    mov r9d, 1000
    div r9
    mov qword ptr [rdi + 8], rax
1:
    test rsi, rsi
    jz 2f
    mov qword ptr [rsi], 0
2:
    xor eax, eax
    ret
8:
    mov eax, 96
    syscall
    ret
hermetic_ip_gtod_end:
hermetic_ip_time_start:
    mov edx, 0x10000
    cmp dword ptr [rdx + 32], 0
    je 8f
    mov eax, 1
    lock xadd qword ptr [rdx], rax
    add rax, 1
    imul rax, qword ptr [rdx + 16]
    add rax, qword ptr [rdx + 8]
    xor edx, edx
    mov r9d, 1000000000
    div r9
    test rdi, rdi
    jz 1f
    mov qword ptr [rdi], rax
1:
    ret
8:
    mov eax, 201
    syscall
    ret
hermetic_ip_time_end:
hermetic_ip_getcpu_start:
    test rdi, rdi
    jz 1f
    mov dword ptr [rdi], 0
1:
    test rsi, rsi
    jz 2f
    mov dword ptr [rsi], 0
2:
    xor eax, eax
    ret
hermetic_ip_getcpu_end:
    .att_syntax prefix
    .popsection
)");

extern "C" const unsigned char hermetic_ip_cgt_start[], hermetic_ip_cgt_end[], hermetic_ip_gtod_start[],
    hermetic_ip_gtod_end[], hermetic_ip_time_start[], hermetic_ip_time_end[], hermetic_ip_getcpu_start[],
    hermetic_ip_getcpu_end[];

namespace {

static_assert(policy::kScratchBase == 0x10000, "the in-process routines hard-code the clock page address");
static_assert(offsetof(ClockPage, base) == 8 && offsetof(ClockPage, step) == 16 && offsetof(ClockPage, mono_off) == 24 &&
              offsetof(ClockPage, enabled) == 32, "the in-process routines hard-code the clock page layout");

std::vector<uint8_t> bytes(const unsigned char* a, const unsigned char* b) { return {a, b}; }

std::vector<uint8_t> in_process_code(int nr) {
    switch (nr) {
        case SYS_clock_gettime: return bytes(hermetic_ip_cgt_start, hermetic_ip_cgt_end);
        case SYS_gettimeofday: return bytes(hermetic_ip_gtod_start, hermetic_ip_gtod_end);
        case SYS_time: return bytes(hermetic_ip_time_start, hermetic_ip_time_end);
        case SYS_getcpu: return bytes(hermetic_ip_getcpu_start, hermetic_ip_getcpu_end);
        default: return {};
    }
}


std::vector<uint8_t> syscall_stub(uint32_t nr) {
    std::vector<uint8_t> s = {0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0xc3};
    std::memcpy(&s[1], &nr, 4);
    return s;
}

// mov rax, -ENOSYS; ret: callers (glibc 2.41+) fall back to the getrandom syscall.
std::vector<uint8_t> enosys_stub() { return {0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3}; }

std::vector<uint8_t> jmp_to(uint64_t from, uint64_t to) {
    int32_t rel = static_cast<int32_t>(static_cast<int64_t>(to) - static_cast<int64_t>(from + 5));
    std::vector<uint8_t> j = {0xe9, 0, 0, 0, 0};
    std::memcpy(&j[1], &rel, 4);
    return j;
}

}  // namespace

VdsoPlan plan_vdso_patch(const std::vector<uint8_t>& img, bool in_process) {
    VdsoPlan plan;
    auto fail = [&](const char* why) {
        plan.ok = false;
        plan.error = why;
        return plan;
    };
    if (img.size() < sizeof(Elf64_Ehdr)) return fail("vDSO image too small");
    Elf64_Ehdr eh;
    std::memcpy(&eh, img.data(), sizeof eh);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64)
        return fail("vDSO is not an x86-64 ELF image");
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff + uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr) > img.size())
        return fail("vDSO section headers out of range");
    std::vector<Elf64_Shdr> sh(eh.e_shnum);
    std::memcpy(sh.data(), img.data() + eh.e_shoff, sh.size() * sizeof(Elf64_Shdr));
    const Elf64_Shdr* dynsym = nullptr;
    for (const auto& s : sh)
        if (s.sh_type == SHT_DYNSYM) dynsym = &s;
    if (!dynsym || dynsym->sh_link >= sh.size()) return fail("vDSO has no dynamic symbol table");
    const Elf64_Shdr& strtab = sh[dynsym->sh_link];
    if (dynsym->sh_offset + dynsym->sh_size > img.size() || strtab.sh_offset + strtab.sh_size > img.size())
        return fail("vDSO symbol table out of range");

    // What each entry point becomes.
    static const std::map<std::string, int, std::less<>> targets = {
        {"clock_gettime", SYS_clock_gettime}, {"__vdso_clock_gettime", SYS_clock_gettime},
        {"gettimeofday", SYS_gettimeofday},   {"__vdso_gettimeofday", SYS_gettimeofday},
        {"time", SYS_time},                   {"__vdso_time", SYS_time},
        {"clock_getres", SYS_clock_getres},   {"__vdso_clock_getres", SYS_clock_getres},
        {"getcpu", SYS_getcpu},               {"__vdso_getcpu", SYS_getcpu},
        {"getrandom", -1},                    {"__vdso_getrandom", -1},
    };
    struct Fn {
        uint64_t off, size;
        int nr;
        std::string name;
    };
    std::map<uint64_t, Fn> fns;  // by address: aliases share one
    size_t count = dynsym->sh_size / sizeof(Elf64_Sym);
    for (size_t i = 0; i < count; ++i) {
        Elf64_Sym sym;
        std::memcpy(&sym, img.data() + dynsym->sh_offset + i * sizeof(Elf64_Sym), sizeof sym);
        if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_name >= strtab.sh_size) continue;
        const char* name = reinterpret_cast<const char*>(img.data() + strtab.sh_offset + sym.st_name);
        auto it = targets.find(std::string_view(name, strnlen(name, strtab.sh_size - sym.st_name)));
        if (it == targets.end()) continue;
        if (sym.st_value + sym.st_size > img.size()) return fail("vDSO symbol out of range");
        fns.try_emplace(sym.st_value, Fn{sym.st_value, sym.st_size, it->second, it->first});
    }
    if (fns.empty()) return fail("vDSO exports none of the clock functions");

    auto code_for = [&](const Fn& fn) {
        if (fn.nr < 0) return enosys_stub();
        std::vector<uint8_t> c = in_process ? in_process_code(fn.nr) : std::vector<uint8_t>{};
        return c.empty() ? syscall_stub(static_cast<uint32_t>(fn.nr)) : c;
    };
    // The largest function holds the trampolines of the small ones and the init stub.
    auto pool_it = std::max_element(fns.begin(), fns.end(), [](auto& a, auto& b) { return a.second.size < b.second.size; });
    const Fn& pool = pool_it->second;
    uint64_t cursor = pool.off + code_for(pool).size();
    const uint64_t pool_end = pool.off + pool.size;
    for (const auto& [off, fn] : fns) {
        std::vector<uint8_t> code = code_for(fn);
        if (fn.size >= code.size()) {
            plan.writes.emplace_back(fn.off, code);
        } else if (fn.size >= 5 && cursor + code.size() <= pool_end) {
            // Too small for the stub (seen on some kernels): jump to a copy in the pool.
            plan.writes.emplace_back(cursor, code);
            plan.writes.emplace_back(fn.off, jmp_to(fn.off, cursor));
            cursor += code.size();
        } else {
            return fail("a vDSO clock function is too small to patch");
        }
        plan.patched.push_back(fn.name);
    }
    plan.stub_offset = cursor;
    plan.stub_room = pool_end > cursor ? pool_end - cursor : 0;
    if (plan.stub_room < init_stub(0).size()) return fail("no room in the vDSO for the init stub");
    plan.fast_stat_room = plan.stub_room >= init_stub(0, true).size();
    plan.ok = true;
    return plan;
}

std::vector<uint8_t> init_stub(uint64_t entry, bool fast_stat) {
    std::vector<uint8_t> c;
    auto emit = [&](std::initializer_list<uint8_t> b) { c.insert(c.end(), b); };
    auto imm32 = [&](uint32_t v) {
        uint8_t b[4];
        std::memcpy(b, &v, 4);
        c.insert(c.end(), b, b + 4);
    };
    auto imm64 = [&](uint64_t v) {
        uint8_t b[8];
        std::memcpy(b, &v, 8);
        c.insert(c.end(), b, b + 8);
    };
    emit({0xb8}), imm32(SYS_mmap);                                       // mov eax, SYS_mmap
    emit({0x48, 0xbf}), imm64(policy::kScratchBase);                     // movabs rdi, base
    emit({0xbe}), imm32(static_cast<uint32_t>(policy::kScratchSize));    // mov esi, size
    emit({0xba}), imm32(PROT_READ | PROT_WRITE);                         // mov edx, prot
    emit({0x41, 0xba}), imm32(MAP_PRIVATE | MAP_ANONYMOUS | 0x100000);   // mov r10d, flags (MAP_FIXED_NOREPLACE)
    emit({0x49, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff});                     // mov r8, -1
    emit({0x45, 0x31, 0xc9});                                             // xor r9d, r9d
    emit({0x0f, 0x05});                                                   // syscall
    if (fast_stat) {
        // No scratch page, no in-process stat (it counts there, and the flag
        // below lives there): no hello either.
        emit({0x48, 0x3d}), imm32(static_cast<uint32_t>(policy::kScratchBase));  // cmp rax, base
        emit({0x0f, 0x85}), imm32(0);                                    // jne done (patched below)
        const size_t jne_at = c.size();
        emit({0xb8}), imm32(SYS_newfstatat);                             // mov eax, SYS_newfstatat
        emit({0xbf}), imm32(0xffffffffu);                                // mov edi, -1
        emit({0x31, 0xf6, 0x31, 0xd2, 0x45, 0x31, 0xd2});                // esi, edx, r10d = 0
        emit({0x49, 0xb8}), imm64(HERMETIC_FAST_HELLO);                  // movabs r8, HELLO
        emit({0x0f, 0x05});                                              // syscall: rax = fd or -errno
        emit({0x48, 0x85, 0xc0});                                        // test rax, rax
        emit({0x78, 0x00});                                              // js done (patched below)
        const size_t js_at = c.size();
        emit({0x49, 0x89, 0xc4});                                        // mov r12, rax
        emit({0xb8}), imm32(SYS_mmap);                                   // mov eax, SYS_mmap
        emit({0xbf}), imm32(static_cast<uint32_t>(HERMETIC_FAST_BASE));  // mov edi, base
        emit({0xbe}), imm32(static_cast<uint32_t>(HERMETIC_FAST_SIZE));  // mov esi, size
        emit({0xba}), imm32(PROT_READ | PROT_EXEC);                      // mov edx, prot
        emit({0x41, 0xba}), imm32(MAP_SHARED | 0x100000);                // mov r10d, MAP_SHARED|MAP_FIXED_NOREPLACE
        emit({0x4d, 0x89, 0xe0});                                        // mov r8, r12
        emit({0x45, 0x31, 0xc9});                                        // xor r9d, r9d
        emit({0x0f, 0x05});                                              // syscall
        emit({0x48, 0x3d}), imm32(static_cast<uint32_t>(HERMETIC_FAST_BASE));  // cmp rax, base
        emit({0x75, 0x0c});                                              // jne: not mapped there
        emit({0x48, 0xc7, 0x04, 0x25}), imm32(static_cast<uint32_t>(policy::kScratchBase + kFastMappedOffset));
        imm32(1);                                                        // mov qword [mapped], 1
        emit({0xb8}), imm32(SYS_close);                                  // mov eax, SYS_close
        emit({0x4c, 0x89, 0xe7});                                        // mov rdi, r12
        emit({0x0f, 0x05});                                              // syscall
        emit({0x45, 0x31, 0xe4});                                        // xor r12d, r12d
        c[js_at - 1] = static_cast<uint8_t>(c.size() - js_at);
        const auto skip = static_cast<uint32_t>(c.size() - jne_at);
        std::memcpy(c.data() + jne_at - 4, &skip, 4);
    }
    // The entry point expects what execve left: zeros (rdx = 0: no rtld_fini).
    emit({0x31, 0xc0, 0x31, 0xff, 0x31, 0xf6, 0x31, 0xd2});               // eax, edi, esi, edx
    emit({0x45, 0x31, 0xd2, 0x45, 0x31, 0xc0, 0x31, 0xc9, 0x45, 0x31, 0xdb});  // r10d, r8d, ecx, r11d
    emit({0xff, 0x25, 0, 0, 0, 0}), imm64(entry);                         // jmp [rip+0]
    return c;
}

}  // namespace hermetic::sandbox::determinism
