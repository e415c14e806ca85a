// hermeticd's config file (Boost.Program_options format): admin-edited, read by
// root at start and on SIGHUP. Every input ends in a config or a clear error.
#include <boost/program_options/errors.hpp>
#include <cstdint>
#include <string>

#include "daemon/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    try {
        (void)hermetic::daemon::parse_config_text(text, "fuzz.conf");
    } catch (const hermetic::daemon::ConfigError&) {
    } catch (const boost::program_options::error&) {
        // The expected refusals; anything else escaping is a bug the fuzzer reports.
    }
    return 0;
}
