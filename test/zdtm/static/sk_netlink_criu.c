// zdtm: desc: sk_netlink without what CRIU 4.2 cannot keep (a SOCK_DGRAM netlink socket, NETLINK_EXT_ACK): a route socket bound by the kernel with link and address groups, a uevent socket at a chosen port id in group 1, a generic one never bound; CRIU restores gockpt's images of it and gockpt restores CRIU's
// zdtm: modes: restore criu-restore criu-dump criu-predump
#define NL_BASIC 1
#include "sk_netlink.c"
