#include "sandbox/determinism/wire.hpp"

#include <cstring>
#include <stdexcept>

namespace hermetic::sandbox::determinism {

namespace {

constexpr size_t kMaxRecord = 1 << 16;

template <typename T>
void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& out, std::string_view s) {
    if (s.size() > 0xffff) s = s.substr(0, 0xffff);
    put<uint16_t>(out, static_cast<uint16_t>(s.size()));
    out.append(s);
}

struct Cursor {
    std::string_view in;
    template <typename T>
    T get() {
        if (in.size() < sizeof(T)) throw std::runtime_error("deviation record truncated");
        T v;
        std::memcpy(&v, in.data(), sizeof v);
        in.remove_prefix(sizeof v);
        return v;
    }
    std::string get_str() {
        auto n = get<uint16_t>();
        if (in.size() < n) throw std::runtime_error("deviation record truncated");
        std::string s(in.substr(0, n));
        in.remove_prefix(n);
        return s;
    }
};

}  // namespace

void encode_deviation(const Deviation& d, std::string& out) {
    size_t start = out.size();
    put<uint32_t>(out, 0);  // length, patched below
    put<int64_t>(out, d.virtual_time_ns);
    put<int32_t>(out, d.real_pid);
    put<int32_t>(out, d.virtual_pid);
    put<int32_t>(out, d.syscall_nr);
    put<uint64_t>(out, d.count);
    put<uint8_t>(out, static_cast<uint8_t>(d.action));
    put<uint8_t>(out, d.real_value ? 1 : 0);
    put_str(out, d.exe);
    put_str(out, d.syscall);
    put_str(out, d.args);
    put_str(out, d.cls);
    put_str(out, d.value);
    if (d.real_value) put_str(out, *d.real_value);
    uint32_t len = static_cast<uint32_t>(out.size() - start - sizeof(uint32_t));
    std::memcpy(out.data() + start, &len, sizeof len);
}

bool decode_deviation(std::string_view& in, Deviation& d) {
    if (in.size() < sizeof(uint32_t)) return false;
    uint32_t len;
    std::memcpy(&len, in.data(), sizeof len);
    if (len > kMaxRecord) throw std::runtime_error("deviation record too long");
    if (in.size() < sizeof len + len) return false;
    Cursor c{in.substr(sizeof len, len)};
    d.virtual_time_ns = c.get<int64_t>();
    d.real_pid = c.get<int32_t>();
    d.virtual_pid = c.get<int32_t>();
    d.syscall_nr = c.get<int32_t>();
    d.count = c.get<uint64_t>();
    if (d.count == 0) throw std::runtime_error("deviation record with a zero count");
    auto action = c.get<uint8_t>();
    if (action > static_cast<uint8_t>(DeviationAction::Logged)) throw std::runtime_error("bad deviation action");
    d.action = static_cast<DeviationAction>(action);
    bool has_real = c.get<uint8_t>() != 0;
    d.exe = c.get_str();
    d.syscall = c.get_str();
    d.args = c.get_str();
    d.cls = c.get_str();
    d.value = c.get_str();
    if (has_real) d.real_value = c.get_str();
    else d.real_value.reset();
    in.remove_prefix(sizeof len + len);
    return true;
}

}  // namespace hermetic::sandbox::determinism
