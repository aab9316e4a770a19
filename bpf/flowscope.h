/* flowscope datapath: the event the TC programs send to the collector, and the connection table.
 *
 * collector/datapath/events.py decodes `struct flow_event` with one struct format; keep the two in
 * step (FLOW_EVENT_SIZE is checked on both sides).
 */
#ifndef FLOWSCOPE_H
#define FLOWSCOPE_H

#include <linux/types.h>

/* Where the packet was seen: the host-side veth's egress hook delivers to the pod, its ingress hook
 * receives from the pod. The numbers are also the policy hook's direction (1 ingress, 2 egress). */
#define OBS_TO_POD 1
#define OBS_FROM_POD 2

/* Why an event was sent (flow_event.kind). */
#define EV_NONE 0     /* payload only (L7 capture), no L3/L4 reason */
#define EV_NEW 1      /* first packet of a connection */
#define EV_REPLY 2    /* first packet of the reply direction */
#define EV_FLAGS 3    /* a TCP flag (SYN/FIN/RST) seen for the first time in this direction */
#define EV_UPDATE 4   /* periodic report of a long-lived connection */
#define EV_PACKET 5   /* aggregation none: any other packet */
#define EV_DROP 6     /* dropped by policy */
#define EV_END 7      /* connection removed from the table: by the collector's GC, or by the kernel when a
                       * SYN reuses the 5-tuple of a closed connection */

/* flow_event.verdict: Hubble's Verdict numbers. */
#define VERDICT_FORWARDED 1
#define VERDICT_DROPPED 2
#define VERDICT_AUDIT 4

/* Payload capture modes (l7_ports map value, conntrack l7_mode, flow_event.l7). */
#define L7_OFF 0
#define L7_PREFIX 1   /* first PAYLOAD_BYTES of each data segment */
#define L7_STREAM 2   /* every data segment from the start, within L7_BUDGET bytes per connection */

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20
#define TCPF_ECE 0x40
#define TCPF_CWR 0x80

/* Normalised 5-tuple + device: the endpoint with the lower (address, port) is `lo`. The device is part
 * of the key so that a connection between two local pods is counted once on each pod's device, as a
 * capture of that device would count it. */
struct ct_key {
    __u8 addr_lo[16];
    __u8 addr_hi[16];
    __u16 port_lo;
    __u16 port_hi;
    __u32 ifindex;
    __u8 family; /* 4 or 6 */
    __u8 proto;
    __u8 pad[2];
};

/* Index 0 of the per-direction arrays is the originator's ("forward") direction. */
struct ct_entry {
    __u64 first_seen;
    __u64 last_seen;
    __u64 last_report;
    __u64 packets[2];
    __u64 bytes[2];
    __u32 policy_id;
    __u32 remote_identity;
    __u32 l7_bytes;   /* payload bytes sent to the collector (L7_STREAM budget) */
    __u8 orig_is_lo;  /* the originator is the key's lo side */
    __u8 obs;         /* OBS_* of the originator's packets on this device */
    __u8 flags[2];    /* union of TCP flags seen per direction */
    __u8 l7_mode;
    __u8 l7_here;     /* capture payload on this device (see flowscope.c: one side per connection) */
    __u8 verdict;
    __u8 policy_match;
};

struct flow_event {
    __u64 ts_ns;          /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
    __u64 first_seen_ns;
    __u64 packets_fwd;
    __u64 bytes_fwd;
    __u64 packets_rev;
    __u64 bytes_rev;
    __u8 saddr[16];       /* this packet's source; IPv4 in the first 4 bytes */
    __u8 daddr[16];
    __u32 ifindex;
    __u32 skb_len;        /* bytes of this packet on the wire (incl. Ethernet) */
    __u32 policy_id;
    __u32 remote_identity;
    __u16 sport;          /* host order; ICMP: type */
    __u16 dport;          /* host order; ICMP: code */
    __u16 payload_off;    /* offset of the L4 payload in the appended packet bytes */
    __u16 cap_len;        /* packet bytes appended after this struct (perf_submit_skb) */
    __u8 family;          /* 4 or 6 */
    __u8 proto;
    __u8 kind;            /* EV_* */
    __u8 obs;             /* OBS_* */
    __u8 is_reply;
    __u8 tcp_flags;       /* this packet's flags */
    __u8 verdict;         /* VERDICT_* */
    __u8 policy_action;   /* struct policy_verdict.action */
    __u8 policy_match;
    __u8 l7;              /* L7_* mode of the appended payload, L7_OFF if none */
    __u8 flags_fwd;
    __u8 flags_rev;
    __u32 seg_len;        /* L4 payload length of this packet */
};

#define FLOW_EVENT_SIZE 120

#endif /* FLOWSCOPE_H */
