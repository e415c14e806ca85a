// DSSE (Dead Simple Signing Envelope) v1, https://github.com/secure-systems-lab/dsse:
// the signature covers PAE(payloadType, payload), the exact payload bytes, so a
// verifier never re-serializes JSON. Both the audit summary and the in-toto
// attestation travel in one.
//
// Envelope JSON (keys in nlohmann's sorted order):
//   {"payload":"<base64>","payloadType":"<type>","signatures":[{"keyid":"<key id>","sig":"<base64>"}]}
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/keys.hpp"

namespace hermetic::audit {

inline constexpr const char* kInTotoPayloadType = "application/vnd.in-toto+json";
inline constexpr const char* kSummaryPayloadType = "application/vnd.hermetic.audit-summary+json";

// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in ASCII decimal.
std::string pae(std::string_view payload_type, std::string_view payload);

struct DsseSignature {
    std::string keyid;
    std::string sig;  // raw 64 bytes
};

struct Envelope {
    std::string payload_type;
    std::string payload;  // raw bytes
    std::vector<DsseSignature> signatures;
};

Envelope sign_envelope(std::string_view payload_type, std::string payload, const PrivateKey& key);

nlohmann::json envelope_to_json(const Envelope& e);
std::string serialize_envelope(const Envelope& e);  // one line, then "\n"
// Throws FormatError naming the bad field.
Envelope parse_envelope(std::string_view text);

struct EnvelopeCheck {
    bool ok = false;
    std::string key_id;  // the key that verified
    std::string hint;    // the keyid the verified signature carried (unsigned)
    std::string error;   // one line when !ok
};

// Accepts the envelope if one signature verifies with a key of the ring (the
// signature's keyid is only a hint: every key is tried if it names none we have)
// and the payload type is the expected one.
EnvelopeCheck verify_envelope(const Envelope& e, std::string_view expected_type, const Keyring& keys);

}  // namespace hermetic::audit
