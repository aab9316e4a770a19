/* flowscope TLS capture: uprobes on OpenSSL's SSL_write, SSL_write_ex, SSL_read and SSL_read_ex
 * (entry and return) send the plaintext each call moved, with the TCP connection it belongs to.
 *
 * The connection is found without knowing OpenSSL's struct layout: a call on a socket BIO does its
 * send or receive inside the call, on the same thread, and the sock:sock_send_length /
 * sock_recv_length tracepoints hand us that socket's struct sock. The addresses are read from it
 * and remembered per SSL object, because a read served from OpenSSL's buffer does no syscall.
 * Libraries that do their own socket I/O around memory BIOs (gRPC core) receive before SSL_read
 * and send after SSL_write on the same thread: a read takes the thread's last received socket, a
 * write whose connection is still unknown is sent with family 0 and bound by the thread's next
 * send (a TLS_OP_BIND event). SSL_free ends what is known of an SSL object (TLS_OP_FREE).
 *
 * struct sock is read at offsets of the RUNNING kernel (collector/btf.py), passed as -D constants:
 *   SKC_FAMILY SKC_DADDR SKC_RCV_SADDR SKC_DPORT SKC_NUM SKC_V6_DADDR SKC_V6_RCV_SADDR SKC_NET
 *   NET_INUM                                 byte offsets
 *   TP_SK TP_FAMILY TP_PROTOCOL              field offsets of the sock_*_length tracepoint record
 *   PAYLOAD_BYTES                            bytes of each call sent in prefix mode (as the TC path)
 *   STREAM_SEGMENT_BYTES L7_BUDGET           stream mode: bytes per call, per connection
 */
#include <uapi/linux/ptrace.h>
#include "tls_uprobes.h"
#include "l7_limits.h"
#define TLS_AF_INET 2
#define TLS_AF_INET6 10
#define TLS_IPPROTO_TCP 6

/* A call in progress on one thread. */
struct tls_call {
    __u64 ssl;
    __u64 buf;
    __u64 lenp;   /* SSL_*_ex: where the byte count is written; 0 for SSL_read/SSL_write */
    __u64 sk;     /* the socket the call sent or received on, if it did */
    __u64 start_ns;
    __u8 op;
};

struct conn_key {
    __u32 tgid;
    __u32 pad;
    __u64 ssl;
};

/* What is known of one TLS connection. */
struct tls_conn {
    __u8 laddr[16];
    __u8 raddr[16];
    __u32 netns;
    __u32 l7_bytes;  /* stream-mode bytes sent so far */
    __u16 lport;
    __u16 rport;
    __u8 family;
    __u8 mode;
};

struct unbound_write {
    __u64 ssl;
    __u32 l7_bytes;
    __u8 mode;
};

struct tls_buf {
    struct tls_event ev;
    __u8 data[STREAM_SEGMENT_BYTES];
};

BPF_PERF_OUTPUT(tls_events);
BPF_HASH(calls, __u64, struct tls_call, 16384);
BPF_TABLE("lru_hash", struct conn_key, struct tls_conn, conns, 65536);
/* Processes that called the TLS library, and per thread of theirs the last socket it received on
 * and the SSL object of a write still waiting for its connection. */
BPF_TABLE("lru_hash", __u32, __u8, tls_procs, 16384);
BPF_TABLE("lru_hash", __u64, __u64, last_rx, 65536);
BPF_TABLE("lru_hash", __u64, struct unbound_write, unbound, 65536);
BPF_PERCPU_ARRAY(scratch, struct tls_buf, 1);

#define KREAD(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (const void *)(base) + (off))
#define TP_FIELD(type, off) (*(const type *)((const char *)ctx + (off)))

static __always_inline int read_sock(const void *sk, struct tls_conn *c)
{
    __u16 family = 0, dport = 0;
    KREAD(family, sk, SKC_FAMILY);
    if (family == TLS_AF_INET) {
        c->family = 4;
        KREAD(*(__u32 *)c->laddr, sk, SKC_RCV_SADDR);
        KREAD(*(__u32 *)c->raddr, sk, SKC_DADDR);
    } else if (family == TLS_AF_INET6) {
        c->family = 6;
        bpf_probe_read_kernel(c->laddr, 16, (const void *)sk + SKC_V6_RCV_SADDR);
        bpf_probe_read_kernel(c->raddr, 16, (const void *)sk + SKC_V6_DADDR);
    } else {
        return 0;
    }
    KREAD(c->lport, sk, SKC_NUM);
    KREAD(dport, sk, SKC_DPORT);
    c->rport = __builtin_bswap16(dport);
    const void *net = 0;
    KREAD(net, sk, SKC_NET);
    if (net)
        KREAD(c->netns, net, NET_INUM);
    return 1;
}

static __always_inline int enter(struct pt_regs *ctx, __u8 op, int ex)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tgid = id >> 32;
    __u8 one = 1;
    struct tls_call call = {};
    call.ssl = PT_REGS_PARM1(ctx);
    call.buf = PT_REGS_PARM2(ctx);
    call.lenp = ex ? PT_REGS_PARM4(ctx) : 0;
    call.op = op;
    call.start_ns = bpf_ktime_get_ns();
    calls.update(&id, &call);
    tls_procs.update(&tgid, &one);
    return 0;
}

/* The socket of this call: seen inside it, else remembered for its SSL object, else (reads) the
 * thread's last received socket. Fills *c; returns 0 if the connection is not known. */
static __always_inline int find_conn(struct tls_call *call, struct conn_key *key, __u64 id,
                                     struct tls_conn *c)
{
    __u64 sk = call->sk;
    struct tls_conn *known = conns.lookup(key);
    if (!sk && known) {
        *c = *known;
        return 1;
    }
    if (!sk && call->op == TLS_OP_READ) {
        __u64 *rx = last_rx.lookup(&id);
        if (rx)
            sk = *rx;
    }
    if (!sk || !read_sock((const void *)sk, c))
        return 0;
    if (known) {
        c->mode = known->mode;
        c->l7_bytes = known->l7_bytes;
    } else {
        c->mode = TLS_L7_PREFIX;
    }
    return 1;
}

/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": its first 8 bytes mark an HTTP/2 connection from its start. */
static __always_inline int is_h2_preface(const __u8 *p, __u32 n)
{
    return n >= 8 && p[0] == 'P' && p[1] == 'R' && p[2] == 'I' && p[3] == ' ' && p[4] == '*' &&
           p[5] == ' ' && p[6] == 'H' && p[7] == 'T';
}

static __always_inline int leave(struct pt_regs *ctx, int ex)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct tls_call *call = calls.lookup(&id);
    if (!call)
        return 0;
    struct tls_call c = *call;
    calls.delete(&id);
    int ret = (int)PT_REGS_RC(ctx); /* an int in eax: the upper half of rax is not its sign */
    __u64 len = 0;
    if (ex) {
        if (ret != 1 || !c.lenp || bpf_probe_read_user(&len, sizeof(len), (const void *)c.lenp))
            return 0;
    } else {
        if (ret <= 0)
            return 0;
        len = ret;
    }
    if (!len)
        return 0;

    __u32 zero = 0;
    struct tls_buf *b = scratch.lookup(&zero);
    if (!b)
        return 0;
    struct conn_key key = {.tgid = id >> 32, .ssl = c.ssl};
    struct tls_conn conn = {};
    int known = find_conn(&c, &key, id, &conn);

    __u32 cap = len < STREAM_SEGMENT_BYTES ? len : STREAM_SEGMENT_BYTES;
    if (cap > STREAM_SEGMENT_BYTES)
        cap = STREAM_SEGMENT_BYTES;
    if (bpf_probe_read_user(b->data, cap, (const void *)c.buf))
        return 0;
    if (conn.mode != TLS_L7_STREAM && is_h2_preface(b->data, cap))
        conn.mode = TLS_L7_STREAM;
    if (conn.mode == TLS_L7_STREAM) {
        __u32 room = conn.l7_bytes < L7_BUDGET ? L7_BUDGET - conn.l7_bytes : 0;
        cap = cap < room ? cap : room;
        conn.l7_bytes += cap;
    } else {
        cap = cap < PAYLOAD_BYTES ? cap : PAYLOAD_BYTES;
    }
    if (known) {
        conns.update(&key, &conn);
    } else if (c.op == TLS_OP_WRITE) {
        struct unbound_write w = {.ssl = c.ssl, .l7_bytes = conn.l7_bytes, .mode = conn.mode};
        unbound.update(&id, &w);
    }

    struct tls_event *e = &b->ev;
    __builtin_memcpy(e->laddr, conn.laddr, 16);
    __builtin_memcpy(e->raddr, conn.raddr, 16);
    /* A write's time is its entry, before its bytes leave; a read's its return, once they are in: the
     * latency of a request to its response stays within what the other end sees, even when the caller
     * is preempted inside the call (the return probe then fires late). */
    e->ts_ns = c.op == TLS_OP_WRITE ? c.start_ns : bpf_ktime_get_ns();
    e->ssl = c.ssl;
    e->tgid = id >> 32;
    e->len = len > 0xffffffff ? 0xffffffff : len;
    e->netns = conn.netns;
    e->lport = conn.lport;
    e->rport = conn.rport;
    e->cap_len = cap;
    e->family = known ? conn.family : 0;
    e->op = c.op;
    e->mode = conn.mode ? conn.mode : TLS_L7_PREFIX;
    if (cap > STREAM_SEGMENT_BYTES)
        return 0;
    tls_events.perf_submit(ctx, b, sizeof(struct tls_event) + cap);
    return 0;
}

int enter_write(struct pt_regs *ctx) { return enter(ctx, TLS_OP_WRITE, 0); }
int enter_write_ex(struct pt_regs *ctx) { return enter(ctx, TLS_OP_WRITE, 1); }
int enter_read(struct pt_regs *ctx) { return enter(ctx, TLS_OP_READ, 0); }
int enter_read_ex(struct pt_regs *ctx) { return enter(ctx, TLS_OP_READ, 1); }
int leave_call(struct pt_regs *ctx) { return leave(ctx, 0); }
int leave_call_ex(struct pt_regs *ctx) { return leave(ctx, 1); }

/* SSL_free: forget the connection, so an SSL object allocated at the same address is not taken for it. */
int enter_free(struct pt_regs *ctx)
{
    struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .ssl = PT_REGS_PARM1(ctx)};
    if (!conns.lookup(&key))
        return 0;
    conns.delete(&key);
    struct tls_event e = {};
    e.ts_ns = bpf_ktime_get_ns();
    e.ssl = key.ssl;
    e.tgid = key.tgid;
    e.op = TLS_OP_FREE;
    tls_events.perf_submit(ctx, &e, sizeof(e));
    return 0;
}

/* A socket send or receive: inside a TLS call it names that call's connection. */
static __always_inline int on_sock_io(void *ctx, int rx)
{
    if (TP_FIELD(__u16, TP_PROTOCOL) != TLS_IPPROTO_TCP)
        return 0;
    __u16 family = TP_FIELD(__u16, TP_FAMILY);
    if (family != TLS_AF_INET && family != TLS_AF_INET6)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tgid = id >> 32;
    if (!tls_procs.lookup(&tgid))
        return 0;
    __u64 sk = (__u64)TP_FIELD(void *, TP_SK);
    struct tls_call *call = calls.lookup(&id);
    if (call) {
        if (!call->sk)
            call->sk = sk;
        return 0;
    }
    if (rx) {
        last_rx.update(&id, &sk);
        return 0;
    }
    struct unbound_write *w = unbound.lookup(&id);
    if (!w)
        return 0;
    struct conn_key key = {.tgid = tgid, .ssl = w->ssl};
    struct tls_conn conn = {.l7_bytes = w->l7_bytes, .mode = w->mode ? w->mode : TLS_L7_PREFIX};
    unbound.delete(&id);
    if (conns.lookup(&key) || !read_sock((const void *)sk, &conn))
        return 0;
    conns.update(&key, &conn);
    struct tls_event e = {};
    __builtin_memcpy(e.laddr, conn.laddr, 16);
    __builtin_memcpy(e.raddr, conn.raddr, 16);
    e.ts_ns = bpf_ktime_get_ns();
    e.ssl = key.ssl;
    e.tgid = tgid;
    e.netns = conn.netns;
    e.lport = conn.lport;
    e.rport = conn.rport;
    e.family = conn.family;
    e.op = TLS_OP_BIND;
    e.mode = conn.mode;
    tls_events.perf_submit(ctx, &e, sizeof(e));
    return 0;
}

int on_sock_send(void *ctx) { return on_sock_io(ctx, 0); }
int on_sock_recv(void *ctx) { return on_sock_io(ctx, 1); }
