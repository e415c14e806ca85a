/* abstract_connect NAME: connects to the abstract Unix socket "@NAME". */
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "probe_guard.h"

int main(int argc, char **argv) {
    require_sandbox();
    if (argc != 2) return 2;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(argv[1]);
    memcpy(a.sun_path + 1, argv[1], n);
    if (connect(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) == 0)
        printf("connect OK\n");
    else
        printf("connect %d\n", errno);
    return 0;
}
