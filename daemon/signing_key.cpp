#include "daemon/signing_key.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "audit/encoding.hpp"
#include "audit/files.hpp"
#include "common/io.hpp"
#include "common/sys_error.hpp"

namespace hermetic::daemon {

namespace {

constexpr size_t kMaxKeyFile = 16 << 10;

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
    return s;
}

void ensure_keys_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("create " + dir);
    struct stat st{};
    if (::lstat(dir.c_str(), &st) != 0) throw_errno("stat " + dir);
    if (!S_ISDIR(st.st_mode)) throw SysError(dir + " is not a directory", ENOTDIR);
    if (st.st_uid != ::geteuid()) throw SysError(dir + " is not owned by the daemon's user", EPERM);
    if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0) throw_errno("chmod 0700 " + dir);
}

std::string read_private(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (!fd) throw_errno("open " + path);
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) throw_errno("stat " + path);
    if (!S_ISREG(st.st_mode)) throw SysError(path + " is not a regular file", EINVAL);
    if (st.st_uid != ::geteuid()) throw SysError(path + " is not owned by the daemon's user", EPERM);
    if (st.st_mode & 077) {
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        throw SysError(path + " has mode " + mode + ", must be 0600 (the key may have leaked: rotate it)", EPERM);
    }
    return read_to_end(fd.get(), kMaxKeyFile);
}

}  // namespace

SigningKeys::SigningKeys(const std::string& state_dir) : dir_(state_dir + "/keys") {
    ensure_keys_dir(dir_);
    load_or_create();
}

std::shared_ptr<const audit::PrivateKey> SigningKeys::create_key() {
    auto key = std::make_shared<const audit::PrivateKey>(audit::PrivateKey::generate());
    const std::string& id = key->key_id();
    // Public half first: a crash in between leaves a harmless .pub, never a
    // private key without its public one.
    audit::write_file_atomic(dir_, id + ".pub", key->public_key().pem(), 0644);
    audit::write_file_atomic(dir_, id + ".key", key->pem(), 0600);
    audit::write_file_atomic(dir_, "current", id + "\n", 0600);
    return key;
}

void SigningKeys::load_or_create() {
    auto cur = audit::read_file_if_exists(dir_ + "/current", 256);
    if (!cur) {
        current_ = create_key();
        return;
    }
    std::string id = trim(*cur);
    if (!audit::is_sha256_hex(id)) throw SysError(dir_ + "/current does not hold a key id", EINVAL);
    auto key = std::make_shared<const audit::PrivateKey>(audit::PrivateKey::from_pem(read_private(dir_ + "/" + id + ".key")));
    if (key->key_id() != id) throw SysError(dir_ + "/" + id + ".key holds key " + key->key_id(), EINVAL);
    auto pub = audit::read_file_if_exists(dir_ + "/" + id + ".pub", kMaxKeyFile);
    if (!pub || audit::PublicKey::from_pem(*pub).key_id() != id)
        audit::write_file_atomic(dir_, id + ".pub", key->public_key().pem(), 0644);
    current_ = std::move(key);
}

std::shared_ptr<const audit::PrivateKey> SigningKeys::current() const {
    std::lock_guard lock(mu_);
    return current_;
}

std::string SigningKeys::current_key_id() const { return current()->key_id(); }

std::vector<PublicKeyInfo> SigningKeys::public_keys() const {
    std::string cur = current_key_id();
    std::vector<PublicKeyInfo> out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
    if (!d) throw_errno("open " + dir_);
    while (dirent* e = ::readdir(d.get())) {
        std::string name = e->d_name;
        if (name.size() != 68 || !name.ends_with(".pub")) continue;
        std::string id = name.substr(0, 64);
        if (!audit::is_sha256_hex(id)) continue;
        auto pem = audit::read_file_if_exists(dir_ + "/" + name, kMaxKeyFile);
        if (!pem) continue;
        // A .pub whose contents are another key is not trusted under this name.
        if (audit::PublicKey::from_pem(*pem).key_id() != id) continue;
        struct stat st{};
        int64_t created = 0;
        if (::stat((dir_ + "/" + name).c_str(), &st) == 0)
            created = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
        out.push_back({id, *pem, id == cur, created});
    }
    std::sort(out.begin(), out.end(), [](const PublicKeyInfo& a, const PublicKeyInfo& b) {
        return std::tie(a.created_ms, a.key_id) < std::tie(b.created_ms, b.key_id);
    });
    return out;
}

audit::Keyring SigningKeys::keyring() const {
    audit::Keyring ring;
    for (const auto& k : public_keys()) ring.add(audit::PublicKey::from_pem(k.pem));
    ring.add(current()->public_key());
    return ring;
}

std::string SigningKeys::rotate() {
    std::lock_guard lock(mu_);
    auto old = current_;
    current_ = create_key();
    if (old && old->key_id() != current_->key_id()) {
        std::string old_key = dir_ + "/" + old->key_id() + ".key";
        if (::unlink(old_key.c_str()) != 0 && errno != ENOENT) throw_errno("remove " + old_key);
        audit::fsync_path(dir_);
    }
    return current_->key_id();
}

}  // namespace hermetic::daemon
