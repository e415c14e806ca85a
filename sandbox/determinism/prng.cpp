#include "sandbox/determinism/prng.hpp"

#include <cstring>
#include <stdexcept>

#include "common/sha256.hpp"

namespace hermetic::sandbox::determinism {

namespace {

std::array<uint8_t, 32> sha(std::string_view a, std::string_view b) {
    Sha256 h;
    h.update(a);
    uint8_t sep = 0;
    h.update(&sep, 1);
    h.update(b);
    return h.digest();
}

// Fetched once (see sha256_md in common/sha256.cpp): an AT_RANDOM per exec
// makes this per-process work.
const EVP_CIPHER* chacha20() {
    static EVP_CIPHER* c = [] {
        EVP_CIPHER* x = EVP_CIPHER_fetch(nullptr, "ChaCha20", nullptr);
        if (!x) throw std::runtime_error("EVP_CIPHER_fetch(ChaCha20) failed");
        return x;
    }();
    return c;
}

}  // namespace

StreamKey root_key(uint64_t seed) {
    uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(seed >> (8 * i));
    return sha("hermetic determinism seed v1", std::string_view(reinterpret_cast<const char*>(le), 8));
}

Prng::Prng(const StreamKey& key, std::string_view stream_name) {
    // Each stream has its own key (SHA-256(root key, name)) and a zero nonce, so
    // streams never share keystream whatever their names' lengths.
    auto k = sha(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), stream_name);
    uint8_t iv[16] = {0};  // 32-bit block counter, then a 96-bit nonce
    ctx_ = EVP_CIPHER_CTX_new();
    if (!ctx_ || EVP_EncryptInit_ex(ctx_, chacha20(), nullptr, k.data(), iv) != 1) {
        EVP_CIPHER_CTX_free(ctx_);
        throw std::runtime_error("ChaCha20 init failed");
    }
}

Prng::~Prng() { EVP_CIPHER_CTX_free(ctx_); }

void Prng::fill(void* out, size_t n) {
    // The keystream is the encryption of zeros.
    static const uint8_t zeros[4096] = {0};
    auto* p = static_cast<uint8_t*>(out);
    while (n > 0) {
        int chunk = static_cast<int>(n < sizeof zeros ? n : sizeof zeros);
        int outl = 0;
        if (EVP_EncryptUpdate(ctx_, p, &outl, zeros, chunk) != 1 || outl != chunk)
            throw std::runtime_error("ChaCha20 failed");
        p += chunk;
        n -= static_cast<size_t>(chunk);
        consumed_ += static_cast<uint64_t>(chunk);
    }
}

void stream_bytes(const StreamKey& key, std::string_view stream_name, void* out, size_t n) {
    Prng p(key, stream_name);
    p.fill(out, n);
}

void warm_up_crypto() {
    uint8_t bytes[16];
    stream_bytes(root_key(0), "warm-up", bytes, sizeof bytes);
}

}  // namespace hermetic::sandbox::determinism
