/* flowscope TLS capture: the event bpf/tls_uprobes.c sends for each OpenSSL read or write.
 *
 * collector/tls/events.py decodes `struct tls_event` with one struct format; keep the two in step
 * (TLS_EVENT_SIZE is checked on both sides). The plaintext prefix follows the struct (cap_len bytes).
 */
#ifndef FLOWSCOPE_TLS_H
#define FLOWSCOPE_TLS_H

#include <linux/types.h>

#define TLS_OP_WRITE 1 /* SSL_write / SSL_write_ex: plaintext leaving this process */
#define TLS_OP_READ 2  /* SSL_read / SSL_read_ex: plaintext arriving */
#define TLS_OP_BIND 3  /* no data: the connection of `ssl` is now known (a write waited for it) */
#define TLS_OP_FREE 4  /* no data: SSL_free(ssl): its address may next be another connection's */

/* Capture modes, as the TC datapath's (flowscope.h L7_*): a prefix of every call, or whole calls
 * within a per-connection budget once the connection opened with the HTTP/2 preface. */
#define TLS_L7_PREFIX 1
#define TLS_L7_STREAM 2

struct tls_event {
    __u64 ts_ns;       /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
    __u64 ssl;         /* the SSL object: one TLS connection within the process */
    __u8 laddr[16];    /* this process's end of the TCP connection; IPv4 in the first 4 bytes */
    __u8 raddr[16];    /* the peer's end */
    __u32 tgid;
    __u32 len;         /* plaintext bytes the call moved */
    __u32 netns;       /* network namespace inode of the socket */
    __u16 lport;       /* host order */
    __u16 rport;
    __u16 cap_len;     /* plaintext bytes appended after this struct */
    __u8 family;       /* 4 or 6; 0: the connection is not known yet (a TLS_OP_BIND follows) */
    __u8 op;           /* TLS_OP_* */
    __u8 mode;         /* TLS_L7_* of the appended bytes */
    __u8 pad[3];
};

#define TLS_EVENT_SIZE 72

#endif /* FLOWSCOPE_TLS_H */
