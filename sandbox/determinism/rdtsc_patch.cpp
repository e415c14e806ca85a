#include "sandbox/determinism/rdtsc_patch.hpp"

#include <cstddef>
#include <cstring>

#include "sandbox/determinism/vdso.hpp"
#include "syscall-policy/determinism_rules.hpp"

namespace hermetic::sandbox::determinism {

namespace {

// What an instruction does to the flags, as far as moving rdtsc's neighbours
// is concerned.
enum class Flags { Untouched, WritesAll };

struct Insn {
    size_t len = 0;
    Flags flags = Flags::Untouched;
    // Offset of a RIP-relative disp32 inside the instruction (0: none).
    size_t rip_disp_at = 0;
};

// Length and flag effect of one instruction from a small set of plain integer
// instructions (what compilers schedule next to rdtsc); nullopt for anything
// else, including every branch, prefix other than REX, and flag reader.
std::optional<Insn> decode(std::span<const uint8_t> c) {
    size_t i = 0;
    auto have = [&](size_t n) { return i + n <= c.size(); };
    if (!have(1)) return std::nullopt;
    bool rex_w = false;
    if ((c[i] & 0xf0) == 0x40) {
        rex_w = c[i] & 8;
        ++i;
    }
    if (!have(1)) return std::nullopt;
    const uint8_t op = c[i++];
    bool modrm = false, memory_only = false;
    size_t imm = 0;
    Flags flags = Flags::Untouched;
    switch (op) {
        // add, or, and, sub, xor, cmp (r/m, r and r, r/m), test: write all flags.
        case 0x01: case 0x03: case 0x09: case 0x0b: case 0x21: case 0x23: case 0x29: case 0x2b:
        case 0x31: case 0x33: case 0x39: case 0x3b: case 0x85:
            modrm = true, flags = Flags::WritesAll;
            break;
        case 0x88: case 0x89: case 0x8a: case 0x8b:  // mov
            modrm = true;
            break;
        case 0x8d:  // lea
            modrm = true, memory_only = true;
            break;
        case 0x80: case 0x81: case 0x83: {  // group 1 with an immediate
            if (!have(1)) return std::nullopt;
            const uint8_t ext = (c[i] >> 3) & 7;
            if (ext == 2 || ext == 3) return std::nullopt;  // adc, sbb read CF
            modrm = true, flags = Flags::WritesAll;
            imm = op == 0x81 ? 4 : 1;
            break;
        }
        case 0xc1: {  // shl, shr, sar by an immediate (a nonzero count writes every flag)
            if (!have(1)) return std::nullopt;
            const uint8_t ext = (c[i] >> 3) & 7;
            if (ext != 4 && ext != 5 && ext != 7) return std::nullopt;
            modrm = true, imm = 1;
            flags = Flags::WritesAll;
            break;
        }
        case 0xc7:  // mov r/m, imm32
            if (!have(1) || ((c[i] >> 3) & 7) != 0) return std::nullopt;
            modrm = true, imm = 4;
            break;
        case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:  // mov r, imm
            imm = rex_w ? 8 : 4;
            break;
        case 0x0f: {
            if (!have(1)) return std::nullopt;
            const uint8_t op2 = c[i++];
            // imul r, r/m: CF/OF written, SF/ZF/AF/PF left undefined, which no
            // compiler output reads.
            if (op2 == 0xaf) modrm = true, flags = Flags::WritesAll;
            else if (op2 == 0xb6 || op2 == 0xb7 || op2 == 0xbe || op2 == 0xbf) modrm = true;  // movzx, movsx
            else return std::nullopt;
            break;
        }
        default:
            return std::nullopt;
    }
    Insn in;
    if (modrm) {
        if (!have(1)) return std::nullopt;
        const uint8_t m = c[i++];
        const uint8_t mod = m >> 6, rm = m & 7;
        if (memory_only && mod == 3) return std::nullopt;
        if (mod != 3) {
            size_t disp = mod == 1 ? 1 : mod == 2 ? 4 : 0;
            if (rm == 4) {  // SIB
                if (!have(1)) return std::nullopt;
                const uint8_t sib = c[i++];
                if (mod == 0 && (sib & 7) == 5) disp = 4;
            } else if (mod == 0 && rm == 5) {
                in.rip_disp_at = i;  // RIP-relative
                disp = 4;
            }
            i += disp;
        }
        // A shift by 0 (the count masked to 5 or, with REX.W, 6 bits) leaves the flags alone.
        if (op == 0xc1 && have(1) && (c[i] & (rex_w ? 63 : 31)) == 0) flags = Flags::Untouched;
    }
    i += imm;
    if (i > c.size()) return std::nullopt;
    in.len = i;
    in.flags = flags;
    return in;
}

void put32(std::vector<uint8_t>& v, uint32_t x) {
    uint8_t b[4];
    std::memcpy(b, &x, 4);
    v.insert(v.end(), b, b + 4);
}

// An absolute address in the clock page, as a disp32 (no base, no index).
void abs32(std::vector<uint8_t>& v, uint64_t offset) { put32(v, static_cast<uint32_t>(policy::kScratchBase + offset)); }

bool fits32(int64_t x) { return x >= INT32_MIN && x <= INT32_MAX; }

}  // namespace

std::optional<RdtscPatch> plan_rdtsc_patch(std::span<const uint8_t> code, uint64_t site_addr, uint64_t tramp_addr) {
    if (code.size() < kRdtscWindow || code[0] != 0x0f || code[1] != 0x31) return std::nullopt;
    // The instructions to move (at least 5 bytes with the rdtsc), then on until
    // one writes every flag: only then may the trampoline change them.
    std::vector<Insn> moved;
    size_t at = 2;
    bool flags_dead = false;
    while (at < code.size() && (at < 5 || !flags_dead)) {
        auto in = decode(code.subspan(at));
        if (!in) return std::nullopt;
        if (at < 5) moved.push_back(*in);
        at += in->len;
        if (in->flags == Flags::WritesAll) flags_dead = true;
    }
    if (!flags_dead) return std::nullopt;
    size_t moved_len = 0;
    for (const Insn& in : moved) moved_len += in.len;
    const size_t site_len = 2 + moved_len;
    if (site_len < 5) return std::nullopt;

    static_assert(offsetof(ClockPage, counter) == 0 && offsetof(ClockPage, base) == 8 && offsetof(ClockPage, step) == 16 &&
                  offsetof(ClockPage, mono_off) == 24 && offsetof(ClockPage, enabled) == 32 &&
                  offsetof(ClockPage, tsc_hz) == 40 && offsetof(ClockPage, ns_per_s) == 48 &&
                  sizeof(ClockPage) <= kRdtscCountOffset);
    std::vector<uint8_t> t;
    auto emit = [&](std::initializer_list<uint8_t> b) { t.insert(t.end(), b); };
    emit({0x83, 0x3c, 0x25}), abs32(t, offsetof(ClockPage, enabled)), emit({0x00});  // cmp dword [enabled], 0
    emit({0x74, 0x00});                                                               // je fallback
    const size_t je_at = t.size();
    emit({0xb8, 0x01, 0x00, 0x00, 0x00});                                             // mov eax, 1
    emit({0xf0, 0x48, 0x0f, 0xc1, 0x04, 0x25}), abs32(t, offsetof(ClockPage, counter));  // lock xadd [counter], rax
    emit({0x48, 0x83, 0xc0, 0x01});                                                   // add rax, 1
    emit({0x48, 0x0f, 0xaf, 0x04, 0x25}), abs32(t, offsetof(ClockPage, step));        // imul rax, [step]
    emit({0x48, 0x03, 0x04, 0x25}), abs32(t, offsetof(ClockPage, base));              // add rax, [base]
    emit({0x48, 0x03, 0x04, 0x25}), abs32(t, offsetof(ClockPage, mono_off));          // add rax, [mono_off]: ns since boot
    emit({0x48, 0xf7, 0x24, 0x25}), abs32(t, offsetof(ClockPage, tsc_hz));            // mul qword [tsc_hz]
    emit({0x48, 0xf7, 0x34, 0x25}), abs32(t, offsetof(ClockPage, ns_per_s));          // div qword [ns_per_s]
    emit({0xf0, 0x48, 0xff, 0x04, 0x25}), abs32(t, kRdtscCountOffset);                // lock inc qword [rdtsc count]
    emit({0x48, 0x89, 0xc2});                                                         // mov rdx, rax
    emit({0x48, 0xc1, 0xea, 0x20});                                                   // shr rdx, 32
    emit({0x89, 0xc0});                                                               // mov eax, eax
    emit({0xeb, 0x02});                                                               // jmp over the fallback
    t[je_at - 1] = static_cast<uint8_t>(t.size() - je_at);
    emit({0x0f, 0x31});                                                               // fallback: rdtsc (traps)
    // The moved instructions, RIP-relative operands re-based.
    size_t from = 2;
    for (const Insn& in : moved) {
        const size_t here = t.size();
        t.insert(t.end(), code.begin() + static_cast<long>(from), code.begin() + static_cast<long>(from + in.len));
        if (in.rip_disp_at) {
            int32_t disp;
            std::memcpy(&disp, &code[from + in.rip_disp_at], 4);
            const int64_t target = static_cast<int64_t>(site_addr + from + in.len) + disp;
            const int64_t rebased = target - static_cast<int64_t>(tramp_addr + here + in.len);
            if (!fits32(rebased)) return std::nullopt;
            const int32_t d = static_cast<int32_t>(rebased);
            std::memcpy(&t[here + in.rip_disp_at], &d, 4);
        }
        from += in.len;
    }
    const int64_t back = static_cast<int64_t>(site_addr + site_len) - static_cast<int64_t>(tramp_addr + t.size() + 5);
    if (!fits32(back)) return std::nullopt;
    emit({0xe9}), put32(t, static_cast<uint32_t>(static_cast<int32_t>(back)));  // jmp back
    if (t.size() > kRdtscTrampolineMax) return std::nullopt;

    const int64_t to = static_cast<int64_t>(tramp_addr) - static_cast<int64_t>(site_addr + 5);
    if (!fits32(to)) return std::nullopt;
    RdtscPatch p;
    p.site = {0xe9};
    put32(p.site, static_cast<uint32_t>(static_cast<int32_t>(to)));
    p.site.resize(site_len, 0xcc);  // never run: a jump into the middle stops loudly
    p.trampoline = std::move(t);
    return p;
}

namespace {

// `mov eax, imm32; syscall`: the 7 bytes a syscall-site patch replaces.
bool is_syscall_site(std::span<const uint8_t> code) {
    return code.size() >= kSyscallSiteLen && code[0] == 0xb8 && code[5] == 0x0f && code[6] == 0x05;
}

// The site's side: a jump to the trampoline, int3 after it (never run).
std::optional<RdtscPatch> syscall_site_jump(std::vector<uint8_t> trampoline, uint64_t site_addr, uint64_t tramp_addr) {
    const int64_t to = static_cast<int64_t>(tramp_addr) - static_cast<int64_t>(site_addr + 5);
    if (!fits32(to)) return std::nullopt;
    RdtscPatch p;
    p.site = {0xe9};
    put32(p.site, static_cast<uint32_t>(static_cast<int32_t>(to)));
    p.site.resize(kSyscallSiteLen, 0xcc);
    p.trampoline = std::move(trampoline);
    return p;
}

}  // namespace

std::optional<RdtscPatch> plan_errno_syscall_patch(std::span<const uint8_t> code, uint64_t site_addr, uint64_t tramp_addr,
                                                   int nr, int error, uint64_t count_offset) {
    if (!is_syscall_site(code)) return std::nullopt;
    uint32_t imm;
    std::memcpy(&imm, &code[1], 4);
    if (nr < 0 || imm != static_cast<uint32_t>(nr) || error <= 0 || error > 4095) return std::nullopt;
    std::vector<uint8_t> t;
    auto emit = [&](std::initializer_list<uint8_t> b) { t.insert(t.end(), b); };
    // mov/lea/mov: an increment that leaves the flags alone (the loader runs
    // this single-threaded; a lost count is an audit undercount, nothing else).
    emit({0x48, 0x8b, 0x0c, 0x25}), abs32(t, count_offset);  // mov rcx, [count]
    emit({0x48, 0x8d, 0x49, 0x01});                          // lea rcx, [rcx + 1]
    emit({0x48, 0x89, 0x0c, 0x25}), abs32(t, count_offset);  // mov [count], rcx
    emit({0x48, 0xc7, 0xc0}), put32(t, static_cast<uint32_t>(-error));  // mov rax, -error
    const int64_t back = static_cast<int64_t>(site_addr + kSyscallSiteLen) - static_cast<int64_t>(tramp_addr + t.size() + 5);
    if (!fits32(back)) return std::nullopt;
    emit({0xe9}), put32(t, static_cast<uint32_t>(static_cast<int32_t>(back)));  // jmp back
    return syscall_site_jump(std::move(t), site_addr, tramp_addr);
}

std::optional<RdtscPatch> plan_guarded_call_patch(std::span<const uint8_t> code, uint64_t site_addr, uint64_t tramp_addr,
                                                  uint64_t guard_offset, uint32_t slot_addr) {
    if (!is_syscall_site(code)) return std::nullopt;
    std::vector<uint8_t> t;
    auto emit = [&](std::initializer_list<uint8_t> b) { t.insert(t.end(), b); };
    auto jmp_back = [&] {
        const int64_t back = static_cast<int64_t>(site_addr + kSyscallSiteLen) - static_cast<int64_t>(tramp_addr + t.size() + 5);
        emit({0xe9}), put32(t, static_cast<uint32_t>(static_cast<int32_t>(back)));
        return fits32(back);
    };
    emit({0x80, 0x3c, 0x25}), abs32(t, guard_offset), emit({0x00});  // cmp byte [mapped], 0
    emit({0x74, 0x0c});                                               // je: make the call
    emit({0xff, 0x14, 0x25}), put32(t, slot_addr);                    // call [slot]
    bool ok = jmp_back();
    t.insert(t.end(), code.begin(), code.begin() + kSyscallSiteLen);  // mov eax, NR; syscall
    ok = jmp_back() && ok;
    if (!ok || t.size() != kGuardedCallTrampolineLen) return std::nullopt;
    return syscall_site_jump(std::move(t), site_addr, tramp_addr);
}

}  // namespace hermetic::sandbox::determinism
