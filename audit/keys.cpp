#include "audit/keys.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/sha256.hpp"

namespace hermetic::audit {

void PkeyFree::operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }

namespace {

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// The last OpenSSL error as text, and the queue cleared, so one failure never
// shows up in the next unrelated message.
std::string openssl_error() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

BioPtr mem_bio(std::string_view data) {
    BioPtr b(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (!b) throw KeyError("BIO_new_mem_buf failed");
    return b;
}

std::string bio_contents(BIO* b) {
    char* p = nullptr;
    long n = BIO_get_mem_data(b, &p);
    return std::string(p, static_cast<size_t>(n));
}

std::string raw_public(EVP_PKEY* p) {
    std::string raw(32, '\0');
    size_t len = raw.size();
    if (EVP_PKEY_get_raw_public_key(p, reinterpret_cast<unsigned char*>(raw.data()), &len) != 1 || len != 32)
        throw KeyError("reading the raw Ed25519 public key: " + openssl_error());
    return raw;
}

void require_ed25519(EVP_PKEY* p, const char* what) {
    if (EVP_PKEY_get_base_id(p) != EVP_PKEY_ED25519) throw KeyError(std::string(what) + " is not an Ed25519 key");
}

}  // namespace

std::string key_id_of_raw(std::string_view raw32) { return sha256_hex(raw32); }

PublicKey::PublicKey(PkeyPtr p) : pkey_(p.release(), PkeyFree{}) { key_id_ = key_id_of_raw(raw_public(pkey_.get())); }

PublicKey PublicKey::from_pem(std::string_view pem) {
    auto bio = mem_bio(pem);
    PkeyPtr p(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!p) throw KeyError("not a PEM public key: " + openssl_error());
    require_ed25519(p.get(), "the public key");
    return PublicKey(std::move(p));
}

PublicKey PublicKey::from_raw(std::string_view raw32) {
    if (raw32.size() != 32) throw KeyError("an Ed25519 public key is 32 bytes");
    PkeyPtr p(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                          reinterpret_cast<const unsigned char*>(raw32.data()), raw32.size()));
    if (!p) throw KeyError("EVP_PKEY_new_raw_public_key: " + openssl_error());
    return PublicKey(std::move(p));
}

std::string PublicKey::raw() const { return raw_public(pkey_.get()); }

std::string PublicKey::pem() const {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (!b || PEM_write_bio_PUBKEY(b.get(), pkey_.get()) != 1) throw KeyError("PEM_write_bio_PUBKEY: " + openssl_error());
    return bio_contents(b.get());
}

bool PublicKey::verify(std::string_view message, std::string_view signature) const {
    if (signature.size() != 64) return false;
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1)
        throw KeyError("EVP_DigestVerifyInit: " + openssl_error());
    int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                              reinterpret_cast<const unsigned char*>(message.data()), message.size());
    if (rc != 1) ERR_clear_error();
    return rc == 1;
}

PrivateKey::PrivateKey(PkeyPtr p, PublicKey pub) : pkey_(p.release(), PkeyFree{}), public_(std::move(pub)) {}

namespace {

PublicKey public_of(EVP_PKEY* priv) { return PublicKey::from_raw(raw_public(priv)); }

}  // namespace

PrivateKey PrivateKey::generate() {
    EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (!raw) throw KeyError("generating an Ed25519 key: " + openssl_error());
    PkeyPtr p(raw);
    PublicKey pub = public_of(p.get());
    return PrivateKey(std::move(p), std::move(pub));
}

PrivateKey PrivateKey::from_pem(std::string_view pem) {
    auto bio = mem_bio(pem);
    PkeyPtr p(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!p) throw KeyError("not a PEM private key: " + openssl_error());
    require_ed25519(p.get(), "the private key");
    PublicKey pub = public_of(p.get());
    return PrivateKey(std::move(p), std::move(pub));
}

std::string PrivateKey::pem() const {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (!b || PEM_write_bio_PrivateKey(b.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
        throw KeyError("PEM_write_bio_PrivateKey: " + openssl_error());
    return bio_contents(b.get());
}

std::string PrivateKey::sign(std::string_view message) const {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1)
        throw KeyError("EVP_DigestSignInit: " + openssl_error());
    std::string sig(64, '\0');
    size_t len = sig.size();
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
        len != 64)
        throw KeyError("EVP_DigestSign: " + openssl_error());
    return sig;
}

void Keyring::add_pem_bundle(std::string_view pem) {
    static constexpr std::string_view kBegin = "-----BEGIN PUBLIC KEY-----";
    static constexpr std::string_view kEnd = "-----END PUBLIC KEY-----";
    size_t pos = 0, found = 0;
    while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
        size_t end = pem.find(kEnd, pos);
        if (end == std::string_view::npos) throw KeyError("unterminated PEM public key");
        end += kEnd.size();
        add(PublicKey::from_pem(pem.substr(pos, end - pos)));
        ++found;
        pos = end;
    }
    if (found == 0) throw KeyError("no PEM public key (\"" + std::string(kBegin) + "\") found");
}

const PublicKey* Keyring::find(const std::string& key_id) const {
    auto it = keys_.find(key_id);
    return it == keys_.end() ? nullptr : &it->second;
}

std::vector<const PublicKey*> Keyring::all() const {
    std::vector<const PublicKey*> v;
    for (const auto& [id, k] : keys_) v.push_back(&k);
    return v;
}

}  // namespace hermetic::audit
