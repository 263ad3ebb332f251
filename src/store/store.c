/* store.c — opening a store by URL, and freeing records: the parts of the
 * store layer that do not depend on the engine behind it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/util.h"

td_store *td_store_sqlite_open(const char *path, char *err, size_t cap);
td_store *td_store_pg_open(const char *url, char *err, size_t cap);

td_store *td_store_open(const char *url, char *err, size_t cap)
{
    if (strncmp(url, "sqlite:", 7) == 0 && url[7]) return td_store_sqlite_open(url + 7, err, cap);
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return td_store_pg_open(url, err, cap);
    /* The URL is not echoed: a mistyped one may hold a password. */
    snprintf(err, cap, "unsupported store URL (expected sqlite:PATH or postgres://...)");
    return NULL;
}

void td_store_redact_url(const char *url, char *out, size_t cap)
{
    char buf[2048];
    td_strlcpy(buf, url, sizeof buf);
    char *scheme = strstr(buf, "://");
    if (scheme) { /* the user info ends at '@', within the authority (before any '/' or '?') */
        char *auth = scheme + 3;
        size_t end = strcspn(auth, "@/?");
        char *colon = auth[end] == '@' ? memchr(auth, ':', end) : NULL;
        if (colon) memmove(colon, auth + end, strlen(auth + end) + 1);
    }
    for (char *p = strstr(buf, "password="); p; p = strstr(p + 1, "password=")) {
        char *end = p + 9 + strcspn(p + 9, "&");
        memmove(p + 9, end, strlen(end) + 1);
    }
    td_strlcpy(out, buf, cap);
}

void td_token_rec_free(td_token_rec *t)
{
    free(t->json);
    free(t->payload_canonical);
    free(t->accounts_src);
    free(t->accounts_dst);
    t->json = t->payload_canonical = t->accounts_src = t->accounts_dst = NULL;
}

void td_request_rec_free(td_request_rec *r)
{
    free(r->request_json);
    free(r->signature_json);
    r->request_json = r->signature_json = NULL;
}

void td_idem_rec_free(td_idem_rec *r)
{
    free(r->body);
    r->body = NULL;
}

void td_dcard_rec_free(td_dcard_rec *r)
{
    free(r->device_json);
    free(r->idv_json);
    free(r->answer_json);
    r->device_json = r->idv_json = r->answer_json = NULL;
}

void td_delivery_rec_free(td_delivery_rec *r)
{
    free(r->templates_json);
    r->templates_json = NULL;
}

void td_sealed_rec_free(td_sealed_rec *r)
{
    free(r->text);
    r->text = NULL;
}

/* The name a PostgreSQL session shows in pg_stat_activity: "tokend" for the
 * server, something else for a tool that must tell its own sessions apart
 * from serving nodes' (serving_sessions). */
static char client_name[32] = "tokend";

void td_store_set_client_name(const char *name)
{
    snprintf(client_name, sizeof client_name, "%s", name);
}

const char *td_store_client_name(void)
{
    return client_name;
}
