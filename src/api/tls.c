/* tls.c — HTTPS for the server (GnuTLS under libmicrohttpd): the files read
 * into a generation (certificate chain, key, client CAs), handed out per
 * handshake by a callback so that a reload swaps them for new connections
 * only, and the check of a request's client certificate. */
#include "api/tls.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* TLS 1.3 and 1.2 only (1.0 and 1.1 are deprecated, RFC 8996); AES-GCM and
 * ChaCha20-Poly1305, the AEAD ciphers every current client has; in 1.2 only
 * ECDHE key exchange (forward secrecy; no static RSA, no finite-field DHE
 * whose parameters clients cannot check); the server's order wins. */
const char td_tls_priorities[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
                                 "-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"
                                 "-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE";

#define CHAIN_MAX 8   /* certificates in the server's chain file */
#define PEER_MAX 8    /* certificates of a client's chain looked at */
#define PEM_MAX (1 << 20)

/* What one reading of the files gave. A generation is never freed while the
 * server runs: a handshake that began with it keeps pointers into it for its
 * session's life (GnuTLS does not copy what the callback hands out), and
 * nothing tells tokend when the last such session ended. A reload costs the
 * few kilobytes of the old one. */
typedef struct tls_gen {
    gnutls_pcert_st chain[CHAIN_MAX];
    unsigned chain_len;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t client_cas; /* NULL: no client CA configured */
    struct tls_gen *older;
} tls_gen;

struct td_tls {
    const td_config *cfg;
    _Atomic(tls_gen *) current;
    pthread_mutex_t reload_mu; /* one reload at a time */
    char *client_ca_pem;       /* as first read: libmicrohttpd asks clients for certificates from these CAs */
};

/* GnuTLS's certificate callback has no argument of ours: the one td_tls. */
static _Atomic(td_tls *) the_tls;

static void gen_free(tls_gen *g)
{
    while (g) {
        tls_gen *older = g->older;
        for (unsigned i = 0; i < g->chain_len; i++)
            gnutls_pcert_deinit(&g->chain[i]);
        if (g->key) gnutls_privkey_deinit(g->key);
        if (g->client_cas) gnutls_x509_trust_list_deinit(g->client_cas, 1);
        free(g);
        g = older;
    }
}

static int load_pem(const char *what, const char *path, gnutls_datum_t *out, char *err, size_t cap)
{
    int rc = gnutls_load_file(path, out);
    if (rc < 0) {
        snprintf(err, cap, "cannot read %s %s: %s", what, path, gnutls_strerror(rc));
        return -1;
    }
    if (out->size > PEM_MAX) {
        gnutls_free(out->data);
        out->data = NULL;
        snprintf(err, cap, "%s %s is larger than %d bytes", what, path, PEM_MAX);
        return -1;
    }
    return 0;
}

/* The DER of a public key, to compare a key with a certificate. */
static int pubkey_der(gnutls_pubkey_t pub, gnutls_datum_t *out)
{
    return gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out) < 0 ? -1 : 0;
}

/* True if the private key is the one of the certificate: a reload with a
 * mismatched pair would make every handshake fail. */
static bool key_matches(gnutls_privkey_t key, const gnutls_pcert_st *cert)
{
    gnutls_pubkey_t pub;
    gnutls_datum_t a = {0}, b = {0};
    bool same = false;
    if (gnutls_pubkey_init(&pub) < 0) return false;
    if (gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 && pubkey_der(pub, &a) == 0 &&
        pubkey_der(cert->pubkey, &b) == 0)
        same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
    gnutls_free(a.data);
    gnutls_free(b.data);
    gnutls_pubkey_deinit(pub);
    return same;
}

static int load_chain(tls_gen *g, const char *path, char *err, size_t cap)
{
    gnutls_datum_t pem = {0};
    if (load_pem("tls-cert", path, &pem, err, cap)) return -1;
    unsigned n = CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(g->chain, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(pem.data);
    if (rc < 0 || n == 0) {
        snprintf(err, cap, "tls-cert %s: no usable PEM certificate (at most %d): %s", path, CHAIN_MAX,
                 rc < 0 ? gnutls_strerror(rc) : "empty");
        return -1;
    }
    g->chain_len = n;
    return 0;
}

static int load_key(tls_gen *g, const char *path, char *err, size_t cap)
{
    gnutls_datum_t pem = {0};
    if (load_pem("tls-key", path, &pem, err, cap)) return -1;
    int rc = gnutls_privkey_init(&g->key);
    if (rc == 0) rc = gnutls_privkey_import_x509_raw(g->key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_memset(pem.data, 0, pem.size);
    gnutls_free(pem.data);
    if (rc < 0) {
        snprintf(err, cap, "tls-key %s: not a usable unencrypted PEM private key: %s", path, gnutls_strerror(rc));
        return -1;
    }
    if (!key_matches(g->key, &g->chain[0])) {
        snprintf(err, cap, "tls-key %s is not the key of the certificate in %s", path, "tls-cert");
        return -1;
    }
    return 0;
}

/* Reads the client CAs; *pem_out (when not NULL) gets the file's text. */
static int load_client_cas(tls_gen *g, const char *path, char **pem_out, char *err, size_t cap)
{
    gnutls_datum_t pem = {0};
    if (load_pem("tls-client-ca", path, &pem, err, cap)) return -1;
    int rc = gnutls_x509_trust_list_init(&g->client_cas, 0);
    if (rc == 0) rc = gnutls_x509_trust_list_add_trust_mem(g->client_cas, &pem, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc <= 0) {
        gnutls_free(pem.data);
        snprintf(err, cap, "tls-client-ca %s: no PEM CA certificate: %s", path, rc < 0 ? gnutls_strerror(rc) : "empty");
        return -1;
    }
    if (pem_out) {
        *pem_out = malloc(pem.size + 1);
        if (*pem_out) {
            memcpy(*pem_out, pem.data, pem.size);
            (*pem_out)[pem.size] = 0;
        }
    }
    gnutls_free(pem.data);
    if (pem_out && !*pem_out) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    return 0;
}

static tls_gen *gen_load(const td_config *cfg, char **ca_pem_out, char *err, size_t cap)
{
    tls_gen *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    if (load_chain(g, cfg->tls_cert_file, err, cap) || load_key(g, cfg->tls_key_file, err, cap) ||
        (cfg->tls_client_ca_file[0] && load_client_cas(g, cfg->tls_client_ca_file, ca_pem_out, err, cap))) {
        gen_free(g);
        return NULL;
    }
    return g;
}

/* GnuTLS asks for the server's certificate at each handshake. */
static int retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                         unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session;
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    td_tls *t = atomic_load(&the_tls);
    tls_gen *g = t ? atomic_load(&t->current) : NULL;
    if (!g) return -1;
    *pcert = g->chain;
    *pcert_length = g->chain_len;
    *pkey = g->key;
    return 0;
}

td_tls *td_tls_new(const td_config *cfg, char *err, size_t cap)
{
    if (atomic_load(&the_tls)) {
        snprintf(err, cap, "HTTPS is already set up in this process");
        return NULL;
    }
    td_tls *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    t->cfg = cfg;
    pthread_mutex_init(&t->reload_mu, NULL);
    tls_gen *g = gen_load(cfg, &t->client_ca_pem, err, cap);
    if (!g) {
        pthread_mutex_destroy(&t->reload_mu);
        free(t->client_ca_pem);
        free(t);
        return NULL;
    }
    atomic_store(&t->current, g);
    atomic_store(&the_tls, t);
    return t;
}

int td_tls_reload(td_tls *t, char *err, size_t cap)
{
    pthread_mutex_lock(&t->reload_mu);
    tls_gen *g = gen_load(t->cfg, NULL, err, cap);
    if (g) {
        g->older = atomic_load(&t->current);
        atomic_store(&t->current, g);
    }
    pthread_mutex_unlock(&t->reload_mu);
    return g ? 0 : -1;
}

void td_tls_free(td_tls *t)
{
    if (!t) return;
    atomic_store(&the_tls, NULL);
    gen_free(atomic_load(&t->current));
    pthread_mutex_destroy(&t->reload_mu);
    free(t->client_ca_pem);
    free(t);
}

void td_tls_mhd_options(const td_tls *t, struct MHD_OptionItem *opts)
{
    int n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)td_tls_priorities};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)retrieve_cert};
    /* With a trust list libmicrohttpd asks every client for a certificate
     * (GNUTLS_CERT_REQUEST: optional); whether one is needed is decided per
     * request, by face and credential, against the current client CAs. */
    if (t->client_ca_pem) opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, t->client_ca_pem};
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}

/* The client's chain, imported; the number of certificates (0: none). */
static unsigned import_peers(gnutls_session_t s, gnutls_x509_crt_t *chain)
{
    unsigned n = 0;
    const gnutls_datum_t *der = gnutls_certificate_get_peers(s, &n);
    if (!der || gnutls_certificate_type_get(s) != GNUTLS_CRT_X509) return 0;
    if (n > PEER_MAX) n = PEER_MAX;
    for (unsigned i = 0; i < n; i++) {
        if (gnutls_x509_crt_init(&chain[i]) < 0) return i;
        if (gnutls_x509_crt_import(chain[i], &der[i], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(chain[i]);
            return i;
        }
    }
    return n;
}

static void hex_lower(const uint8_t *in, size_t n, char *out)
{
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
    out[2 * n] = 0;
}

td_peer td_tls_peer(const td_tls *t, struct MHD_Connection *conn, char sha256_hex[65])
{
    sha256_hex[0] = 0;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) return TD_PEER_NONE;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned n = 0;
    const gnutls_datum_t *der = gnutls_certificate_get_peers(s, &n);
    if (!der || !n) return TD_PEER_NONE;
    uint8_t fp[32];
    size_t fp_len = sizeof fp;
    if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &der[0], fp, &fp_len) < 0 || fp_len != sizeof fp)
        return TD_PEER_INVALID;
    hex_lower(fp, sizeof fp, sha256_hex);
    tls_gen *g = atomic_load(&t->current);
    if (!g->client_cas) return TD_PEER_INVALID;
    gnutls_x509_crt_t chain[PEER_MAX];
    unsigned got = import_peers(s, chain);
    unsigned status = 0;
    /* A client certificate: its extended key usage, if it has one, must
     * allow TLS client authentication. */
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
    int rc = got ? gnutls_x509_trust_list_verify_crt2(g->client_cas, chain, got, &purpose, 1, 0, &status, NULL) : -1;
    for (unsigned i = 0; i < got; i++)
        gnutls_x509_crt_deinit(chain[i]);
    return rc == 0 && status == 0 ? TD_PEER_VALID : TD_PEER_INVALID;
}

/* As `openssl x509 -fingerprint -sha256` prints it (colons, upper case) or
 * as sha256sum of the DER does (plain, lower case). */
int td_tls_fingerprint_parse(const char *in, char out[65])
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ':' && n && n % 2 == 0 && p[1] != ':' && p[1]) continue;
        char c = *p >= 'A' && *p <= 'F' ? (char)(*p + 32) : *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n >= 64) return -1;
        out[n++] = c;
    }
    if (n != 64) return -1;
    out[64] = 0;
    return 0;
}
