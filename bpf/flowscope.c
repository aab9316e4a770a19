/* flowscope datapath: TC clsact programs on the host-side veth of every pod.
 *
 * `from_pod` runs on the device's ingress hook (packets the pod sends), `to_pod` on its egress hook
 * (packets delivered to the pod). Both parse Ethernet / IPv4 / IPv6 / TCP / UDP / ICMP(v6), keep an
 * in-kernel connection table and send events to the collector by aggregation level, so that the
 * per-packet cost never reaches Python unless asked for (AGGREGATION=0).
 *
 * Options (cflags, set by collector/datapath/loader.py):
 *   AGGREGATION          0 none (every packet), 1 medium (default), 2 max (connection start only)
 *   UPDATE_INTERVAL_NS   medium: report a long-lived connection's counters at least this often
 *   PAYLOAD_BYTES        L7: bytes of each data segment sent with the event (prefix mode)
 *   STREAM_SEGMENT_BYTES L7 stream mode (HTTP/2, Kafka): bytes per segment
 *   L7_BUDGET            L7 stream mode: payload bytes per connection
 *   CT_SIZE              connection table entries
 *   FLOWSCOPE_PIN_DIR    quoted bpffs directory where the maps that must survive a restart are pinned
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/pkt_cls.h>

#include "flowscope.h"
#include "l7_limits.h"

#if __has_include("policy.h")
#include "policy.h"
#define HAVE_POLICY 1
#else
#define HAVE_POLICY 0
#endif

#ifndef AGGREGATION
#define AGGREGATION 1
#endif
#ifndef UPDATE_INTERVAL_NS
#define UPDATE_INTERVAL_NS 10000000000ULL
#endif
#ifndef CT_SIZE
#define CT_SIZE 131072
#endif
#ifndef FLOWSCOPE_PIN_DIR
#define FLOWSCOPE_PIN_DIR "/sys/fs/bpf/flowscope"
#endif

/* Sniff payloads for an HTTP/1.x start only on the first packets of a connection. */
#define L7_SNIFF_PACKETS 32
#define DNS_PORT 53

_Static_assert(sizeof(struct flow_event) == FLOW_EVENT_SIZE, "flow_event layout changed");

/* Survives a collector restart: established connections keep their state and their originator. */
BPF_TABLE_PINNED("lru_hash", struct ct_key, struct ct_entry, conntrack, CT_SIZE,
                 FLOWSCOPE_PIN_DIR "/conntrack");
BPF_PERF_OUTPUT(events);
/* TCP/UDP port (host order) -> L7_PREFIX / L7_STREAM; written by the collector. */
BPF_HASH(l7_ports, __u16, __u8, 1024);

struct addr_key {
    __u8 addr[16];
};
/* Addresses of pods on this node -> device ifindex; written by the collector. A connection between two
 * local pods has its payload captured once, on the server's device. */
BPF_HASH(local_addrs, struct addr_key, __u32, 16384);

struct pkt {
    __u8 saddr[16];
    __u8 daddr[16];
    __u16 sport;      /* key ports: TCP/UDP ports, ICMP echo id on both sides */
    __u16 dport;
    __u16 ev_sport;   /* event ports: ICMP type / code */
    __u16 ev_dport;
    __u16 payload_off;
    __u8 family;
    __u8 proto;
    __u32 seg_len;
    __u8 tcp_flags;
    __u8 reply_hint;  /* the first packet we see looks like a reply (mid-stream pickup) */
};

static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 off, __u32 l4_len)
{
    if (p->proto == IPPROTO_TCP) {
        __u8 th[20];
        if (bpf_skb_load_bytes(skb, off, th, sizeof(th)) < 0)
            return -1;
        __u32 doff = (th[12] >> 4) * 4;
        if (doff < 20 || doff > l4_len)
            return -1;
        p->sport = ((__u16)th[0] << 8) | th[1];
        p->dport = ((__u16)th[2] << 8) | th[3];
        p->tcp_flags = th[13];
        p->payload_off = off + doff;
        p->seg_len = l4_len - doff;
        /* SYN-ACK or plain data first: we joined mid-stream; the higher port is likely the client. */
        p->reply_hint = !(p->tcp_flags & TCPF_SYN) || (p->tcp_flags & TCPF_ACK) ? p->sport < p->dport : 0;
    } else if (p->proto == IPPROTO_UDP) {
        __u8 uh[8];
        if (l4_len < 8 || bpf_skb_load_bytes(skb, off, uh, sizeof(uh)) < 0)
            return -1;
        p->sport = ((__u16)uh[0] << 8) | uh[1];
        p->dport = ((__u16)uh[2] << 8) | uh[3];
        p->payload_off = off + 8;
        p->seg_len = l4_len - 8;
        p->reply_hint = p->sport == DNS_PORT && p->dport != DNS_PORT;
    } else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
        __u8 ih[8];
        if (l4_len < 8 || bpf_skb_load_bytes(skb, off, ih, sizeof(ih)) < 0)
            return -1;
        __u8 type = ih[0];
        int echo = p->proto == IPPROTO_ICMP ? (type == 8 || type == 0) : (type == 128 || type == 129);
        p->ev_sport = type;
        p->ev_dport = ih[1];
        if (echo) {
            p->sport = ((__u16)ih[4] << 8) | ih[5];
            p->dport = p->sport;
        }
        p->reply_hint = type == 0 || type == 129;
        p->payload_off = off + 8;
        return 0;
    } else {
        return 0;
    }
    p->ev_sport = p->sport;
    p->ev_dport = p->dport;
    if (p->seg_len > skb->len - p->payload_off)
        p->seg_len = skb->len - p->payload_off;
    return 0;
}

/* Returns -1 for anything we do not track (non-IP, truncated or malformed headers). */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
    __u16 proto_be;

    if (bpf_skb_load_bytes(skb, 12, &proto_be, 2) < 0)
        return -1;
    if (proto_be == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
            return -1;
        __u32 ihl = ip.ihl * 4;
        __u32 tot = bpf_ntohs(ip.tot_len);
        if (ip.version != 4 || ihl < sizeof(ip) || tot < ihl || ETH_HLEN + tot > skb->len)
            return -1;
        p->family = 4;
        p->proto = ip.protocol;
        __builtin_memcpy(p->saddr, &ip.saddr, 4);
        __builtin_memcpy(p->daddr, &ip.daddr, 4);
        if (ip.frag_off & bpf_htons(0x1fff))
            return 0; /* later fragments carry no L4 header */
        return parse_l4(skb, p, ETH_HLEN + ihl, tot - ihl);
    }
    if (proto_be == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6;
        if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
            return -1;
        __u32 plen = bpf_ntohs(ip6.payload_len);
        if (ip6.version != 6 || ETH_HLEN + sizeof(ip6) + plen > skb->len)
            return -1;
        p->family = 6;
        p->proto = ip6.nexthdr;
        __builtin_memcpy(p->saddr, &ip6.saddr, 16);
        __builtin_memcpy(p->daddr, &ip6.daddr, 16);
        return parse_l4(skb, p, ETH_HLEN + sizeof(ip6), plen);
    }
    return -1;
}

/* 1 if (a, ap) sorts before (b, bp): any consistent total order will do. */
static __always_inline int side_less(const __u8 *a, __u16 ap, const __u8 *b, __u16 bp)
{
#pragma unroll
    for (int i = 0; i < 16; i += 4) {
        __u32 x, y;
        __builtin_memcpy(&x, a + i, 4);
        __builtin_memcpy(&y, b + i, 4);
        if (x != y)
            return x < y;
    }
    return ap < bp;
}

/* Fills the normalised key; returns 1 if this packet's source is the key's lo side. */
static __always_inline int make_key(const struct pkt *p, __u32 ifindex, struct ct_key *k)
{
    int src_lo = side_less(p->saddr, p->sport, p->daddr, p->dport);

    k->ifindex = ifindex;
    k->family = p->family;
    k->proto = p->proto;
    if (src_lo) {
        __builtin_memcpy(k->addr_lo, p->saddr, 16);
        __builtin_memcpy(k->addr_hi, p->daddr, 16);
        k->port_lo = p->sport;
        k->port_hi = p->dport;
    } else {
        __builtin_memcpy(k->addr_lo, p->daddr, 16);
        __builtin_memcpy(k->addr_hi, p->saddr, 16);
        k->port_lo = p->dport;
        k->port_hi = p->sport;
    }
    return src_lo;
}

static __always_inline __u8 port_l7_mode(const struct pkt *p)
{
    if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
        return L7_OFF;
    if (p->sport == DNS_PORT || p->dport == DNS_PORT)
        return L7_PREFIX;
    if (p->proto != IPPROTO_TCP)
        return L7_OFF;
    __u16 port = p->dport;
    __u8 *mode = l7_ports.lookup(&port);
    __u8 found = mode ? *mode : L7_OFF;
    port = p->sport;
    mode = l7_ports.lookup(&port);
    if (mode && *mode > found)
        found = *mode;
    return found;
}

/* A TCP payload that starts like HTTP/1.x (request or response) or an HTTP/2 preface. */
static __always_inline __u8 sniff_l7_mode(struct __sk_buff *skb, const struct pkt *p)
{
    char b[4];

    if (p->seg_len < 4 || bpf_skb_load_bytes(skb, p->payload_off, b, 4) < 0)
        return L7_OFF;
    if (b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ')
        return L7_STREAM;
    if ((b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ') ||
        (b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T') ||
        (b[0] == 'P' && b[1] == 'U' && b[2] == 'T' && b[3] == ' ') ||
        (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D') ||
        (b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P') ||
        (b[0] == 'D' && b[1] == 'E' && b[2] == 'L' && b[3] == 'E') ||
        (b[0] == 'P' && b[1] == 'A' && b[2] == 'T' && b[3] == 'C') ||
        (b[0] == 'O' && b[1] == 'P' && b[2] == 'T' && b[3] == 'I') ||
        (b[0] == 'C' && b[1] == 'O' && b[2] == 'N' && b[3] == 'N') ||
        (b[0] == 'T' && b[1] == 'R' && b[2] == 'A' && b[3] == 'C'))
        return L7_PREFIX;
    return L7_OFF;
}

static __always_inline void fill_event(struct flow_event *ev, const struct pkt *p, struct __sk_buff *skb,
                                       __u8 obs, __u64 now)
{
    ev->ts_ns = now;
    __builtin_memcpy(ev->saddr, p->saddr, 16);
    __builtin_memcpy(ev->daddr, p->daddr, 16);
    ev->ifindex = skb->ifindex;
    ev->skb_len = skb->len;
    ev->sport = p->ev_sport;
    ev->dport = p->ev_dport;
    ev->payload_off = p->payload_off;
    ev->family = p->family;
    ev->proto = p->proto;
    ev->obs = obs;
    ev->tcp_flags = p->tcp_flags;
    ev->seg_len = p->seg_len;
}

/* Closed as the collector's table sweep judges it (collector/datapath/conntrack.py is_closed): FIN
 * both ways, or a RST. */
static __always_inline int ct_closed(const struct ct_entry *ct)
{
    return (ct->flags[0] & ct->flags[1] & TCPF_FIN) || ((ct->flags[0] | ct->flags[1]) & TCPF_RST);
}

/* The end of a connection as the sweep reports it (conntrack.py end_event): the originator's
 * addresses and ports, its final counters, at the time of its last packet. */
static __always_inline void fill_end_event(struct flow_event *ev, const struct ct_key *k,
                                           const struct ct_entry *ct)
{
    if (ct->orig_is_lo) {
        __builtin_memcpy(ev->saddr, k->addr_lo, 16);
        __builtin_memcpy(ev->daddr, k->addr_hi, 16);
        ev->sport = k->port_lo;
        ev->dport = k->port_hi;
    } else {
        __builtin_memcpy(ev->saddr, k->addr_hi, 16);
        __builtin_memcpy(ev->daddr, k->addr_lo, 16);
        ev->sport = k->port_hi;
        ev->dport = k->port_lo;
    }
    ev->ts_ns = ct->last_seen;
    ev->first_seen_ns = ct->first_seen;
    ev->packets_fwd = ct->packets[0];
    ev->bytes_fwd = ct->bytes[0];
    ev->packets_rev = ct->packets[1];
    ev->bytes_rev = ct->bytes[1];
    ev->ifindex = k->ifindex;
    ev->policy_id = ct->policy_id;
    ev->remote_identity = ct->remote_identity;
    ev->family = k->family;
    ev->proto = k->proto;
    ev->kind = EV_END;
    ev->obs = ct->obs;
    ev->tcp_flags = ct->flags[0] | ct->flags[1];
    ev->verdict = ct->verdict;
    ev->policy_match = ct->policy_match;
    ev->flags_fwd = ct->flags[0];
    ev->flags_rev = ct->flags[1];
}

static __always_inline int handle(struct __sk_buff *skb, __u8 obs)
{
    struct pkt p = {};
    struct ct_key key = {};
    struct flow_event ev = {};
    __u64 now = bpf_ktime_get_ns();
    int created = 0;

    if (parse(skb, &p) < 0)
        return TC_ACT_OK;
    int src_lo = make_key(&p, skb->ifindex, &key);

    struct ct_entry *ct = conntrack.lookup(&key);
    /* A SYN on a closed connection the sweep has not removed yet: the 5-tuple was reused (a client
     * port taken again within the close grace). The old connection ends here, with its own counters,
     * and the SYN starts a new one; otherwise the two would share one entry and one end flow. */
    if (ct && p.proto == IPPROTO_TCP && (p.tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN && ct_closed(ct)) {
        fill_end_event(&ev, &key, ct);
        events.perf_submit(skb, &ev, sizeof(ev));
        __builtin_memset(&ev, 0, sizeof(ev));
        conntrack.delete(&key);
        ct = 0;
    }
    if (!ct) {
        struct ct_entry fresh = {};
        /* A guessed reply is checked as the connection the pod (or its peer) must have opened. */
        __u8 check_dir = p.reply_hint ? 3 - obs : obs;
        __u16 check_port = p.reply_hint ? p.sport : p.dport;
        __u8 *peer = obs == OBS_TO_POD ? p.saddr : p.daddr;
        fresh.verdict = VERDICT_FORWARDED;
#if HAVE_POLICY
        struct policy_verdict pv = {};
        policy_check(skb->ifindex, check_dir, p.family, peer, p.proto, check_port, &pv);
        fresh.policy_id = pv.policy_id;
        fresh.remote_identity = pv.remote_identity;
        fresh.policy_match = pv.match_type;
        if (pv.action != POLICY_ACTION_ALLOW) {
            if (!pv.audit) {
                fill_event(&ev, &p, skb, obs, now);
                ev.kind = EV_DROP;
                ev.verdict = VERDICT_DROPPED;
                ev.policy_action = pv.action;
                ev.policy_id = pv.policy_id;
                ev.policy_match = pv.match_type;
                ev.remote_identity = pv.remote_identity;
                ev.is_reply = p.reply_hint;
                events.perf_submit(skb, &ev, sizeof(ev));
                return TC_ACT_SHOT;
            }
            fresh.verdict = VERDICT_AUDIT;
        }
#else
        (void)check_dir;
        (void)check_port;
        (void)peer;
#endif
        fresh.first_seen = now;
        fresh.last_report = now;
        fresh.orig_is_lo = p.reply_hint ? !src_lo : src_lo;
        fresh.obs = p.reply_hint ? 3 - obs : obs;
        fresh.l7_mode = port_l7_mode(&p);
        /* Payload is captured on the server pod's device, or on the client's if the server is not a
         * pod of this node: one L7 record per request even when both ends are local. */
        if (fresh.obs == OBS_TO_POD) {
            fresh.l7_here = 1;
        } else {
            struct addr_key server = {};
            __builtin_memcpy(server.addr, p.reply_hint ? p.saddr : p.daddr, 16);
            fresh.l7_here = local_addrs.lookup(&server) ? 0 : 1;
        }
        conntrack.insert(&key, &fresh);
        ct = conntrack.lookup(&key);
        if (!ct)
            return TC_ACT_OK;
        created = 1;
    }

    int dir = src_lo == ct->orig_is_lo ? 0 : 1;
    __u64 old_packets = __sync_fetch_and_add(&ct->packets[dir & 1], 1);
    __sync_fetch_and_add(&ct->bytes[dir & 1], skb->len);
    ct->last_seen = now;
    __u8 old_flags = ct->flags[dir & 1];
    __u8 new_flags = p.tcp_flags & ~old_flags;
    if (new_flags)
        ct->flags[dir & 1] = old_flags | p.tcp_flags;

    __u8 kind = EV_NONE;
    if (created)
        kind = EV_NEW;
    else if (dir == 1 && old_packets == 0)
        kind = EV_REPLY;
    else if (new_flags & (TCPF_SYN | TCPF_FIN | TCPF_RST))
        kind = EV_FLAGS;
    else if (now - ct->last_report >= UPDATE_INTERVAL_NS)
        kind = EV_UPDATE;
#if AGGREGATION == 0
    if (kind == EV_NONE)
        kind = EV_PACKET;
#elif AGGREGATION == 2
    if (kind != EV_NEW)
        kind = EV_NONE;
#endif

    __u8 l7 = L7_OFF;
    __u32 cap = 0;
    if (p.seg_len > 0 && ct->l7_here) {
        l7 = ct->l7_mode;
        if (l7 == L7_OFF && p.proto == IPPROTO_TCP &&
            ct->packets[0] + ct->packets[1] <= L7_SNIFF_PACKETS) {
            l7 = sniff_l7_mode(skb, &p);
            if (l7 != L7_OFF)
                ct->l7_mode = l7;
        }
        if (l7 == L7_PREFIX) {
            cap = p.seg_len < PAYLOAD_BYTES ? p.seg_len : PAYLOAD_BYTES;
        } else if (l7 == L7_STREAM && ct->l7_bytes < L7_BUDGET) {
            cap = p.seg_len < STREAM_SEGMENT_BYTES ? p.seg_len : STREAM_SEGMENT_BYTES;
            __sync_fetch_and_add(&ct->l7_bytes, cap);
        } else {
            l7 = L7_OFF;
        }
    }
    if (kind == EV_NONE && l7 == L7_OFF)
        return TC_ACT_OK;

    if (kind != EV_NONE)
        ct->last_report = now;
    fill_event(&ev, &p, skb, obs, now);
    ev.kind = kind;
    ev.is_reply = dir;
    ev.first_seen_ns = ct->first_seen;
    ev.packets_fwd = ct->packets[0];
    ev.bytes_fwd = ct->bytes[0];
    ev.packets_rev = ct->packets[1];
    ev.bytes_rev = ct->bytes[1];
    ev.flags_fwd = ct->flags[0];
    ev.flags_rev = ct->flags[1];
    ev.verdict = ct->verdict;
    ev.policy_id = ct->policy_id;
    ev.policy_match = ct->policy_match;
    ev.remote_identity = ct->remote_identity;
    if (l7 != L7_OFF) {
        ev.l7 = l7;
        ev.cap_len = p.payload_off + cap;
        events.perf_submit_skb(skb, ev.cap_len, &ev, sizeof(ev));
    } else {
        events.perf_submit(skb, &ev, sizeof(ev));
    }
    return TC_ACT_OK;
}

int from_pod(struct __sk_buff *skb)
{
    return handle(skb, OBS_FROM_POD);
}

int to_pod(struct __sk_buff *skb)
{
    return handle(skb, OBS_TO_POD);
}
