// glibc hides recvmmsg/sendmmsg and struct mmsghdr behind _GNU_SOURCE (invisible to Swift).
#include <sys/socket.h>
#include <sys/epoll.h>
typedef struct { struct msghdr msg_hdr; unsigned int msg_len; } CMMsg_mmsghdr;
int CMMsg_recvmmsg(int fd, CMMsg_mmsghdr *v, unsigned int n, int flags);
int CMMsg_sendmmsg(int fd, CMMsg_mmsghdr *v, unsigned int n, int flags);
