#include "audit/encoding.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <ctime>
#include <vector>

namespace hermetic::audit {

std::string base64_encode(std::string_view data) {
    std::string out(4 * ((data.size() + 2) / 3), '\0');
    if (data.empty()) return out;
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
    if (n < 0 || static_cast<size_t>(n) != out.size()) throw std::runtime_error("EVP_EncodeBlock failed");
    return out;
}

std::string base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) throw FormatError("base64: length is not a multiple of 4");
    size_t pad = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (c == '=') {
            // Padding only in the last two positions, and nothing after it but more padding.
            if (i + 2 < text.size()) throw FormatError("base64: '=' before the end");
            ++pad;
        } else if (!alpha || pad > 0) {
            throw FormatError("base64: invalid character at offset " + std::to_string(i));
        }
    }
    if (text.empty()) return {};
    std::string out(text.size() / 4 * 3, '\0');
    // EVP_DecodeBlock counts padding as zero bytes; the padding count trims them.
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0 || static_cast<size_t>(n) != out.size()) throw FormatError("base64: invalid encoding");
    out.resize(out.size() - pad);
    return out;
}

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one.
size_t utf8_len(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return 0;
    if (i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
        if ((b(i + k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

}  // namespace

std::string bounded_text(std::string_view s, size_t max) {
    static constexpr char kHex[] = "0123456789abcdef";
    // The common case: short ASCII, kept as it is.
    if (s.size() <= max &&
        std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
        return std::string(s);
    std::string out;
    out.reserve(std::min(s.size(), max) + 8);
    size_t i = 0;
    while (i < s.size()) {
        size_t len = utf8_len(s, i);
        size_t add = len ? len : 4;
        if (out.size() + add > max) break;
        if (len) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            unsigned char c = static_cast<unsigned char>(s[i]);
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
            ++i;
        }
    }
    if (i < s.size()) out += "...[+" + std::to_string(s.size() - i) + " bytes]";
    return out;
}

std::string bounded_ident(std::string_view s, size_t max) {
    std::string out(s.substr(0, max));
    for (char& c : out) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                  c == ':' || c == '(' || c == ')' || c == '+' || c == '-';
        if (!ok) c = '?';
    }
    return out;
}

bool is_sha256_hex(std::string_view s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string rfc3339_ms(int64_t unix_ms) {
    time_t secs = static_cast<time_t>(unix_ms / 1000);
    int64_t ms = unix_ms % 1000;
    if (ms < 0) ms += 1000, --secs;
    tm t{};
    if (!gmtime_r(&secs, &t)) throw std::runtime_error("gmtime_r failed");
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
             t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(ms));
    return buf;
}

}  // namespace hermetic::audit
