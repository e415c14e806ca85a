// hermeticctl's reading of the daemon's replies: a daemon of another major
// protocol version is refused naming both versions; errors carry the daemon's reason.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "ctl/client.hpp"
#include "protocol/messages.hpp"

namespace {

using namespace hermetic;
using nlohmann::json;

std::string failure(const std::string& payload) {
    try {
        (void)ctl::parse_reply(payload);
    } catch (const ctl::CtlError& e) {
        return e.what();
    }
    return "";
}

TEST(CtlClient, ADaemonOfAnotherMajorVersionIsRefusedNamingBoth) {
    std::string e = failure(json({{"proto", {2, 0}}, {"type", "pong"}}).dump());
    EXPECT_NE(e.find("protocol version 2.0"), std::string::npos) << e;
    EXPECT_NE(e.find("speaks " + protocol::version_string()), std::string::npos) << e;
    e = failure(json({{"proto", {0, 9}}, {"type", "pong"}}).dump());
    EXPECT_NE(e.find("protocol version 0.9"), std::string::npos) << e;
}

TEST(CtlClient, ANewerMinorVersionIsRead) {
    json m = json::parse(ctl::parse_reply(
                             json({{"proto", {protocol::kProtoMajor, protocol::kProtoMinor + 3}}, {"type", "pong"},
                                   {"new_field", 1}})
                                 .dump())
                             .dump());
    EXPECT_EQ(m["type"], "pong");
}

TEST(CtlClient, ADaemonErrorCarriesItsReason) {
    EXPECT_EQ(failure(protocol::make_error("not-found", "no job x (or it isn't yours)").dump()),
              "no job x (or it isn't yours)");
    EXPECT_NE(failure("not json").find("bad reply from hermeticd"), std::string::npos);
}

}  // namespace
