/*
 * LD_PRELOAD shim: turns bind() to the wildcard address (0.0.0.0 / ::) into a bind to the
 * loopback address (127.0.0.1 / ::1). The SLURM daemons (slurmctld, slurmd, slurmdbd) have no
 * listen-address setting and bind every interface; the sandbox must only listen on loopback.
 * With SB_BIND_ADDR=<IPv4 address> in the environment, IPv4 wildcard binds go to that address
 * instead (slurmctld listens on the multi-node bridge 10.77.0.1, reachable from every node's
 * namespace, and still on no other interface).
 * Built by lib.sh (sb_loopback_preload) into $STATE/lib/bind-loopback.so.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	static bind_fn real_bind;
	if (!real_bind)
		real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
	if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in a;
		memcpy(&a, addr, sizeof(a));
		if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
			const char *want = getenv("SB_BIND_ADDR");
			struct in_addr w;
			if (want && inet_pton(AF_INET, want, &w) == 1)
				a.sin_addr = w;
			else
				a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			return real_bind(fd, (const struct sockaddr *)&a, sizeof(a));
		}
	} else if (addr && addr->sa_family == AF_INET6 &&
		   len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 a6;
		memcpy(&a6, addr, sizeof(a6));
		if (!memcmp(&a6.sin6_addr, &in6addr_any, sizeof(a6.sin6_addr))) {
			a6.sin6_addr = in6addr_loopback;
			return real_bind(fd, (const struct sockaddr *)&a6, sizeof(a6));
		}
	}
	return real_bind(fd, addr, len);
}
