/* cards.c — the issuer's cards: registering one (the PAN checked, found by a
 * keyed fingerprint, sealed at rest, wiped from memory) and the reads of the
 * Issuer API: a card, its digital cards, one digital card, one operation.
 * Every read is scoped to the caller's issuer: another issuer's record is
 * NOT_FOUND, never "forbidden", so ids of other issuers cannot be probed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/cards.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)

/* ---- registering a card ---- */

static void wipe_pan(td_register_card *cmd)
{
    td_wipe(cmd->pan, sizeof cmd->pan);
}

/* The face validated the body; these checks stay because a PAN that is not
 * one must never reach the fingerprint or the sealed column, whoever calls. */
static int check_input(td_register_card *cmd)
{
    int month, year;
    if (td_pan_check(cmd->pan) != TD_PAN_OK) {
        td_fail(&cmd->w.err, TD_E_INVALID_ARGUMENT, "pan is not a valid card number");
        return -1;
    }
    if (td_expiry_parse(cmd->expiry, &month, &year) != 0) {
        td_fail(&cmd->w.err, TD_E_INVALID_ARGUMENT, "expiry must be MMYY");
        return -1;
    }
    return 0;
}

/* Seals the PAN under "issuerId/cardId", so a sealed PAN copied onto another
 * card's row does not open there. */
static int seal_pan(td_svc *svc, td_register_card *cmd, td_card_rec *r)
{
    char aad[TD_CARD_AAD_MAX];
    uint8_t *sealed = NULL;
    size_t len = 0;
    td_card_pan_aad(r->issuer_id, r->card_id, aad, sizeof aad);
    if (td_pan_seal(svc->cfg->master_key, cmd->pan, aad, &sealed, &len) != 0) return -1;
    int rc = len <= sizeof r->pan_sealed ? 0 : -1;
    if (rc == 0) {
        memcpy(r->pan_sealed, sealed, len);
        r->pan_sealed_len = len;
    }
    free(sealed);
    return rc;
}

/* Everything but the insert, on the calling thread: the writer only writes. */
static int prepare_card(td_svc *svc, td_register_card *cmd)
{
    td_card_rec *r = &cmd->out;
    int64_t now = td_now_ms();
    memset(r, 0, sizeof *r);
    td_strlcpy(r->issuer_id, cmd->issuer_id, sizeof r->issuer_id);
    td_strlcpy(r->card_id, cmd->card_id, sizeof r->card_id);
    td_strlcpy(r->consumer_id, cmd->consumer_id, sizeof r->consumer_id);
    td_strlcpy(r->expiry, cmd->expiry, sizeof r->expiry);
    td_strlcpy(r->phone, cmd->phone, sizeof r->phone);
    td_strlcpy(r->email, cmd->email, sizeof r->email);
    td_strlcpy(r->last4, cmd->pan + strlen(cmd->pan) - 4, sizeof r->last4);
    r->state = cmd->state;
    r->seq = 1;
    r->created_ms = r->updated_ms = now;
    td_pan_fingerprint(svc->cfg->master_key, cmd->pan, r->pan_fp);
    if (td_card_seal_contact(svc->cfg->master_key, r) != 0) return -1;
    return seal_pan(svc, cmd, r);
}

/* A duplicate card id and a duplicate PAN are one answer: saying which would
 * tell a caller that some card of the issuer carries this PAN. */
static td_st run_register(td_conn *c, td_write *w)
{
    td_register_card *cmd = (td_register_card *)w;
    td_st st = OPS(w->svc)->card_insert(c, &cmd->out);
    if (st == TD_ST_CONFLICT) {
        td_fail(&w->err, TD_E_CONFLICT, "card id or PAN already registered");
        return TD_ST_OK;
    }
    return st;
}

void td_svc_register_card(td_svc *svc, td_register_card *cmd)
{
    cmd->w.svc = svc;
    int rc = check_input(cmd);
    if (rc == 0 && prepare_card(svc, cmd) != 0) {
        td_fail(&cmd->w.err, TD_E_INTERNAL, "the card number or contact could not be sealed");
        rc = -1;
    }
    wipe_pan(cmd);
    if (rc != 0) {
        cmd->w.complete(&cmd->w);
        return;
    }
    cmd->w.run = run_register;
    td_svc_submit(svc, &cmd->w);
}

/* ---- reads ---- */

static td_err store_error(td_error *e)
{
    return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
}

td_err td_svc_get_card(td_svc *svc, const char *issuer_id, const char *card_id, td_card_rec *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return store_error(e);
    td_st st = OPS(svc)->card_get(c, issuer_id, card_id, out);
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "card %.48s not found", card_id);
    if (st != TD_ST_OK) return store_error(e);
    if (td_card_open_contact(svc->cfg->master_key, out) != 0)
        return td_fail(e, TD_E_INTERNAL, "the card's contact does not open with this node's master key");
    return TD_OK;
}

td_err td_svc_list_dcards(td_svc *svc, const char *issuer_id, const char *card_id,
                          void (*fn)(const td_dcard_rec *, void *), void *arg, td_error *e)
{
    td_card_rec card;
    td_err err = td_svc_get_card(svc, issuer_id, card_id, &card, e);
    if (err != TD_OK) return err;
    td_conn *c = svc->store->reader(svc->store);
    if (!c || OPS(svc)->dcard_list_by_card(c, issuer_id, card_id, fn, arg) != TD_ST_OK) return store_error(e);
    return TD_OK;
}

td_err td_svc_get_dcard(td_svc *svc, const char *issuer_id, const char *id, td_dcard_rec *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return store_error(e);
    td_st st = OPS(svc)->dcard_get(c, issuer_id, id, out); /* another issuer's is not there */
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "digital card %.64s not found", id);
    if (st != TD_ST_OK) return store_error(e);
    return TD_OK;
}

td_err td_svc_get_operation(td_svc *svc, const char *issuer_id, const char *id, td_operation_rec *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return store_error(e);
    td_st st = OPS(svc)->op_get(c, issuer_id, id, out);
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "operation %.64s not found", id);
    if (st != TD_ST_OK) return store_error(e);
    return TD_OK;
}
