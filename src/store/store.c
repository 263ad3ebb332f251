/* store.c — opening a store by URL, and freeing records: the parts of the
 * store layer that do not depend on the engine behind it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

td_store *td_store_sqlite_open(const char *path, char *err, size_t cap);

td_store *td_store_open(const char *url, char *err, size_t cap)
{
    if (strncmp(url, "sqlite:", 7) == 0 && url[7]) return td_store_sqlite_open(url + 7, err, cap);
    snprintf(err, cap, "unsupported store URL '%s' (expected sqlite:PATH)", url);
    return NULL;
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
