// SHA-256 for the per-record hot path. Same OpenSSL EVP digest as common's
// Sha256, but the algorithm is fetched once per process: in OpenSSL 3 every
// EVP_DigestInit_ex(ctx, EVP_sha256()) re-resolves the provider under a lock,
// which cost more than hashing a whole record.
#pragma once

#include <memory>
#include <string>
#include <string_view>

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace hermetic::audit {

class Hasher {
public:
    Hasher();
    ~Hasher();
    Hasher(const Hasher&) = delete;
    Hasher& operator=(const Hasher&) = delete;
    Hasher(Hasher&&) noexcept;
    Hasher& operator=(Hasher&&) noexcept;

    void update(std::string_view data);
    // Lowercase hex of the digest so far; starts over for the next message.
    std::string hex_digest();
    // One message in one call.
    std::string hex(std::string_view data) {
        update(data);
        return hex_digest();
    }

private:
    EVP_MD_CTX* ctx_ = nullptr;
};

}  // namespace hermetic::audit
