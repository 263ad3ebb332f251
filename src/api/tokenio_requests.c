/* tokenio_requests.c — Token API: POST /token-requests, GET
 * /token-requests/{id}, GET .../result, POST .../authorization. Validates the
 * request bodies strictly (closed field lists, types, patterns). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "core/canonical.h"
#include "util/util.h"

/* ---- validation of the request body ---- */

static int check_member(json_t *m, const char *where, td_error *e)
{
    static const char *const MEMBER[] = {"id", "alias", NULL};
    static const char *const ALIAS[] = {"type", "value", "realmId", NULL};
    static const char *const ALIAS_TYPES[] = {"INVALID", "UNKNOWN", "EMAIL", "PHONE", "DOMAIN",
                                              "BANK",    "CUSTOM",  "EIDAS", NULL};
    const char *id, *s;
    json_t *alias;
    if (td_json_only(m, where, MEMBER, e) || td_json_string(m, where, "id", true, 96, &id, e)) return -1;
    if (!td_valid_id(id)) return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.id is not a valid member id", where), -1;
    if (td_json_object(m, where, "alias", false, &alias, e)) return -1;
    if (alias) {
        char w[64];
        snprintf(w, sizeof w, "%s.alias", where);
        if (td_json_only(alias, w, ALIAS, e) || td_json_string(alias, w, "type", false, 16, &s, e) ||
            td_json_string(alias, w, "value", false, 256, &s, e) ||
            td_json_string(alias, w, "realmId", false, 96, &s, e))
            return -1;
        const char *type = json_string_value(json_object_get(alias, "type"));
        const char *const *t = ALIAS_TYPES;
        while (type && *t && strcmp(*t, type))
            t++;
        if (type && !*t) return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.type is not a known alias type", w), -1;
    }
    return 0;
}

static int check_bool(json_t *obj, const char *where, const char *key, td_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (v && !json_is_boolean(v)) return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must be a boolean", where, key), -1;
    return 0;
}

static int check_int(json_t *obj, const char *where, const char *key, json_int_t lo, json_int_t hi, td_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (v && (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must be an integer in [%lld, %lld]", where, key, (long long)lo,
                       (long long)hi),
               -1;
    return 0;
}

static int check_access_body(json_t *b, td_error *e)
{
    static const char *const BODY[] = {"resourceTypeList", "transactionHistoryDays", NULL};
    static const char *const LIST[] = {"resources", "source", NULL};
    static const char *const TYPES[] = {"ACCOUNTS",        "BALANCES", "TRANSACTIONS", "TRANSFER_DESTINATIONS",
                                        "STANDING_ORDERS", NULL};
    const char *w = "requestPayload.accessBody";
    json_t *list, *src;
    if (td_json_only(b, w, BODY, e) || check_int(b, w, "transactionHistoryDays", 0, 3650, e) ||
        td_json_object(b, w, "resourceTypeList", true, &list, e) ||
        td_json_only(list, "requestPayload.accessBody.resourceTypeList", LIST, e) ||
        td_json_object(list, "requestPayload.accessBody.resourceTypeList", "source", false, &src, e))
        return -1;
    json_t *res = json_object_get(list, "resources");
    if (!json_is_array(res) || json_array_size(res) == 0 || json_array_size(res) > 16)
        return td_fail(e, TD_E_INVALID_ARGUMENT,
                       "%s.resourceTypeList.resources must be a non-empty array of resource types", w),
               -1;
    size_t i;
    json_t *t;
    json_array_foreach(res, i, t)
    {
        const char *const *k = TYPES;
        while (json_is_string(t) && *k && strcmp(*k, json_string_value(t)))
            k++;
        if (!json_is_string(t) || !*k)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.resourceTypeList.resources[%zu] is not a resource type", w, i),
                   -1;
    }
    return 0;
}

/* Amounts are decimal strings: digits with at most one '.', up to 32 chars. */
static int check_amount(json_t *obj, const char *where, const char *key, bool required, td_error *e)
{
    const char *s;
    if (td_json_string(obj, where, key, required, 32, &s, e)) return -1;
    if (!s) return 0;
    int dots = 0, digits = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.')
            dots++;
        else if (*p >= '0' && *p <= '9')
            digits++;
        else
            dots = 9;
    }
    if (dots > 1 || !digits) return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must be a decimal amount", where, key), -1;
    return 0;
}

static int check_currency(json_t *obj, const char *where, td_error *e)
{
    const char *s;
    if (td_json_string(obj, where, "currency", true, 3, &s, e)) return -1;
    if (strlen(s) != 3 || !td_is_id_chars(s, 3, 3, NULL))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.currency must be an ISO 4217 code", where), -1;
    return 0;
}

/* ---- TransferInstructions (the reference's TransferInstructions and
 * TransferDestination: at least one destination, each naming exactly one payment
 * scheme with the fields that scheme requires, so the bank's key never signs a
 * payment without a payee) ---- */

/* One payment scheme of a TransferDestination: every field of need_all and at
 * least one of need_any (when given) must be a non-empty string. */
typedef struct {
    const char *key;
    const char *const *allowed;
    const char *const *need_all;
    const char *const *need_any;
} td_scheme;

static const char *const IBAN_BIC[] = {"iban", "bic", NULL};
static const char *const IBAN[] = {"iban", NULL};
static const char *const NON_EURO[] = {"iban", "bban", "bic", "clearingNumber", NULL};
static const char *const IBAN_OR_BBAN[] = {"iban", "bban", NULL};
static const char *const FPS[] = {"accountNumber", "sortCode", NULL};
static const char *const ELIXIR[] = {"accountNumber", NULL};
static const char *const BANKGIRO[] = {"bankgiroNumber", "bic", NULL};
static const char *const BANKGIRO_NEED[] = {"bankgiroNumber", NULL};
static const char *const PLUSGIRO[] = {"plusgiroNumber", "bic", NULL};
static const char *const PLUSGIRO_NEED[] = {"plusgiroNumber", NULL};
static const char *const TOKEN_DEST[] = {"accountId", "memberId", NULL};
static const char *const VIRTUAL[] = {"id", "localInstrument", NULL};

/* From the reference's SepaAccount, SepaInstantAccount, FasterPaymentsAccount,
 * TransferDestinationElixir, EUIbanAccount|BbanAccount|ClearingNumberAccount|
 * SENoBankIdAccount, BankGiroAccount, PlusGiroAccount, TransferDestinationToken
 * (no required field there: one of its two ids, or it names no payee) and
 * TransferDestinationVirtualAccount. */
static const td_scheme SCHEMES[] = {
    {"sepa", IBAN_BIC, IBAN, NULL},
    {"sepaInstant", IBAN_BIC, IBAN, NULL},
    {"fasterPayments", FPS, FPS, NULL},
    {"elixir", ELIXIR, ELIXIR, NULL},
    {"euDomesticNonEuro", NON_EURO, NULL, IBAN_OR_BBAN},
    {"euDomesticNonEuroInstant", NON_EURO, NULL, IBAN_OR_BBAN},
    {"bankgiro", BANKGIRO, BANKGIRO_NEED, NULL},
    {"plusgiro", PLUSGIRO, PLUSGIRO_NEED, NULL},
    {"token", TOKEN_DEST, NULL, TOKEN_DEST},
    {"virtualAccount", VIRTUAL, VIRTUAL, NULL},
};
#define SCHEME_COUNT (sizeof SCHEMES / sizeof SCHEMES[0])
#define MAX_DESTINATIONS 16

/* "where.key" (or "where[i]" when key is NULL) into buf, for messages; a path
 * longer than buf is cut, which only shortens the message. */
static const char *sub_path(char *buf, size_t n, const char *where, const char *key, size_t i)
{
    int k = key ? snprintf(buf, n, "%s.%s", where, key) : snprintf(buf, n, "%s[%zu]", where, i);
    return k < 0 ? where : buf;
}

static bool in_list(const char *const *list, const char *s)
{
    while (*list && strcmp(*list, s))
        list++;
    return *list != NULL;
}

static int check_scheme(json_t *acct, const td_scheme *sc, const char *where, td_error *e)
{
    static const char *const LOCAL_INSTRUMENTS[] = {"SEPA", "SEPA_INSTANT", "FASTER_PAYMENTS", NULL};
    const char *s;
    if (td_json_only(acct, where, sc->allowed, e)) return -1;
    for (const char *const *f = sc->allowed; *f; f++) {
        bool needed = sc->need_all && in_list(sc->need_all, *f);
        if (td_json_string(acct, where, *f, needed, 140, &s, e)) return -1;
    }
    if (sc->need_any) {
        const char *const *f = sc->need_any;
        while (*f && json_string_length(json_object_get(acct, *f)) == 0)
            f++;
        if (!*f)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "%s needs %s or %s", where, sc->need_any[0], sc->need_any[1]), -1;
    }
    s = json_string_value(json_object_get(acct, "localInstrument"));
    if (!strcmp(sc->key, "virtualAccount") && !in_list(LOCAL_INSTRUMENTS, s))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.localInstrument must be SEPA, SEPA_INSTANT or FASTER_PAYMENTS",
                       where),
               -1;
    return 0;
}

/* The reference's CustomerDataCreditor: legalNames required. */
static int check_creditor(json_t *d, const char *where, td_error *e)
{
    static const char *const CREDITOR[] = {"legalNames", "address", NULL};
    char buf[160];
    const char *w = sub_path(buf, sizeof buf, where, "customerData", 0);
    json_t *cd, *addr, *name;
    if (td_json_object(d, where, "customerData", false, &cd, e)) return -1;
    if (!cd) return 0;
    if (td_json_only(cd, w, CREDITOR, e) || td_json_object(cd, w, "address", false, &addr, e)) return -1;
    json_t *names = json_object_get(cd, "legalNames");
    if (!json_is_array(names) || json_array_size(names) == 0 || json_array_size(names) > 8)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.legalNames must be an array of 1 to 8 names", w), -1;
    size_t i;
    json_array_foreach(names, i, name)
    {
        if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 140)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.legalNames[%zu] must be a name of 1 to 140 characters", w, i),
                   -1;
    }
    return 0;
}

/* One TransferDestination: exactly one scheme with a value. The other schemes
 * may be present as null, because the reference's schema `required`s all ten
 * (tests/contract/README.md, spec defect 2) and clients that follow it send them. */
static int check_destination(json_t *d, const char *where, td_error *e)
{
    static const char *const TYPES[] = {"UNKNOWN", "BUSINESS", NULL};
    const td_scheme *chosen = NULL;
    const char *type;
    if (!json_is_object(d)) return td_fail(e, TD_E_INVALID_ARGUMENT, "%s must be an object", where), -1;
    const char *key;
    json_t *v;
    json_object_foreach(d, key, v)
    {
        size_t i = 0;
        while (i < SCHEME_COUNT && strcmp(SCHEMES[i].key, key))
            i++;
        if (i == SCHEME_COUNT) {
            if (strcmp(key, "customerData") && strcmp(key, "type"))
                return td_fail(e, TD_E_INVALID_ARGUMENT, "%s: unknown field '%.64s'", where, key), -1;
            continue;
        }
        if (json_is_null(v)) continue;
        if (chosen)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "%s names two payment schemes (%s and %s); give exactly one",
                           where, chosen->key, key),
                   -1;
        chosen = &SCHEMES[i];
    }
    if (!chosen)
        return td_fail(e, TD_E_INVALID_ARGUMENT,
                       "%s names no payment scheme; give one of sepa, sepaInstant, fasterPayments, elixir, "
                       "euDomesticNonEuro, euDomesticNonEuroInstant, bankgiro, plusgiro, token, virtualAccount",
                       where),
               -1;
    char buf[160];
    const char *w = sub_path(buf, sizeof buf, where, chosen->key, 0);
    json_t *acct;
    if (td_json_object(d, where, chosen->key, true, &acct, e) || check_scheme(acct, chosen, w, e) ||
        check_creditor(d, where, e) || td_json_string(d, where, "type", false, 16, &type, e))
        return -1;
    if (type && !in_list(TYPES, type))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "%s.type must be UNKNOWN or BUSINESS", where), -1;
    return 0;
}

static int check_instructions(json_t *b, const char *where, td_error *e)
{
    static const char *const INSTRUCTIONS[] = {"transferDestinations", "source", "metadata", NULL};
    char buf[96];
    const char *w = sub_path(buf, sizeof buf, where, "instructions", 0);
    json_t *ins, *obj;
    if (td_json_object(b, where, "instructions", true, &ins, e) || td_json_only(ins, w, INSTRUCTIONS, e) ||
        td_json_object(ins, w, "source", false, &obj, e) || td_json_object(ins, w, "metadata", false, &obj, e))
        return -1;
    json_t *dest = json_object_get(ins, "transferDestinations");
    if (!json_is_array(dest) || json_array_size(dest) == 0 || json_array_size(dest) > MAX_DESTINATIONS)
        return td_fail(e, TD_E_INVALID_ARGUMENT,
                       "%s.transferDestinations must be an array of 1 to %d destinations (the payee)", w,
                       MAX_DESTINATIONS),
               -1;
    size_t i;
    json_t *d;
    json_array_foreach(dest, i, d)
    {
        char dbuf[128], ibuf[128];
        const char *dw =
            sub_path(dbuf, sizeof dbuf, sub_path(ibuf, sizeof ibuf, w, "transferDestinations", 0), NULL, i);
        if (check_destination(d, dw, e)) return -1;
    }
    return 0;
}

static int check_transfer_body(json_t *b, td_error *e)
{
    static const char *const BODY[] = {"currency",
                                       "lifetimeAmount",
                                       "instructions",
                                       "amount",
                                       "executionDate",
                                       "confirmFunds",
                                       "remittanceReference",
                                       "returnRefundAccount",
                                       "setTransferDestinationsUrl",
                                       NULL};
    const char *w = "requestPayload.transferBody", *s;
    return td_json_only(b, w, BODY, e) || check_currency(b, w, e) || check_amount(b, w, "lifetimeAmount", true, e) ||
                   check_amount(b, w, "amount", false, e) || check_instructions(b, w, e) ||
                   td_json_string(b, w, "executionDate", false, 32, &s, e) || check_bool(b, w, "confirmFunds", e) ||
                   td_json_string(b, w, "remittanceReference", false, 140, &s, e) ||
                   check_bool(b, w, "returnRefundAccount", e) ||
                   td_json_string(b, w, "setTransferDestinationsUrl", false, 2048, &s, e)
               ? -1
               : 0;
}

static int check_standing_order_body(json_t *b, td_error *e)
{
    static const char *const BODY[] = {"amount",    "currency", "instructions",        "frequency",
                                       "startDate", "endDate",  "remittanceReference", "returnRefundAccount",
                                       NULL};
    const char *w = "requestPayload.standingOrderBody", *s;
    return td_json_only(b, w, BODY, e) || check_amount(b, w, "amount", true, e) || check_currency(b, w, e) ||
                   check_instructions(b, w, e) || td_json_string(b, w, "frequency", false, 16, &s, e) ||
                   td_json_string(b, w, "startDate", false, 32, &s, e) ||
                   td_json_string(b, w, "endDate", false, 32, &s, e) ||
                   td_json_string(b, w, "remittanceReference", false, 140, &s, e) ||
                   check_bool(b, w, "returnRefundAccount", e)
               ? -1
               : 0;
}

/* The longest redirectUrl a token request may carry (docs/api.md). The
 * consent redirect adds tokenId and the percent-encoded callbackState to it;
 * 2,000 characters keep the whole redirect within what browsers and proxies
 * pass on. */
#define REDIRECT_URL_MAX 2000

static int check_url(const char *url, const char *where, td_error *e)
{
    if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "%s must be an http(s) URL", where), -1;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>')
            return td_fail(e, TD_E_INVALID_ARGUMENT, "%s contains characters not allowed in a URL", where), -1;
    return 0;
}

/* Checks the whole body; sets *kind. */
int tokenio_check_request(json_t *body, td_kind *kind, td_error *e)
{
    static const char *const TOP[] = {"requestOptions", "requestPayload", NULL};
    static const char *const OPTIONS[] = {"from", "to", "bankId", "psuId", "receiptRequested", NULL};
    static const char *const PAYLOAD[] = {"refId",
                                          "to",
                                          "redirectUrl",
                                          "description",
                                          "callbackState",
                                          "countries",
                                          "actingAs",
                                          "userRefId",
                                          "disableFutureDatedPaymentConversion",
                                          "id",
                                          "accessBody",
                                          "transferBody",
                                          "standingOrderBody",
                                          "tokenExpiration",
                                          NULL};
    static const char *const ACTING_AS[] = {"displayName", "refId", "secondaryName", NULL};
    json_t *opt, *p, *from, *to, *acting, *v;
    const char *s;
    if (td_json_only(body, "body", TOP, e) || td_json_object(body, "body", "requestOptions", true, &opt, e) ||
        td_json_object(body, "body", "requestPayload", true, &p, e))
        return -1;
    if (td_json_only(opt, "requestOptions", OPTIONS, e) ||
        td_json_object(opt, "requestOptions", "from", true, &from, e) || check_member(from, "requestOptions.from", e) ||
        td_json_object(opt, "requestOptions", "to", false, &to, e) ||
        (to && check_member(to, "requestOptions.to", e)) ||
        td_json_string(opt, "requestOptions", "bankId", false, 64, &s, e) ||
        td_json_string(opt, "requestOptions", "psuId", false, 128, &s, e) ||
        check_bool(opt, "requestOptions", "receiptRequested", e))
        return -1;
    if (td_json_only(p, "requestPayload", PAYLOAD, e) || td_json_string(p, "requestPayload", "refId", true, 18, &s, e))
        return -1;
    if (!td_is_id_chars(s, 1, 18, "-"))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "requestPayload.refId must be 1-18 characters of [A-Za-z0-9-]"), -1;
    if (td_json_object(p, "requestPayload", "to", true, &to, e) || check_member(to, "requestPayload.to", e) ||
        td_json_string(p, "requestPayload", "redirectUrl", true, REDIRECT_URL_MAX, &s, e) ||
        check_url(s, "requestPayload.redirectUrl", e) ||
        td_json_string(p, "requestPayload", "description", false, 255, &s, e) ||
        td_json_string(p, "requestPayload", "callbackState", false, 1024, &s, e) ||
        td_json_string(p, "requestPayload", "userRefId", false, 128, &s, e) ||
        td_json_string(p, "requestPayload", "id", false, 96, &s, e) ||
        check_bool(p, "requestPayload", "disableFutureDatedPaymentConversion", e) ||
        td_json_object(p, "requestPayload", "actingAs", false, &acting, e) ||
        (acting && td_json_only(acting, "requestPayload.actingAs", ACTING_AS, e)))
        return -1;
    if (acting && (td_json_string(acting, "requestPayload.actingAs", "displayName", false, 255, &s, e) ||
                   td_json_string(acting, "requestPayload.actingAs", "refId", false, 64, &s, e) ||
                   td_json_string(acting, "requestPayload.actingAs", "secondaryName", false, 255, &s, e)))
        return -1;
    if ((v = json_object_get(p, "countries"))) {
        size_t i;
        json_t *c;
        if (!json_is_array(v) || json_array_size(v) > 64)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "requestPayload.countries must be an array of country codes"), -1;
        json_array_foreach(v, i, c) if (!json_is_string(c) || json_string_length(c) != 2) return td_fail(
            e, TD_E_INVALID_ARGUMENT, "requestPayload.countries[%zu] must be a 2-letter code", i),
            -1;
    }
    int bodies = 0;
    json_t *b;
    if ((b = json_object_get(p, "accessBody"))) bodies++, *kind = TD_KIND_ACCESS;
    if ((b = json_object_get(p, "transferBody"))) bodies++, *kind = TD_KIND_TRANSFER;
    if ((b = json_object_get(p, "standingOrderBody"))) bodies++, *kind = TD_KIND_STANDING_ORDER;
    if (bodies != 1)
        return td_fail(e, TD_E_INVALID_ARGUMENT,
                       "requestPayload must have exactly one of accessBody, transferBody, standingOrderBody"),
               -1;
    static const char *const BODY_KEY[] = {"accessBody", "transferBody", "standingOrderBody"};
    if (td_json_object(p, "requestPayload", BODY_KEY[*kind], true, &b, e)) return -1;
    if (*kind == TD_KIND_ACCESS     ? check_access_body(b, e)
        : *kind == TD_KIND_TRANSFER ? check_transfer_body(b, e)
                                    : check_standing_order_body(b, e))
        return -1;
    if (td_json_string(p, "requestPayload", "tokenExpiration", false, 16, &s, e)) return -1;
    if (s) {
        int64_t exp;
        if (*kind != TD_KIND_ACCESS)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "requestPayload.tokenExpiration applies to access requests only"),
                   -1;
        if (td_parse_i64(s, &exp) || exp <= 0)
            return td_fail(e, TD_E_INVALID_ARGUMENT,
                           "requestPayload.tokenExpiration must be epoch seconds (or milliseconds)"),
                   -1;
        if (td_epoch_to_ms(exp) <= td_now_ms())
            return td_fail(e, TD_E_INVALID_ARGUMENT, "requestPayload.tokenExpiration must be in the future"), -1;
    }
    return 0;
}

/* ---- handlers ---- */

static void render_stored(td_write *w)
{
    td_store_request *cmd = (td_store_request *)w;
    td_write_answer(w, 200, json_pack("{s:{s:s}}", "tokenRequest", "id", cmd->request_id));
}

static void dispose_stored(td_write *w)
{
    json_decref(((td_store_request *)w)->request);
}

void tokenio_store_request(td_req *r)
{
    td_error e = {0};
    td_kind kind = TD_KIND_ACCESS;
    json_t *body = td_body_json(r, &e);
    if (!body || tokenio_check_request(body, &kind, &e)) {
        json_decref(body);
        td_reply_error(r, &e, "");
        return;
    }
    json_t *opt = json_object_get(body, "requestOptions"), *p = json_object_get(body, "requestPayload");
    const char *to = json_string_value(json_object_get(json_object_get(p, "to"), "id"));
    const char *from = json_string_value(json_object_get(json_object_get(opt, "from"), "id"));
    json_t *opt_to = json_object_get(opt, "to");
    if (strcmp(to, r->auth.member_id) || (opt_to && strcmp(json_string_value(json_object_get(opt_to, "id")), to))) {
        json_decref(body);
        td_reply_err(r, TD_E_PERMISSION_DENIED, "requestPayload.to.id must be the calling member");
        return;
    }
    if (!strcmp(from, to)) {
        json_decref(body);
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "requestOptions.from.id must be another member than the caller");
        return;
    }
    /* What cannot be signed must be refused now, not at consent: the canonical
     * form has no real numbers and bounded nesting. */
    char *canon = td_canonical_json(p);
    if (!canon) {
        json_decref(body);
        td_reply_err(
            r, TD_E_INVALID_ARGUMENT,
            "requestPayload holds values that cannot be signed (non-integer numbers or nesting deeper than 256)");
        return;
    }
    free(canon);
    /* The reference requires requestOptions.to on a stored request. */
    if (!opt_to) json_object_set(opt, "to", json_object_get(p, "to"));
    td_store_request *cmd = td_face_new_write(r, sizeof *cmd, render_stored);
    if (!cmd) {
        json_decref(body);
        return;
    }
    cmd->w.dispose = dispose_stored;
    cmd->request = body;
    cmd->kind = kind;
    td_strlcpy(cmd->caller, r->auth.member_id, sizeof cmd->caller);
    td_strlcpy(cmd->from_id, from, sizeof cmd->from_id);
    td_strlcpy(cmd->to_id, to, sizeof cmd->to_id);
    td_svc_store_request(r->svc, cmd);
}

void tokenio_get_request(td_req *r)
{
    if (!td_param_id(r, 0, "requestId")) return;
    td_request_rec rq;
    td_error e = {0};
    if (td_svc_get_request(r->svc, r->auth.member_id, r->params[0], &rq, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    td_reply_json_steal(r, 200, td_wrap("{\"tokenRequest\":", rq.request_json, "}"));
    td_request_rec_free(&rq);
}

void tokenio_get_request_result(td_req *r)
{
    if (!td_param_id(r, 0, "tokenRequestId")) return;
    td_request_rec rq;
    td_error e = {0};
    if (td_svc_get_request(r->svc, r->auth.member_id, r->params[0], &rq, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_t *v = json_pack("{s:s}", "status", td_request_state_name(rq.state));
    if (rq.state == TD_TRS_PROCESSED) {
        json_object_set_new(v, "tokenId", json_string(rq.token_id));
        json_t *sig = rq.signature_json ? json_loads(rq.signature_json, 0, NULL) : NULL;
        if (sig) json_object_set_new(v, "signature", sig);
    }
    td_reply_json(r, 200, v);
    json_decref(v);
    td_request_rec_free(&rq);
}

static void render_authorized(td_write *w)
{
    td_authorize_request *cmd = (td_authorize_request *)w;
    td_write_answer(w, 200, json_pack("{s:s}", "redirectUrl", cmd->redirect_url));
}

void tokenio_authorize_request(td_req *r)
{
    static const char *const ALLOWED[] = {"consentAccepted", "credentials", "useCredentialFlow",
                                          "useWebappCredentialsFlow", NULL};
    if (!td_param_id(r, 0, "tokenRequestId")) return;
    td_error e = {0};
    if (r->body_len) {
        json_t *b = td_body_json(r, &e);
        int bad = !b || td_json_only(b, "body", ALLOWED, &e) || check_bool(b, "body", "consentAccepted", &e) ||
                  check_bool(b, "body", "useCredentialFlow", &e) ||
                  check_bool(b, "body", "useWebappCredentialsFlow", &e);
        if (!bad && (json_object_get(b, "credentials") || json_is_true(json_object_get(b, "useCredentialFlow")) ||
                     json_is_true(json_object_get(b, "useWebappCredentialsFlow"))))
            bad =
                td_fail(&e, TD_E_NOT_IMPLEMENTED, "the credential flow is not implemented; use the redirect flow") != 0;
        json_decref(b);
        if (bad) {
            td_reply_error(r, &e, r->params[0]);
            return;
        }
    }
    td_authorize_request *cmd = td_face_new_write(r, sizeof *cmd, render_authorized);
    if (!cmd) return;
    td_strlcpy(cmd->caller, r->auth.member_id, sizeof cmd->caller);
    td_strlcpy(cmd->request_id, r->params[0], sizeof cmd->request_id);
    cmd->w.subject = cmd->request_id;
    td_svc_authorize_request(r->svc, cmd);
}
