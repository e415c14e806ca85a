/* connect HOST PORT: prints "connect OK" or "connect <errno>". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "probe_guard.h"

int main(int argc, char **argv) {
    require_sandbox();
    if (argc != 3) return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) printf("connect OK\n");
    else printf("connect %d\n", errno);
    return 0;
}
