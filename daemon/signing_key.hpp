// The daemon's Ed25519 signing keys, in <state-dir>/keys/ (0700, root):
//   <key id>.key   the private key, PKCS#8 PEM, 0600 (only while it is current)
//   <key id>.pub   its public key, SubjectPublicKeyInfo PEM, 0644 (kept forever)
//   current        the current key id and a newline, 0600
// The key id is audit::key_id_of_raw: sha256 of the raw public key. The first
// start generates a key. Rotation makes a new key current and deletes the old
// private key, keeping its .pub, so every job signed before stays verifiable and
// nothing new can be signed with a retired key.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "audit/keys.hpp"

namespace hermetic::daemon {

struct PublicKeyInfo {
    std::string key_id;
    std::string pem;
    bool current = false;
    int64_t created_ms = 0;  // the .pub file's mtime
};

class SigningKeys {
public:
    // Loads the current key, generating the first one if keys/ holds none. Refuses
    // (throws) a private key file that is not a regular file owned by us with mode
    // 0600 or stricter, or whose contents don't match its name: such a key may
    // have leaked, and the fix is an explicit rotation.
    explicit SigningKeys(const std::string& state_dir);

    // The key new evidence is signed with. Thread-safe; the key stays valid for
    // the holder even across a rotation.
    [[nodiscard]] std::shared_ptr<const audit::PrivateKey> current() const;
    [[nodiscard]] std::string current_key_id() const;

    // Every public key in keys/ (current and retired), for verification.
    [[nodiscard]] audit::Keyring keyring() const;
    [[nodiscard]] std::vector<PublicKeyInfo> public_keys() const;

    // Generates a new key and makes it current; returns its id. Durable on return.
    std::string rotate();

    [[nodiscard]] const std::string& dir() const { return dir_; }

private:
    void load_or_create();
    std::shared_ptr<const audit::PrivateKey> create_key();

    std::string dir_;
    mutable std::mutex mu_;
    std::shared_ptr<const audit::PrivateKey> current_;
};

}  // namespace hermetic::daemon
