#include "audit/dsse.hpp"

#include "audit/encoding.hpp"

namespace hermetic::audit {

using nlohmann::json;

std::string pae(std::string_view payload_type, std::string_view payload) {
    std::string s = "DSSEv1 ";
    s += std::to_string(payload_type.size());
    s += ' ';
    s += payload_type;
    s += ' ';
    s += std::to_string(payload.size());
    s += ' ';
    s += payload;
    return s;
}

Envelope sign_envelope(std::string_view payload_type, std::string payload, const PrivateKey& key) {
    Envelope e;
    e.payload_type = payload_type;
    e.payload = std::move(payload);
    e.signatures.push_back({key.key_id(), key.sign(pae(e.payload_type, e.payload))});
    return e;
}

json envelope_to_json(const Envelope& e) {
    json sigs = json::array();
    for (const auto& s : e.signatures) sigs.push_back({{"keyid", s.keyid}, {"sig", base64_encode(s.sig)}});
    return json{{"payload", base64_encode(e.payload)}, {"payloadType", e.payload_type}, {"signatures", sigs}};
}

std::string serialize_envelope(const Envelope& e) { return envelope_to_json(e).dump() + "\n"; }

namespace {

const std::string& string_field(const json& j, const char* key, const char* where) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string())
        throw FormatError(std::string(where) + ": \"" + key + "\" is missing or not a string");
    return it->get_ref<const std::string&>();
}

}  // namespace

Envelope parse_envelope(std::string_view text) {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) throw FormatError("envelope: not a JSON object");
    Envelope e;
    e.payload_type = string_field(j, "payloadType", "envelope");
    try {
        e.payload = base64_decode(string_field(j, "payload", "envelope"));
    } catch (const FormatError& ex) {
        throw FormatError(std::string("envelope payload: ") + ex.what());
    }
    auto sigs = j.find("signatures");
    if (sigs == j.end() || !sigs->is_array() || sigs->empty())
        throw FormatError("envelope: \"signatures\" is missing or empty");
    for (const auto& s : *sigs) {
        if (!s.is_object()) throw FormatError("envelope: a signature is not an object");
        DsseSignature d;
        if (auto k = s.find("keyid"); k != s.end() && k->is_string()) d.keyid = k->get<std::string>();
        try {
            d.sig = base64_decode(string_field(s, "sig", "envelope signature"));
        } catch (const FormatError& ex) {
            throw FormatError(std::string("envelope signature: ") + ex.what());
        }
        e.signatures.push_back(std::move(d));
    }
    return e;
}

EnvelopeCheck verify_envelope(const Envelope& e, std::string_view expected_type, const Keyring& keys) {
    EnvelopeCheck r;
    if (e.payload_type != expected_type) {
        r.error = "payload type is '" + e.payload_type.substr(0, 100) + "', expected '" + std::string(expected_type) + "'";
        return r;
    }
    if (keys.empty()) {
        r.error = "no public key to verify with";
        return r;
    }
    const std::string message = pae(e.payload_type, e.payload);
    for (const auto& s : e.signatures) {
        std::vector<const PublicKey*> candidates;
        if (const PublicKey* k = keys.find(s.keyid)) candidates.push_back(k);
        else candidates = keys.all();
        for (const PublicKey* k : candidates) {
            if (k->verify(message, s.sig)) {
                r.ok = true;
                r.key_id = k->key_id();
                r.hint = s.keyid;
                return r;
            }
        }
    }
    std::string hint = e.signatures.front().keyid.substr(0, 64);
    r.error = "signature does not verify" +
              (keys.find(hint) ? " with key " + hint
                               : " with any of the " + std::to_string(keys.size()) + " given key(s) (signed by key " +
                                     (hint.empty() ? "?" : hint) + ")");
    return r;
}

}  // namespace hermetic::audit
