#include "common/sha256.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <stdexcept>

#include "common/sys_error.hpp"

namespace hermetic {

namespace {

// Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up in its
// provider (locks, a hash table) at every init, which cost more than hashing
// the short names the determinism engine digests per process.
const EVP_MD* sha256_md() {
    static EVP_MD* md = [] {
        EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
        if (!m) throw std::runtime_error("EVP_MD_fetch(SHA256) failed");
        return m;
    }();
    return md;
}

}  // namespace

struct Sha256::Impl {
    EVP_MD_CTX* ctx = nullptr;
    Impl() : ctx(EVP_MD_CTX_new()) {
        if (!ctx || EVP_DigestInit_ex(ctx, sha256_md(), nullptr) != 1)
            throw std::runtime_error("EVP_DigestInit_ex(sha256) failed");
    }
    ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t len) {
    if (EVP_DigestUpdate(impl_->ctx, data, len) != 1) throw std::runtime_error("EVP_DigestUpdate failed");
}

std::array<uint8_t, 32> Sha256::digest() {
    std::array<uint8_t, 32> out{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(impl_->ctx, out.data(), &len) != 1 || len != out.size())
        throw std::runtime_error("EVP_DigestFinal_ex failed");
    if (EVP_DigestInit_ex(impl_->ctx, sha256_md(), nullptr) != 1)
        throw std::runtime_error("EVP_DigestInit_ex failed");
    return out;
}

std::string Sha256::hex_digest() {
    auto d = digest();
    return to_hex(d.data(), d.size());
}

std::string to_hex(const uint8_t* data, size_t len) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s(len * 2, '\0');
    for (size_t i = 0; i < len; ++i) {
        s[2 * i] = kHex[data[i] >> 4];
        s[2 * i + 1] = kHex[data[i] & 0xf];
    }
    return s;
}

std::string sha256_hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.hex_digest();
}

std::string sha256_hex_of_fd(int fd, std::string_view what) {
    Sha256 h;
    char buf[65536];
    for (;;) {
        ssize_t r = retry_eintr([&] { return ::read(fd, buf, sizeof buf); });
        if (r < 0) throw_errno(what);
        if (r == 0) return h.hex_digest();
        h.update(buf, static_cast<size_t>(r));
    }
}

}  // namespace hermetic
