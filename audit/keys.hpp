// Ed25519 keys through OpenSSL (EVP_PKEY_ED25519), never hand-written crypto.
// A key is named by its key id: the SHA-256 (hex) of its 32-byte raw public key,
// which is what summaries, envelopes and key files carry.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

typedef struct evp_pkey_st EVP_PKEY;

namespace hermetic::audit {

class KeyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct PkeyFree {
    void operator()(EVP_PKEY* p) const noexcept;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

class PublicKey {
public:
    // SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----"); must be Ed25519.
    static PublicKey from_pem(std::string_view pem);
    static PublicKey from_raw(std::string_view raw32);

    [[nodiscard]] const std::string& key_id() const { return key_id_; }
    [[nodiscard]] std::string raw() const;  // 32 bytes
    [[nodiscard]] std::string pem() const;
    [[nodiscard]] bool verify(std::string_view message, std::string_view signature) const;

private:
    explicit PublicKey(PkeyPtr p);
    std::shared_ptr<EVP_PKEY> pkey_;
    std::string key_id_;
};

class PrivateKey {
public:
    static PrivateKey generate();
    // PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), unencrypted; must be Ed25519.
    static PrivateKey from_pem(std::string_view pem);

    [[nodiscard]] std::string pem() const;
    [[nodiscard]] const PublicKey& public_key() const { return public_; }
    [[nodiscard]] const std::string& key_id() const { return public_.key_id(); }
    // Ed25519 (pure, no pre-hash): 64 bytes. Safe to call from several threads.
    [[nodiscard]] std::string sign(std::string_view message) const;

private:
    PrivateKey(PkeyPtr p, PublicKey pub);
    std::shared_ptr<EVP_PKEY> pkey_;
    PublicKey public_;
};

std::string key_id_of_raw(std::string_view raw32);

// Public keys by key id: what a verifier trusts.
class Keyring {
public:
    void add(const PublicKey& k) { keys_.insert_or_assign(k.key_id(), k); }
    // One or more PEM public keys, concatenated (e.g. `hermeticctl pubkey --all`).
    void add_pem_bundle(std::string_view pem);
    [[nodiscard]] const PublicKey* find(const std::string& key_id) const;
    [[nodiscard]] std::vector<const PublicKey*> all() const;
    [[nodiscard]] bool empty() const { return keys_.empty(); }
    [[nodiscard]] size_t size() const { return keys_.size(); }

private:
    std::map<std::string, PublicKey> keys_;
};

}  // namespace hermetic::audit
