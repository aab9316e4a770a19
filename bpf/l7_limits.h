/* flowscope L7 capture limits shared by the TC datapath (flowscope.c) and the TLS uprobes
 * (tls_uprobes.c): the same bytes per data segment or TLS call, per connection. Set by cflags. */
#ifndef FLOWSCOPE_L7_LIMITS_H
#define FLOWSCOPE_L7_LIMITS_H

#ifndef PAYLOAD_BYTES
#define PAYLOAD_BYTES 512          /* prefix mode: bytes of each segment / call */
#endif
#ifndef STREAM_SEGMENT_BYTES
#define STREAM_SEGMENT_BYTES 16384 /* stream mode (HTTP/2, Kafka): bytes of each segment / call */
#endif
#ifndef L7_BUDGET
#define L7_BUDGET 1048576          /* stream mode: bytes per connection */
#endif

#endif /* FLOWSCOPE_L7_LIMITS_H */
