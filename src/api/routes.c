/* routes.c — the one route table: method, path pattern, handler, who may call
 * it, and the face whose error shape it answers in. */
#include <string.h>

#include "api/faces.h"
#include "api/http.h"
#include "util/config.h"
#include "util/util.h"

#define R(m, p, h, a, f)                                                                                               \
    {                                                                                                                  \
        m, p, h, a, f, p                                                                                               \
    }

const td_route td_routes[] = {
    /* operations */
    R(TD_GET, "/healthz", td_ops_healthz, TD_AUTH_NONE, TD_FACE_TOKENIO),
    R(TD_GET, "/readyz", td_ops_readyz, TD_AUTH_NONE, TD_FACE_TOKENIO),
    R(TD_GET, "/metrics", td_ops_metrics, TD_AUTH_NONE, TD_FACE_TOKENIO),

    /* Token API (Token.io-compatible) */
    /* These three also serve issuers (role "issuer"): their digital cards as CARD tokens. */
    R(TD_GET, "/tokens", tokenio_list_tokens, TD_AUTH_MEMBER_OR_ISSUER, TD_FACE_TOKENIO),
    R(TD_GET, "/tokens/{tokenId}", tokenio_get_token, TD_AUTH_MEMBER_OR_ISSUER, TD_FACE_TOKENIO),
    R(TD_PUT, "/tokens/{tokenId}/cancel", tokenio_cancel_token, TD_AUTH_MEMBER_OR_ISSUER, TD_FACE_TOKENIO),
    R(TD_POST, "/token-requests", tokenio_store_request, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/token-requests/{requestId}", tokenio_get_request, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/token-requests/{tokenRequestId}/result", tokenio_get_request_result, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/token-requests/{tokenRequestId}/authorization", tokenio_authorize_request, TD_AUTH_MEMBER,
      TD_FACE_TOKENIO),
    R(TD_GET, "/member/{memberId}/keys", tokenio_list_keys, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/member/{memberId}/keys", tokenio_add_key, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/member/{memberId}/keys/{keyId}", tokenio_get_key, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_DELETE, "/member/{memberId}/keys/{keyId}", tokenio_delete_key, TD_AUTH_MEMBER, TD_FACE_TOKENIO),

    /* Every other operation of the reference (tokenio-openapi.yml) answers 501
     * in its shape: tokend does not implement it. test_errors.py walks the
     * description and fails on any operation missing here. */
    R(TD_GET, "/accounts", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/accounts/{accountId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/account-balance", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/accounts/{accountId}/balance", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/accounts/{accountId}/standing-orders", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/accounts/{accountId}/standing-orders/{standingOrderId}", tokenio_not_implemented, TD_AUTH_MEMBER,
      TD_FACE_TOKENIO),
    R(TD_GET, "/accounts/{accountId}/transactions", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/accounts/{accountId}/transaction/{transactionId}", tokenio_not_implemented, TD_AUTH_MEMBER,
      TD_FACE_TOKENIO),
    R(TD_GET, "/banks", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/bank/countries", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/member/sub-tpps", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/member/sub-tpps", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/member/sub-tpps/{subTppId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_DELETE, "/member/sub-tpps/{subTppId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/member/sub-tpps/{subTppId}/children", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/reports/banks/status", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/reports/banks/{bankId}/status", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/transfers", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/transfers", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/transfers/{transferId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_PUT, "/webhook/config", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/webhook/config", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_DELETE, "/webhook/config", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/vrp-consents", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/vrp-consents", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/vrp-consents/{id}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_DELETE, "/vrp-consents/{id}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/vrp-consents/{id}/payments", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/vrps/{id}/confirm-funds", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/refunds", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/refunds", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/refunds/{id}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/transfers/{id}/refunds", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/payouts", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/payouts", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/payouts/{id}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/v2/banks", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/v2/payments", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/v2/payments", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/v2/payments/{paymentId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/v2/payments/{paymentId}/embedded-auth", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/v2/payment-links", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/v2/payment-links", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/v2/payment-links/{paymentLinkId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_DELETE, "/v2/payment-links/{paymentLinkId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/tokenized-accounts", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/tokenized-accounts/{tokenizedAccountId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_DELETE, "/tokenized-accounts/{tokenizedAccountId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/virtual-accounts", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/virtual-accounts", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/virtual-accounts/{accountId}", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/virtual-accounts/{accountId}/transactions", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/virtual-accounts/{accountId}/transactions/{providerPaymentId}", tokenio_not_implemented, TD_AUTH_MEMBER,
      TD_FACE_TOKENIO),
    R(TD_POST, "/virtual-accounts/{accountId}/settlement-rule", tokenio_not_implemented, TD_AUTH_MEMBER,
      TD_FACE_TOKENIO),
    R(TD_GET, "/virtual-accounts/{accountId}/settlement-rules", tokenio_not_implemented, TD_AUTH_MEMBER,
      TD_FACE_TOKENIO),
    R(TD_GET, "/virtual-accounts/{accountId}/settlement-rules/{settlementRuleId}", tokenio_not_implemented,
      TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_DELETE, "/virtual-accounts/{accountId}/settlement-rules/{settlementRuleId}", tokenio_not_implemented,
      TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_GET, "/virtual-accounts/{accountId}/settlement-rule-payouts", tokenio_not_implemented, TD_AUTH_MEMBER,
      TD_FACE_TOKENIO),
    R(TD_GET, "/qr-code", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),
    R(TD_POST, "/account-verifications", tokenio_not_implemented, TD_AUTH_MEMBER, TD_FACE_TOKENIO),

    /* Consent pages: the one-time code in the path is the credential. */
    R(TD_GET, "/consent/{code}", consent_page, TD_AUTH_NONE, TD_FACE_HTML),
    R(TD_POST, "/consent/{code}", consent_decide, TD_AUTH_NONE, TD_FACE_HTML),

/* Issuer API (D1-compatible; docs/network.md) */
#define B "/banking/v1/issuers/{issuerId}"
    R(TD_POST, B "/cards", issuer_register_card, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_GET, B "/cards/{cardId}", issuer_get_card, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_GET, B "/cards/{cardId}/digitalCards", issuer_list_dcards, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_POST, B "/cards/{cardId}/operations:suspend", issuer_card_suspend, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_POST, B "/cards/{cardId}/operations:resume", issuer_card_resume, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_POST, B "/cards/{cardId}/operations:delete", issuer_card_delete, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_GET, B "/digitalCards/{digitalCardId}", issuer_get_dcard, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_POST, B "/digitalCards/{digitalCardId}/operations:suspend", issuer_dcard_suspend, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_POST, B "/digitalCards/{digitalCardId}/operations:resume", issuer_dcard_resume, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_POST, B "/digitalCards/{digitalCardId}/operations:delete", issuer_dcard_delete, TD_AUTH_ISSUER, TD_FACE_D1),
    R(TD_GET, B "/operations/{operationId}", issuer_get_operation, TD_AUTH_ISSUER, TD_FACE_D1),
#undef B

    /* Network API: the TSP's calls for one issuer (its "network" key says which) */
    R(TD_POST, "/network/v1/tokenizations", network_tokenize, TD_AUTH_NETWORK, TD_FACE_D1),
    R(TD_POST, "/network/v1/digitalCards/{digitalCardId}/otp", network_send_otp, TD_AUTH_NETWORK, TD_FACE_D1),
    R(TD_POST, "/network/v1/events", network_event, TD_AUTH_NETWORK, TD_FACE_D1),

    /* Classic RPC (Thales IGW-compatible) */
    R(TD_POST, "/igwapi/v2.0/updateCardState", classic_update_card_state, TD_AUTH_ISSUER, TD_FACE_CLASSIC),
    R(TD_POST, "/igwapi/v2.0/getCardInfo", classic_get_card_info, TD_AUTH_ISSUER, TD_FACE_CLASSIC),
    R(TD_POST, "/igwapi/v2.0/getTokenInfo", classic_get_token_info, TD_AUTH_ISSUER, TD_FACE_CLASSIC),

    /* Admin API */
    R(TD_POST, "/admin/v1/members", admin_create_member, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/members/{memberId}/api-keys", admin_create_member_api_key, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/issuers", admin_create_issuer, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/issuers/{issuerId}/api-keys", admin_create_issuer_api_key, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/members/{memberId}/api-keys:bind", admin_bind_member_api_key, TD_AUTH_ADMIN,
      TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/issuers/{issuerId}/api-keys:bind", admin_bind_issuer_api_key, TD_AUTH_ADMIN,
      TD_FACE_TOKENIO),
    R(TD_GET, "/admin/v1/members/{memberId}/api-keys", admin_list_member_api_keys, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_GET, "/admin/v1/issuers/{issuerId}/api-keys", admin_list_issuer_api_keys, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_DELETE, "/admin/v1/members/{memberId}/api-keys/{keyId}", admin_revoke_member_api_key, TD_AUTH_ADMIN,
      TD_FACE_TOKENIO),
    R(TD_DELETE, "/admin/v1/issuers/{issuerId}/api-keys/{keyId}", admin_revoke_issuer_api_key, TD_AUTH_ADMIN,
      TD_FACE_TOKENIO),
    R(TD_GET, "/admin/v1/credential-events", admin_list_credential_events, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/faults", admin_set_fault, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_PUT, "/admin/v1/issuers/{issuerId}/card-policy", admin_put_card_policy, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_GET, "/admin/v1/issuers/{issuerId}/card-policy", admin_get_card_policy, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_GET, "/admin/v1/issuers/{issuerId}/outbox", admin_list_outbox, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/issuers/{issuerId}/outbox/{id}/replay", admin_replay_one, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/issuers/{issuerId}/outbox:replay", admin_replay_all, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_PUT, "/admin/v1/issuers/{issuerId}/delivery", admin_put_delivery, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_GET, "/admin/v1/issuers/{issuerId}/delivery", admin_get_delivery, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
    R(TD_POST, "/admin/v1/tsp", admin_set_tsp, TD_AUTH_ADMIN, TD_FACE_TOKENIO),
};
const int td_route_count = (int)(sizeof td_routes / sizeof td_routes[0]);

/* Derived from who may call a route and how it answers, which already say
 * which face it is part of. */
unsigned td_route_tls_face(const td_route *rt)
{
    switch (rt->auth) {
    case TD_AUTH_NETWORK: return TD_TLS_FACE_NETWORK;
    case TD_AUTH_ISSUER: return rt->face == TD_FACE_CLASSIC ? TD_TLS_FACE_CLASSIC : TD_TLS_FACE_ISSUER;
    case TD_AUTH_ADMIN: return TD_TLS_FACE_ADMIN;
    case TD_AUTH_MEMBER:
    case TD_AUTH_MEMBER_OR_ISSUER: return TD_TLS_FACE_TOKEN;
    case TD_AUTH_NONE: break;
    }
    return rt->face == TD_FACE_HTML ? TD_TLS_FACE_CONSENT : TD_TLS_FACE_OPS;
}

td_face td_face_of_path(const char *path)
{
    if (!path) return TD_FACE_TOKENIO;
    if (!strncmp(path, "/banking/", 9) || !strncmp(path, "/network/", 9)) return TD_FACE_D1;
    if (!strncmp(path, "/igwapi/v2.0/", 13)) return TD_FACE_CLASSIC;
    return TD_FACE_TOKENIO;
}

/* ---- matching a raw path ----
 *
 * Routing works on the path as the client sent it (libmicrohttpd's unescaped
 * copy would turn "%2F" into a separator): the raw path is split on '/' first
 * and each segment percent-decoded on its own. A decoded '/' is then part of
 * its segment (an id holding it is refused by the id's own pattern); a decoded
 * NUL or a malformed escape makes the whole path a bad request. */

#define PATH_SEGMENTS_MAX 12 /* more than any pattern has: such a path matches nothing */
#define PATH_BYTES_MAX 4096  /* decoded bytes kept; a longer path matches nothing */

typedef struct {
    int n;
    const char *seg[PATH_SEGMENTS_MAX];
    size_t len[PATH_SEGMENTS_MAX];
    char buf[PATH_BYTES_MAX];
} path_segments;

typedef enum { SPLIT_OK, SPLIT_NO_MATCH, SPLIT_BAD } split_result;

/* Percent-decodes [s, s+n) onto out; -1 on a malformed escape or a NUL. */
static int decode_segment(const char *s, size_t n, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int v = i + 2 < n ? td_hex_byte(s + i + 1) : -1;
        if (v <= 0) return -1; /* not two hex digits, or %00 */
        out[o++] = (char)v;
        i += 2;
    }
    *out_len = o;
    return 0;
}

static split_result split_path(const char *raw, path_segments *ps)
{
    size_t used = 0;
    ps->n = 0;
    if (raw[0] != '/') return SPLIT_NO_MATCH;
    for (const char *s = raw; *s == '/';) {
        s++;
        size_t n = strcspn(s, "/");
        if (ps->n >= PATH_SEGMENTS_MAX || used + n + 1 > sizeof ps->buf) return SPLIT_NO_MATCH;
        size_t len;
        if (decode_segment(s, n, ps->buf + used, &len)) return SPLIT_BAD;
        ps->buf[used + len] = 0;
        ps->seg[ps->n] = ps->buf + used;
        ps->len[ps->n++] = len;
        used += len + 1;
        s += n;
    }
    return SPLIT_OK;
}

/* Compares one decoded path segment with a pattern segment [p, p+pn). */
static bool segment_matches(const char *p, size_t pn, const char *s, size_t n)
{
    if (pn >= 2 && p[0] == '{' && p[pn - 1] == '}') return n > 0;
    return pn == n && memcmp(p, s, n) == 0;
}

/* Walks the pattern over the decoded segments; copies parameters into r. */
static bool match_path(td_req *r, const char *pattern, const path_segments *ps)
{
    const char *p = pattern;
    int np = 0, i = 0;
    size_t used = 0;
    for (; *p == '/' && i < ps->n; i++) {
        p++;
        size_t pn = strcspn(p, "/"), n = ps->len[i];
        if (!segment_matches(p, pn, ps->seg[i], n)) return false;
        if (p[0] == '{') {
            if (!r || np >= TD_MAX_PARAMS || used + n + 1 > sizeof r->param_buf) return false;
            memcpy(r->param_buf + used, ps->seg[i], n + 1);
            r->params[np++] = r->param_buf + used;
            used += n + 1;
        }
        p += pn;
    }
    if (*p || i < ps->n) return false;
    if (r) r->nparams = np;
    return true;
}

const td_route *td_route_match(td_req *r, td_method m, const char *raw_path, td_route_miss *miss)
{
    path_segments ps;
    split_result sr = split_path(raw_path, &ps);
    *miss = sr == SPLIT_BAD ? TD_MISS_BAD_PATH : TD_MISS_NOT_FOUND;
    if (sr != SPLIT_OK) return NULL;
    for (int i = 0; i < td_route_count; i++) {
        const td_route *rt = &td_routes[i];
        if (!match_path(r, rt->pattern, &ps)) continue;
        if (rt->method == m) return rt;
        *miss = TD_MISS_METHOD;
    }
    return NULL;
}
