// Deviation records between the supervisor process and the runner: a compact
// binary framing (a record per virtualized call; JSON would cost more than the
// call itself).
#pragma once

#include <string>
#include <string_view>

#include "sandbox/deviation.hpp"

namespace hermetic::sandbox::determinism {

void encode_deviation(const Deviation& d, std::string& out);
// Decodes one record from the front of `in` (advancing it). False if `in`
// doesn't hold a whole record yet; throws std::runtime_error on garbage.
bool decode_deviation(std::string_view& in, Deviation& d);

}  // namespace hermetic::sandbox::determinism
