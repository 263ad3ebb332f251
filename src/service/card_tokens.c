/* card_tokens.c — a digital card seen through the Token API as a CARD token
 * (docs/network.md "Token API: CARD tokens"): the Token.io token shape, with
 * tokend's `card` body in the payload. Nothing is signed: a CARD token is a
 * view of the digital card record, so payloadSignatures is empty. */
#include <stdlib.h>

#include "service/cards.h"

/* The parties holding a suspension, as names, in bit order. */
static json_t *suspenders_json(td_suspenders set)
{
    json_t *a = json_array();
    for (unsigned bit = 1; a && bit <= TD_PARTY_ALL; bit <<= 1)
        if (set & bit) json_array_append_new(a, json_string(td_party_name((td_party)bit)));
    return a;
}

/* The stored device object; a record whose JSON does not parse (it was
 * validated on the way in, so only a damaged row) shows as {}. */
static json_t *device_json(const char *s)
{
    json_t *v = s && s[0] ? json_loads(s, 0, NULL) : NULL;
    if (v && json_is_object(v)) return v;
    json_decref(v);
    return json_object();
}

static json_t *card_body(const td_dcard_rec *dc)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:s, s:s, s:o}", "cardId", dc->card_id, "digitalCardId", dc->id,
                     "walletProviderId", dc->wallet_provider_id, "tokenRequestorId", dc->token_requestor_id,
                     "deviceInformation", device_json(dc->device_json), "isPrimary", (int)dc->is_primary, "last4",
                     dc->last4, "state", td_dcard_state_name(dc->d.state), "suspendedBy",
                     suspenders_json(dc->d.suspended_by));
}

/* `from` is the card: the digital card record does not carry the consumer
 * id, and the card id is what the issuer knows the cardholder's card by. */
char *td_card_token_json(const td_dcard_rec *dc)
{
    json_t *payload = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}, s:o}", "version", "1.0", "refId", dc->correlation_id,
                                "issuer", "id", dc->issuer_id, "from", "id", dc->card_id, "card", card_body(dc));
    /* No tokenRequestId: a digital card comes from the TSP, not from a token
     * request, and an empty string would claim one with no id. */
    json_t *token =
        payload ? json_pack("{s:s, s:o, s:[]}", "id", dc->id, "payload", payload, "payloadSignatures") : NULL;
    char *s = token ? json_dumps(token, JSON_COMPACT) : NULL;
    json_decref(token);
    return s;
}

typedef struct {
    void (*fn)(const char *json, void *);
    void *arg;
    bool oom;
} card_token_list;

static void list_one_card(const td_dcard_rec *dc, void *arg)
{
    card_token_list *l = arg;
    char *json = td_card_token_json(dc);
    if (!json) {
        l->oom = true;
        return;
    }
    l->fn(json, l->arg);
    free(json);
}

td_err td_svc_list_card_tokens(td_svc *svc, const char *issuer_id, int64_t start_ms, int64_t end_ms, int64_t offset,
                               int limit, void (*fn)(const char *json, void *), void *arg, td_error *e)
{
    card_token_list l = {.fn = fn, .arg = arg};
    td_conn *c = svc->store->reader(svc->store);
    if (!c || svc->store->ops->dcard_list_by_issuer(c, issuer_id, start_ms, end_ms, offset, limit, list_one_card, &l) !=
                  TD_ST_OK)
        return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    if (l.oom) return td_fail(e, TD_E_INTERNAL, "out of memory");
    return TD_OK;
}
