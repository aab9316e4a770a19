/* flowscope kernel drops: every IP packet the kernel frees with a real drop reason (skb:kfree_skb)
 * becomes a drop_event: addresses, ports, device and reason.
 *
 * The sk_buff is read at offsets of the RUNNING kernel (from its BTF, see collector/btf.py), passed
 * as -D constants: the installed headers belong to another kernel version, so struct sk_buff from
 * <linux/skbuff.h> would read the wrong fields.
 *   SKB_HEAD SKB_DATA_OFF SKB_NETWORK_HEADER SKB_TRANSPORT_HEADER SKB_LEN SKB_DEV
 *   DEV_IFINDEX DEV_NET NET_INUM               byte offsets
 *   REASON_MAX_IGNORED                         reasons <= this (consumed, NOT_SPECIFIED) are noise
 *   REASON_SLOTS                               size of the excluded-reason table (> largest reason)
 *   TP_SKBADDR TP_LOCATION TP_PROTOCOL TP_REASON  field offsets in the tracepoint's record, from its
 *                                              format file (the record changed between kernel versions)
 */
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include "kernel_drops.h"

BPF_PERF_OUTPUT(drop_events);
/* reason -> 1 when it is not reported: drops flowscope's TC programs report themselves (with policy
 * detail), and frees that are not network drops. Filled by collector/kernel_drops.py. */
BPF_ARRAY(excluded_reasons, __u8, REASON_SLOTS);

#define KREAD(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (const void *)(base) + (off))

#define TP_FIELD(type, off) (*(const type *)((const char *)ctx + (off)))

int on_kfree_skb(void *ctx)
{
    __u32 reason = TP_FIELD(__u32, TP_REASON);
    if (reason <= REASON_MAX_IGNORED)
        return 0;
    __u8 *excluded = excluded_reasons.lookup(&reason);
    if (excluded && *excluded)
        return 0;
    __u16 protocol = TP_FIELD(__u16, TP_PROTOCOL);
    if (protocol != ETH_P_IP && protocol != ETH_P_IPV6)
        return 0;

    const void *skb = TP_FIELD(void *, TP_SKBADDR);
    unsigned char *head = 0;
    __u16 nh = 0, th = 0;
    KREAD(head, skb, SKB_HEAD);
    KREAD(nh, skb, SKB_NETWORK_HEADER);
    KREAD(th, skb, SKB_TRANSPORT_HEADER);
    if (!head || nh == 0xffff)
        return 0;

    struct drop_event ev = {};
    ev.ts_ns = bpf_ktime_get_ns();
    ev.location = TP_FIELD(__u64, TP_LOCATION);
    ev.reason = reason;
    KREAD(ev.len, skb, SKB_LEN);
    const void *dev = 0;
    KREAD(dev, skb, SKB_DEV);
    if (dev) {
        KREAD(ev.ifindex, dev, DEV_IFINDEX);
        const void *net = 0;
        KREAD(net, dev, DEV_NET);
        if (net)
            KREAD(ev.netns_ino, net, NET_INUM);
    }

    const unsigned char *l3 = head + nh;
    __u8 first = 0;
    KREAD(first, l3, 0);
    const unsigned char *l4;
    if ((first >> 4) == 4) {
        ev.family = 4;
        KREAD(ev.l4proto, l3, 9);
        bpf_probe_read_kernel(ev.saddr, 4, l3 + 12);
        bpf_probe_read_kernel(ev.daddr, 4, l3 + 16);
        l4 = l3 + (first & 0x0f) * 4;
    } else if ((first >> 4) == 6) {
        ev.family = 6;
        KREAD(ev.l4proto, l3, 6);
        bpf_probe_read_kernel(ev.saddr, 16, l3 + 8);
        bpf_probe_read_kernel(ev.daddr, 16, l3 + 24);
        l4 = l3 + 40; /* extension headers are not followed: ports stay 0 then */
    } else {
        return 0;
    }
    /* A set transport header is authoritative (the stack already parsed past options). */
    if (th != 0xffff && th > nh)
        l4 = head + th;
    if (ev.l4proto == IPPROTO_TCP || ev.l4proto == IPPROTO_UDP) {
        KREAD(ev.sport, l4, 0);
        KREAD(ev.dport, l4, 2);
        ev.sport = __builtin_bswap16(ev.sport);
        ev.dport = __builtin_bswap16(ev.dport);
    } else if (ev.l4proto == IPPROTO_ICMP || ev.l4proto == 58 /* IPPROTO_ICMPV6 */) {
        __u8 type = 0, code = 0;
        KREAD(type, l4, 0);
        KREAD(code, l4, 1);
        ev.sport = type;
        ev.dport = code;
    }
    drop_events.perf_submit(ctx, &ev, sizeof(ev));
    return 0;
}
