/* A TCP server and client on 127.0.0.1 inside the sandbox: loopback must work. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "probe_guard.h"

int main(void) {
    require_sandbox();
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1) || getsockname(s, (struct sockaddr *)&a, &len)) {
        printf("server %d\n", errno);
        return 1;
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a) != 0) {
        printf("client %d\n", errno);
        return 1;
    }
    int x = accept(s, NULL, NULL);
    printf(x >= 0 ? "loopback OK\n" : "accept failed\n");
    return 0;
}
