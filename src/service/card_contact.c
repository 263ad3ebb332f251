/* card_contact.c — the end user's phone and email on a card, sealed at rest
 * like the PAN: sealed when the card is registered, opened when a card is
 * read for a decision or an answer, and, at start, sealed for cards written
 * before contacts were sealed (store migration 010 / PostgreSQL 008). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/cards.h"
#include "util/log.h"
#include "util/util.h"

/* Both seals are bound to their card, and "contact:" keeps the contact from
 * opening as the card's PAN (sealed under the same key). */
void td_card_pan_aad(const char *issuer_id, const char *card_id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", issuer_id, card_id);
}

void td_card_contact_aad(const char *issuer_id, const char *card_id, char *out, size_t cap)
{
    snprintf(out, cap, "contact:%s/%s", issuer_id, card_id);
}

static void contact_aad(const td_card_rec *r, char *out, size_t cap)
{
    td_card_contact_aad(r->issuer_id, r->card_id, out, cap);
}

int td_card_seal_contact(const uint8_t master[TD_MASTER_KEY_LEN], td_card_rec *r)
{
    r->contact_sealed_len = 0;
    if (!r->phone[0] && !r->email[0]) return 0; /* nothing to seal: an empty seal */
    json_t *v = json_pack("{s:s, s:s}", "phone", r->phone, "email", r->email);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text) return -1;
    char aad[96];
    contact_aad(r, aad, sizeof aad);
    uint8_t *sealed = NULL;
    size_t len = 0;
    int rc = td_pan_seal(master, text, aad, &sealed, &len);
    td_wipe(text, strlen(text));
    free(text);
    if (rc == 0 && len <= sizeof r->contact_sealed) {
        memcpy(r->contact_sealed, sealed, len);
        r->contact_sealed_len = len;
    } else {
        rc = -1;
    }
    free(sealed);
    return rc;
}

int td_card_open_contact(const uint8_t master[TD_MASTER_KEY_LEN], td_card_rec *r)
{
    if (!r->contact_sealed_len) return 0; /* none, or a row from before the seal: its columns as read */
    char aad[96], text[sizeof r->contact_sealed];
    contact_aad(r, aad, sizeof aad);
    if (td_pan_open(master, r->contact_sealed, r->contact_sealed_len, aad, text, sizeof text) != 0) return -1;
    json_t *v = json_loads(text, 0, NULL);
    td_wipe(text, sizeof text);
    const char *phone = json_string_value(json_object_get(v, "phone"));
    const char *email = json_string_value(json_object_get(v, "email"));
    int rc = phone && email && !td_strlcpy(r->phone, phone, sizeof r->phone) &&
                     !td_strlcpy(r->email, email, sizeof r->email)
                 ? 0
                 : -1;
    json_decref(v);
    if (rc != 0) r->phone[0] = r->email[0] = '\0';
    return rc;
}

/* ---- sealing what was stored in clear ---- */

#define SEAL_BATCH 32

typedef struct {
    td_svc *svc;
    td_card_rec rows[SEAL_BATCH];
    size_t n;
} seal_job;

/* One job: a batch of cards still in clear, each sealed and blanked; n = 0
 * when none was left. A card whose contact cannot be sealed fails the job:
 * nothing is blanked that is not sealed. */
static td_st seal_batch(td_conn *c, void *arg)
{
    seal_job *j = arg;
    const td_store_ops *ops = j->svc->store->ops;
    td_st st = ops->card_contacts_in_clear(c, j->rows, SEAL_BATCH, &j->n);
    for (size_t i = 0; i < j->n && st == TD_ST_OK; i++) {
        td_card_rec *r = &j->rows[i];
        if (td_card_seal_contact(j->svc->cfg->master_key, r) != 0) return TD_ST_INTERNAL;
        st = ops->card_contact_seal(c, r);
    }
    return st;
}

int td_svc_seal_contacts(td_svc *svc, char *err, size_t cap)
{
    seal_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, cap, "out of memory sealing contacts");
        return -1;
    }
    j->svc = svc;
    long long total = 0;
    td_st st;
    do {
        st = svc->store->run_sync(svc->store, seal_batch, j);
        if (st == TD_ST_OK) total += (long long)j->n;
    } while (st == TD_ST_OK && j->n == SEAL_BATCH);
    for (size_t i = 0; i < SEAL_BATCH; i++) {
        td_wipe(j->rows[i].phone, sizeof j->rows[i].phone);
        td_wipe(j->rows[i].email, sizeof j->rows[i].email);
    }
    free(j);
    if (st != TD_ST_OK) {
        snprintf(err, cap, "cannot seal the cards' phone numbers and emails stored in clear (store status %d)",
                 (int)st);
        return -1;
    }
    if (total)
        td_log(TD_LOG_INFO, "contacts_sealed", "sealed the phone and email of %lld cards stored in clear", total);
    return 0;
}
