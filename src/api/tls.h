/* tls.h — HTTPS for the server: the certificate, key and client CAs read from
 * their PEM files, handed to libmicrohttpd per handshake so that SIGHUP can
 * replace them without touching open connections, and the check of a
 * request's client certificate (valid for the client CAs; its fingerprint). */
#ifndef TD_TLS_H
#define TD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/config.h"

struct MHD_Connection;
struct MHD_OptionItem;
typedef struct td_tls td_tls;

/* The protocol versions and ciphers offered (GnuTLS priority string): TLS
 * 1.3 and 1.2 only; AEAD ciphers; forward-secret key exchange. */
extern const char td_tls_priorities[];

/* Reads the files named by cfg (tls_cert_file, tls_key_file, and
 * tls_client_ca_file when set). NULL with a message on failure. Only one
 * td_tls exists at a time: GnuTLS's certificate callback takes no argument. */
td_tls *td_tls_new(const td_config *cfg, char *err, size_t cap);
/* Rereads the files; new handshakes use them, open connections keep what
 * they began with. On any error the current ones stay and err says why. */
int td_tls_reload(td_tls *t, char *err, size_t cap);
void td_tls_free(td_tls *t);

/* libmicrohttpd's options for HTTPS with this td_tls, ending with
 * MHD_OPTION_END, for MHD_OPTION_ARRAY; opts needs room for 4 items. */
void td_tls_mhd_options(const td_tls *t, struct MHD_OptionItem *opts);

/* A connection's client certificate. */
typedef enum {
    TD_PEER_NONE,    /* no certificate presented (or not a TLS connection) */
    TD_PEER_INVALID, /* presented, but not valid for the client CAs (chain, dates, purpose) */
    TD_PEER_VALID,   /* valid for the client CAs */
} td_peer;

/* Checks the certificate the client presented on conn; when one was, fills
 * sha256_hex with the SHA-256 of its DER (64 lower-case hex digits). */
td_peer td_tls_peer(const td_tls *t, struct MHD_Connection *conn, char sha256_hex[65]);

/* "AB:cd:..." or "abcd..." (SHA-256, 32 bytes) → 64 lower-case hex digits;
 * -1 if it is not a SHA-256 fingerprint. The one parser of fingerprints. */
int td_tls_fingerprint_parse(const char *in, char out[65]);

#endif
