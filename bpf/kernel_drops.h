/* flowscope kernel drops: the event bpf/kernel_drops.c sends for each packet the kernel frees with a
 * drop reason (tracepoint skb:kfree_skb). collector/kernel_drops.py decodes it with one struct format
 * (DROP_EVENT_FORMAT); keep the two in step. */
#ifndef FLOWSCOPE_KERNEL_DROPS_H
#define FLOWSCOPE_KERNEL_DROPS_H

#include <linux/types.h>

struct drop_event {
    __u64 ts_ns;        /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
    __u64 location;     /* kernel address of the kfree_skb caller */
    __u8 saddr[16];     /* IPv4 in the first 4 bytes */
    __u8 daddr[16];
    __u32 reason;       /* enum skb_drop_reason of the running kernel */
    __u32 ifindex;      /* skb->dev, in the network namespace netns_ino */
    __u32 netns_ino;
    __u32 len;          /* skb->len */
    __u16 sport;        /* TCP/UDP ports; ICMP: type and code */
    __u16 dport;
    __u8 family;        /* 4 or 6 */
    __u8 l4proto;
    __u8 pad[2];
};

#endif
