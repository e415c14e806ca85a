// Small encodings the evidence formats need: base64 (DSSE), bounded text for
// untrusted strings (exe, args, values), hex digests.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hermetic::audit {

// Malformed evidence (bad base64, bad JSON, wrong field types): the message says
// what and where, one line.
class FormatError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Standard base64 with padding (RFC 4648 section 4), through OpenSSL.
std::string base64_encode(std::string_view data);
// Strict: only the standard alphabet, padded, no whitespace. Throws FormatError.
std::string base64_decode(std::string_view text);

// Text from the build (file names, argument summaries) made fit for a JSON string
// without losing information: valid UTF-8 is kept, every byte of an invalid
// sequence becomes the four characters "\xNN". Longer than `max` bytes (after that
// escaping), it is cut at a character boundary and ends in "...[+N bytes]",
// N counting the original bytes left out; the result is at most max + 32 bytes.
std::string bounded_text(std::string_view s, size_t max);

// Identifier-like strings (syscall names, classes): [A-Za-z0-9_.:()+-] kept,
// anything else becomes '?'; cut to `max` bytes. Bounds the size of keys that
// aggregation and summaries carry.
std::string bounded_ident(std::string_view s, size_t max);

// 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s);

// RFC 3339 UTC with milliseconds, e.g. "2024-05-01T12:00:00.123Z".
std::string rfc3339_ms(int64_t unix_ms);

}  // namespace hermetic::audit
