#include "audit/hasher.hpp"

#include <openssl/evp.h>

#include <stdexcept>
#include <utility>

#include "common/sha256.hpp"

namespace hermetic::audit {

namespace {

const EVP_MD* sha256_md() {
    // Fetched once and kept for the life of the process (never freed: it must
    // outlive every Hasher, including thread_local ones).
    static const EVP_MD* md = [] {
        EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
        if (!m) throw std::runtime_error("EVP_MD_fetch(SHA256) failed");
        return m;
    }();
    return md;
}

}  // namespace

Hasher::Hasher() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex2(ctx_, sha256_md(), nullptr) != 1) {
        EVP_MD_CTX_free(ctx_);
        throw std::runtime_error("EVP_DigestInit_ex2(sha256) failed");
    }
}

Hasher::~Hasher() { EVP_MD_CTX_free(ctx_); }
Hasher::Hasher(Hasher&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)) {}
Hasher& Hasher::operator=(Hasher&& o) noexcept {
    std::swap(ctx_, o.ctx_);
    return *this;
}

void Hasher::update(std::string_view data) {
    if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) throw std::runtime_error("EVP_DigestUpdate failed");
}

std::string Hasher::hex_digest() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, out, &len) != 1 || len != 32) throw std::runtime_error("EVP_DigestFinal_ex failed");
    if (EVP_DigestInit_ex2(ctx_, nullptr, nullptr) != 1) throw std::runtime_error("EVP_DigestInit_ex2 failed");
    return to_hex(out, len);
}

}  // namespace hermetic::audit
