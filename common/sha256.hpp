// SHA-256 through OpenSSL's EVP interface (never hand-written).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace hermetic {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;

    void update(const void* data, size_t len);
    void update(std::string_view s) { update(s.data(), s.size()); }
    // Finishes and returns the lowercase hex digest; the object is reset.
    std::string hex_digest();
    std::array<uint8_t, 32> digest();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(std::string_view data);
// Of everything left to read from `fd`; a read error throws SysError(what, errno).
std::string sha256_hex_of_fd(int fd, std::string_view what);
std::string to_hex(const uint8_t* data, size_t len);

}  // namespace hermetic
