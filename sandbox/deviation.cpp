#include "sandbox/deviation.hpp"

namespace hermetic::sandbox {

const char* to_string(DeviationAction a) {
    switch (a) {
        case DeviationAction::Virtualized: return "virtualized";
        case DeviationAction::Denied: return "denied";
        case DeviationAction::Reordered: return "reordered";
        case DeviationAction::Killed: return "killed";
        case DeviationAction::Logged: return "logged";
    }
    return "unknown";
}

}  // namespace hermetic::sandbox
