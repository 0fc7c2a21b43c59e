#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include "CMMsg.h"
_Static_assert(sizeof(CMMsg_mmsghdr) == sizeof(struct mmsghdr), "layout");
int CMMsg_recvmmsg(int fd, CMMsg_mmsghdr *v, unsigned int n, int flags) { return recvmmsg(fd, (struct mmsghdr *)v, n, flags, NULL); }
int CMMsg_sendmmsg(int fd, CMMsg_mmsghdr *v, unsigned int n, int flags) { return sendmmsg(fd, (struct mmsghdr *)v, n, flags); }
