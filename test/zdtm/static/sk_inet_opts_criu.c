// zdtm: desc: sk_inet_opts without what CRIU 4.2 cannot keep (IPV6_TCLASS, IPV6_UNICAST_HOPS): the other options of IPv4 and IPv6 TCP listeners, unconnected TCP sockets and UDP sockets, and two sockets with every default; CRIU restores gockpt's images of them and gockpt restores CRIU's
// zdtm: modes: restore criu-restore criu-dump criu-predump
#define CRIU_SUBSET 1
#include "sk_inet_opts.c"
