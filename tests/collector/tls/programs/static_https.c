/* An HTTPS client linked statically with OpenSSL (gcc -static ... -lssl -lcrypto): its SSL_write and
 * SSL_read live in the program, not in a libssl the TLS capture can probe.
 *
 *   static_https HOST PORT PATH COUNT   GETs PATH COUNT times on one connection, prints each status,
 *                                       then waits for a line on stdin (so its process can be seen).
 */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int get(SSL *ssl, const char *host, const char *path)
{
    char buf[4096];
    int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
    if (SSL_write(ssl, buf, n) != n)
        return -1;
    n = SSL_read(ssl, buf, sizeof(buf) - 1); /* nginx answers a short response in one record */
    if (n < 12)
        return -1;
    buf[n] = 0;
    return atoi(buf + 9);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT PATH COUNT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
        perror("connect");
        return 1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        fprintf(stderr, "TLS handshake failed\n");
        return 1;
    }
    for (int i = 0; i < atoi(argv[4]); i++)
        printf("%d\n", get(ssl, argv[1], argv[3]));
    fflush(stdout);
    getchar();
    SSL_shutdown(ssl);
    return 0;
}
