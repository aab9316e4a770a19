/* Test harness for bpf/policy.h: a TC program run with BPF_PROG_TEST_RUN that reads policy_check()'s
 * arguments from probe_in and writes its verdict to probe_out. */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "policy.h"

struct probe_in {
    __u32 ifindex;
    __u8 direction;
    __u8 family;
    __u8 proto;
    __u8 pad;
    __u16 dport;
    __u16 pad2;
    __u8 addr[16];
};

BPF_ARRAY(probe_in, struct probe_in, 1);
BPF_ARRAY(probe_out, struct policy_verdict, 1);

int probe(struct __sk_buff *skb)
{
    int zero = 0;
    struct probe_in *in = probe_in.lookup(&zero);
    if (!in)
        return TC_ACT_OK;
    struct policy_verdict v = {};
    __u8 addr[16];
    __builtin_memcpy(addr, in->addr, 16);
    policy_check(in->ifindex, in->direction, in->family, addr, in->proto, in->dport, &v);
    probe_out.update(&zero, &v);
    return v.action ? TC_ACT_SHOT : TC_ACT_OK;
}
