/* flowscope policy enforcement: the datapath half of enforcer/.
 *
 * The TC programs (bpf/flowscope.c) call policy_check() for the first packet of a new connection in a
 * direction that matters; replies and established connections are passed by conntrack without a call.
 * The enforcer (enforcer/datapath/) compiles policies into the three maps below and writes them from
 * Python; a policy change is map writes only, never a program reload.
 *
 * Maps (pinned in the collector's pin dir by enforcer/datapath, so enforcement survives a collector restart):
 *   policy_endpoints  hash     ifindex of the pod's host-side device -> endpoint identity, flags, and per
 *                              direction the policy that selects it (named when default deny drops)
 *   policy_ipcache    lpm_trie (family, address/prefix) -> peer identity (miss: reserved:world)
 *   policy_rules      lpm_trie (endpoint identity, peer identity, direction, l4 proto, dport/prefix)
 *                              -> action (allow/deny) + policy id
 *
 * Port ranges (endPort) live in policy_rules as port prefixes: the port is the last 16 bits of the key,
 * stored big-endian, so a range compiles to at most 30 prefixes and a lookup is one trie walk — no
 * limit on range width and no per-port expansion. A trie returns only the longest match, so explicit
 * deny precedence inside one (endpoint, peer, direction, proto) group is resolved at compile time
 * (deny intervals cut allow intervals). Across groups the wildcards need separate lookups: specific
 * peer + specific proto, specific peer + any proto, any peer + specific proto, any peer + any proto.
 * Any deny among the four wins, else the most specific allow, else default deny.
 */
#ifndef FLOWSCOPE_POLICY_H
#define FLOWSCOPE_POLICY_H

#include <linux/types.h>

#define POLICY_DIR_INGRESS 1
#define POLICY_DIR_EGRESS 2

#define POLICY_ACTION_ALLOW 0
#define POLICY_ACTION_DENY 1          /* default deny: selected, no rule allows */
#define POLICY_ACTION_DENY_EXPLICIT 2 /* an ingressDeny/egressDeny rule matched */

/* policy_rules values: what a rule says. */
#define POLICY_RULE_ALLOW 1
#define POLICY_RULE_DENY 2

/* policy_endpoints flags */
#define POLICY_EP_ENFORCE_INGRESS 0x1
#define POLICY_EP_ENFORCE_EGRESS 0x2
#define POLICY_EP_AUDIT 0x4

/* Hubble's policy_match_type values (Cilium's monitor API). */
#define POLICY_MATCH_NONE 0
#define POLICY_MATCH_L3_ONLY 1
#define POLICY_MATCH_L3_L4 2
#define POLICY_MATCH_L4_ONLY 3
#define POLICY_MATCH_ALL 4

#define POLICY_IDENTITY_ANY 0
#define POLICY_IDENTITY_WORLD 2

/* Normalised family in the ipcache key: 4 or 6 (callers may pass AF_INET/AF_INET6 or 4/6). */
#define POLICY_FAMILY_V4 4
#define POLICY_FAMILY_V6 6

/* Bits of policy_rules key data before the port: ep_identity + peer_identity + direction + proto. */
#define POLICY_RULE_FIXED_BITS 80
/* Bits of policy_ipcache key data before the address: family + pad. */
#define POLICY_IPCACHE_FIXED_BITS 32

struct policy_verdict {
    __u8 action;
    __u8 match_type;
    __u8 audit;
    __u8 pad;
    __u32 policy_id;
    __u32 remote_identity;
};

struct policy_endpoint {
    __u32 identity;
    __u8 flags;
    __u8 pad[3];
    __u32 ingress_policy_id; /* a policy selecting the endpoint: named by default-deny drops */
    __u32 egress_policy_id;
};

struct policy_ipcache_key {
    __u32 prefixlen; /* POLICY_IPCACHE_FIXED_BITS + address prefix length */
    __u8 family;     /* POLICY_FAMILY_V4 / POLICY_FAMILY_V6 */
    __u8 pad[3];
    __u8 addr[16];   /* IPv4 in the first 4 bytes */
};

struct policy_ipcache_value {
    __u32 identity;
};

struct policy_rule_key {
    __u32 prefixlen;     /* POLICY_RULE_FIXED_BITS + port prefix length (0..16) */
    __u32 ep_identity;   /* the selected endpoint's identity */
    __u32 peer_identity; /* POLICY_IDENTITY_ANY = any peer */
    __u8 direction;      /* POLICY_DIR_INGRESS / POLICY_DIR_EGRESS */
    __u8 proto;          /* IPPROTO_*, 0 = any protocol */
    __u16 dport_be;      /* destination port, network byte order */
};

struct policy_rule_value {
    __u8 action; /* POLICY_RULE_ALLOW / POLICY_RULE_DENY */
    __u8 pad[3];
    __u32 policy_id;
};

/* The maps are created and pinned by enforcer/datapath (`enforcer.datapath.PolicyMaps.open(pin_dir)`), and
 * their file descriptors are handed to the compiler as cflags (`PolicyMaps.cflags()`):
 *   -DPOLICY_ENDPOINTS_FD=<fd> -DPOLICY_IPCACHE_FD=<fd> -DPOLICY_RULES_FD=<fd>
 * Why not BPF_TABLE_PINNED here: bcc rewrites `map.lookup()` only in the main source file, so a lookup
 * written in an included header compiles to an invalid call. bpf_pseudo_fd() is what bcc's rewrite
 * produces, written out; the maps are the same pinned ones across collector restarts.
 * Without the fds the datapath is built without enforcement: policy_check() allows everything and
 * POLICY_ENFORCEMENT is 0 (the enforcer refuses to apply policies to such a datapath). */
#if defined(POLICY_ENDPOINTS_FD) && defined(POLICY_IPCACHE_FD) && defined(POLICY_RULES_FD)
#define POLICY_ENFORCEMENT 1
#define POLICY_MAP(fd) ((void *)bpf_pseudo_fd(1, fd))
#else
#define POLICY_ENFORCEMENT 0
#endif

#if POLICY_ENFORCEMENT

static __always_inline __u32 policy_peer_identity(__u8 family, const __u8 *peer_addr)
{
    struct policy_ipcache_key key = {};
    int len = 4;

    key.family = POLICY_FAMILY_V4;
    if (family == 10 /* AF_INET6 */ || family == POLICY_FAMILY_V6) {
        key.family = POLICY_FAMILY_V6;
        len = 16;
    }
    key.prefixlen = POLICY_IPCACHE_FIXED_BITS + len * 8;
    __builtin_memcpy(key.addr, peer_addr, 16);
    if (len == 4)
        __builtin_memset(key.addr + 4, 0, 12);
    struct policy_ipcache_value *value = bpf_map_lookup_elem(POLICY_MAP(POLICY_IPCACHE_FD), &key);
    return value ? value->identity : POLICY_IDENTITY_WORLD;
}

static __always_inline struct policy_rule_value *policy_rule_lookup(__u32 ep_identity, __u32 peer, __u8 direction,
                                                                    __u8 proto, __u16 dport)
{
    struct policy_rule_key key = {};

    key.prefixlen = POLICY_RULE_FIXED_BITS + 16;
    key.ep_identity = ep_identity;
    key.peer_identity = peer;
    key.direction = direction;
    key.proto = proto;
    key.dport_be = (__u16)((dport >> 8) | (dport << 8)); /* htons */
    struct policy_rule_value *value = bpf_map_lookup_elem(POLICY_MAP(POLICY_RULES_FD), &key);
    return value;
}

/* Lookup slot (most specific first) -> Hubble match type. */
static __always_inline __u8 policy_match_type(int slot)
{
    if (slot == 0)
        return POLICY_MATCH_L3_L4;
    if (slot == 1)
        return POLICY_MATCH_L3_ONLY;
    return slot == 2 ? POLICY_MATCH_L4_ONLY : POLICY_MATCH_ALL;
}

static __always_inline void policy_check(__u32 ep_ifindex, __u8 direction, __u8 family, const __u8 *peer_addr,
                                         __u8 l4proto, __u16 dport, struct policy_verdict *out)
{
    struct policy_rule_value *found[4];
    struct policy_endpoint *ep;
    __u32 peer;
    __u8 flag;

    out->action = POLICY_ACTION_ALLOW;
    out->match_type = POLICY_MATCH_NONE;
    out->audit = 0;
    out->pad = 0;
    out->policy_id = 0;
    peer = policy_peer_identity(family, peer_addr);
    out->remote_identity = peer;

    /* IPv6 neighbour discovery and router solicitation (ICMPv6 to link-local or multicast peers) never
     * leave the link and keep it working: like Cilium, policy does not apply to them. */
    if ((family == 10 || family == POLICY_FAMILY_V6) && l4proto == 58 /* IPPROTO_ICMPV6 */ &&
        (peer_addr[0] == 0xff || (peer_addr[0] == 0xfe && (peer_addr[1] & 0xc0) == 0x80)))
        return;

    ep = bpf_map_lookup_elem(POLICY_MAP(POLICY_ENDPOINTS_FD), &ep_ifindex);
    if (!ep)
        return;
    flag = direction == POLICY_DIR_INGRESS ? POLICY_EP_ENFORCE_INGRESS : POLICY_EP_ENFORCE_EGRESS;
    if (!(ep->flags & flag))
        return; /* no policy selects this endpoint for this direction */

    /* Most specific first: the first allow found names the policy. */
    found[0] = policy_rule_lookup(ep->identity, peer, direction, l4proto, dport);
    found[1] = policy_rule_lookup(ep->identity, peer, direction, 0, dport);
    found[2] = policy_rule_lookup(ep->identity, POLICY_IDENTITY_ANY, direction, l4proto, dport);
    found[3] = policy_rule_lookup(ep->identity, POLICY_IDENTITY_ANY, direction, 0, dport);

    int allowed = -1;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (!found[i])
            continue;
        if (found[i]->action == POLICY_RULE_DENY) {
            out->action = POLICY_ACTION_DENY_EXPLICIT;
            out->match_type = policy_match_type(i);
            out->policy_id = found[i]->policy_id;
            out->audit = (ep->flags & POLICY_EP_AUDIT) ? 1 : 0;
            return;
        }
        if (allowed < 0)
            allowed = i;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (i == allowed && found[i]) {
            out->match_type = policy_match_type(i);
            out->policy_id = found[i]->policy_id;
            return;
        }
    }
    out->action = POLICY_ACTION_DENY;
    out->policy_id = direction == POLICY_DIR_INGRESS ? ep->ingress_policy_id : ep->egress_policy_id;
    out->audit = (ep->flags & POLICY_EP_AUDIT) ? 1 : 0;
}

#else /* !POLICY_ENFORCEMENT */

static __always_inline void policy_check(__u32 ep_ifindex, __u8 direction, __u8 family, const __u8 *peer_addr,
                                         __u8 l4proto, __u16 dport, struct policy_verdict *out)
{
    out->action = POLICY_ACTION_ALLOW;
    out->match_type = POLICY_MATCH_NONE;
    out->audit = 0;
    out->pad = 0;
    out->policy_id = 0;
    out->remote_identity = 0;
}

#endif /* POLICY_ENFORCEMENT */
#endif /* FLOWSCOPE_POLICY_H */
