// Deterministic random streams: ChaCha20 keystreams (OpenSSL EVP) keyed by the
// job seed, one stream per (reader identity, purpose). A stream's bytes depend
// only on the seed, its name and how many bytes were taken from it before, never
// on which process asked first.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

namespace hermetic::sandbox::determinism {

using StreamKey = std::array<uint8_t, 32>;

// The job's root key: SHA-256 over a domain label and the seed.
StreamKey root_key(uint64_t seed);

class Prng {
public:
    Prng(const StreamKey& key, std::string_view stream_name);
    ~Prng();
    Prng(const Prng&) = delete;
    Prng& operator=(const Prng&) = delete;

    void fill(void* out, size_t n);
    [[nodiscard]] uint64_t consumed() const { return consumed_; }

private:
    EVP_CIPHER_CTX* ctx_ = nullptr;
    uint64_t consumed_ = 0;
};

// n bytes at the start of a named stream (one-shot: AT_RANDOM, boot_id, ...).
void stream_bytes(const StreamKey& key, std::string_view stream_name, void* out, size_t n);

// The first SHA-256 and ChaCha20 of a process load OpenSSL's configuration and
// fetch the algorithms from its provider (~2 ms); this does it ahead of time.
void warm_up_crypto();

}  // namespace hermetic::sandbox::determinism
