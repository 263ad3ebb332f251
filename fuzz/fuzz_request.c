/* fuzz_request.c — libFuzzer target for what tokend does with untrusted
 * request bytes before any store access: route matching, the strict JSON body
 * parse, POST /token-requests validation, and the consent form decoder.
 * Input: [method byte][path]\n[body]. See docs/fuzzing.md. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "api/http.h"
#include "util/util.h"

/* Longest path tried; the server refuses URIs over url_max (2048) first. */
#define FZ_PATH_MAX 8192

static const td_method FZ_METHODS[] = {TD_GET, TD_POST, TD_PUT, TD_DELETE, TD_METHOD_OTHER};
#define FZ_N_METHODS (sizeof FZ_METHODS / sizeof FZ_METHODS[0])

/* An invariant broke: crash so libFuzzer keeps the input. */
#define FZ_CHECK(cond)                                                                                                 \
    do {                                                                                                               \
        if (!(cond)) abort();                                                                                          \
    } while (0)

/* A matched route must explain the path exactly: the pattern with each
 * {param} replaced by the extracted value gives the path back. */
static void fz_check_match(const td_route *rt, const td_req *r, td_method m, const char *path)
{
    FZ_CHECK(rt->method == m);
    size_t pi = 0;
    int np = 0;
    for (const char *p = rt->pattern; *p;) {
        if (*p == '{') {
            FZ_CHECK(np < r->nparams);
            const char *v = r->params[np++];
            size_t n = strlen(v);
            FZ_CHECK(n > 0 && !memchr(v, '/', n));
            FZ_CHECK(strncmp(path + pi, v, n) == 0);
            pi += n;
            p = strchr(p, '}');
            FZ_CHECK(p != NULL);
            p++;
        } else {
            FZ_CHECK(path[pi] == *p);
            pi++;
            p++;
        }
    }
    FZ_CHECK(path[pi] == 0);
    FZ_CHECK(np == r->nparams);
}

static void fz_routes(const char *path)
{
    bool any_path_match = false, none = false;
    for (size_t i = 0; i < FZ_N_METHODS; i++) {
        td_req *r = calloc(1, sizeof *r);
        if (!r) return;
        bool mismatch = false;
        const td_route *rt = td_route_match(r, FZ_METHODS[i], path, &mismatch);
        if (rt) fz_check_match(rt, r, FZ_METHODS[i], path);
        if (rt || mismatch)
            any_path_match = true;
        else
            none = true;
        free(r);
    }
    /* Whether the path exists cannot depend on the method: either some method
     * finds a route or a mismatch for every method, or nothing for all. */
    FZ_CHECK(!(any_path_match && none));
}

/* As the server parses a body (td_body_json), then validates it like
 * tokenio_store_request. */
static void fz_token_request(const uint8_t *body, size_t len)
{
    if (!len) return;
    json_error_t je;
    json_t *v = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
    if (!v) return;
    if (json_is_object(v)) {
        td_error e = {0};
        td_kind kind = TD_KIND__COUNT;
        int rc = tokenio_check_request(v, &kind, &e);
        if (rc == 0) {
            FZ_CHECK(e.code == TD_OK);
            FZ_CHECK(kind == TD_KIND_ACCESS || kind == TD_KIND_TRANSFER || kind == TD_KIND_STANDING_ORDER);
            /* what the handler reads right after a successful check */
            json_t *opt = json_object_get(v, "requestOptions"), *p = json_object_get(v, "requestPayload");
            FZ_CHECK(json_string_value(json_object_get(json_object_get(p, "to"), "id")) != NULL);
            FZ_CHECK(json_string_value(json_object_get(json_object_get(opt, "from"), "id")) != NULL);
            json_t *opt_to = json_object_get(opt, "to");
            FZ_CHECK(!opt_to || json_string_value(json_object_get(opt_to, "id")) != NULL);
        } else {
            FZ_CHECK(rc == -1);
            FZ_CHECK(e.code == TD_E_INVALID_ARGUMENT);
            size_t dl = strnlen(e.detail, sizeof e.detail);
            FZ_CHECK(dl > 0 && dl < sizeof e.detail);
        }
        /* Validation does not change the body: a second run agrees. */
        td_error e2 = {0};
        td_kind kind2 = TD_KIND__COUNT;
        FZ_CHECK(tokenio_check_request(v, &kind2, &e2) == rc);
        FZ_CHECK(e2.code == e.code && (rc != 0 || kind2 == kind));
    }
    json_decref(v);
}

/* The consent form decoder, as POST /consent/{code} runs it. */
static void fz_consent_form(const uint8_t *body, size_t len)
{
    td_consent_decide *cmd = calloc(1, sizeof *cmd);
    if (!cmd) return;
    td_error e = {0};
    int rc = consent_parse_form((const char *)body, len, cmd, &e);
    FZ_CHECK(cmd->naccounts >= 0 && cmd->naccounts <= 8);
    for (int i = 0; i < cmd->naccounts; i++)
        FZ_CHECK(td_is_id_chars(cmd->accounts[i], 1, 64, ":_-"));
    if (rc)
        FZ_CHECK(e.code == TD_E_INVALID_ARGUMENT || e.code == TD_E_INTERNAL);
    else
        FZ_CHECK(e.code == TD_OK);
    free(cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* The method byte is kept in the format (and the seeds) for the request's
     * shape, but every method is tried on the path: matching must agree
     * across methods, which is the interesting property. */
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    const uint8_t *nl = memchr(rest, '\n', n);
    size_t path_len = nl ? (size_t)(nl - rest) : n;
    if (path_len > FZ_PATH_MAX) path_len = FZ_PATH_MAX;
    /* MHD hands the URL over as a C string: it ends at the first NUL. */
    char *path = strndup((const char *)rest, path_len);
    if (!path) return 0;
    fz_routes(path);
    free(path);
    if (nl) {
        const uint8_t *body = nl + 1;
        size_t body_len = n - (size_t)(body - rest);
        fz_token_request(body, body_len);
        fz_consent_form(body, body_len);
    }
    return 0;
}
