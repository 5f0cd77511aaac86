/*
 * LD_PRELOAD shim: sets SO_REUSEPORT on TCP sockets bound to the ports listed
 * in MMGW_REUSEPORT_PORTS (comma-separated, or "*" for every port), so that
 * several edge worker processes can listen on one port and the kernel spreads
 * connections over them.
 *
 * Why: uWebSockets.js (uSockets) sets SO_REUSEPORT only on non-Linux systems,
 * and Node 20 has no reusePort option; both bind through libc's bind(), which
 * this shim wraps. Built on demand by server/edge/reuse-port.ts.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int port_listed(unsigned port) {
  const char *p = getenv("MMGW_REUSEPORT_PORTS");
  if (p == NULL) return 0;
  while (*p != '\0') {
    if (*p == '*') return 1;
    if (*p >= '0' && *p <= '9') {
      char *end;
      unsigned long v = strtoul(p, &end, 10);
      if (v == port) return 1;
      p = end;
    } else {
      p++;
    }
  }
  return 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real_bind = NULL;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  if (addr != NULL && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
    unsigned port = addr->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)addr)->sin_port)
                                                : ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    int type = 0;
    socklen_t tl = sizeof type;
    if (port_listed(port) && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM) {
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    }
  }
  return real_bind(fd, addr, len);
}
