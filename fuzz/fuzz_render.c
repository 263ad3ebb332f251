/* fuzz_render.c — libFuzzer target for what tokend builds from data it keeps
 * or an operator gives it, rather than from a request: the canonical JSON it
 * signs, a signature added to a stored token's JSON, the end-user message from
 * an issuer's templates, and an issuer's delivery settings (admin API body).
 * Input: [selector byte][data]; see docs/fuzzing.md. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "core/canonical.h"
#include "core/token_json.h"
#include "notify/notify.h"

#define FZ_CHECK(cond)                                                                                                 \
    do {                                                                                                               \
        if (!(cond)) abort();                                                                                          \
    } while (0)

/* Canonical JSON is what members sign: it must parse back, and be a fixed
 * point (canonical of its own parse is itself), or two nodes could sign
 * different bytes for one payload. */
static void fz_canonical(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!v) return;
    char *c1 = td_canonical_json(v);
    json_decref(v);
    if (!c1) return;
    json_t *back = json_loads(c1, JSON_DECODE_ANY, NULL);
    FZ_CHECK(back);
    char *c2 = td_canonical_json(back);
    json_decref(back);
    FZ_CHECK(c2 && !strcmp(c1, c2));
    free(c1);
    free(c2);
}

/* Whether the top-level payloadSignatures is the last place its key appears
 * in the text: nothing in its array, nor in any top-level member after it,
 * holds the key. tokend writes tokens so (payload first, signatures after,
 * the signatures themselves never holding it): that is the edit's contract. */
static bool signatures_key_is_last(json_t *token)
{
    bool after = false, last = true;
    const char *key;
    json_t *v;
    json_object_foreach(token, key, v)
    {
        if (!strcmp(key, "payloadSignatures")) after = true;
        if (!after) continue;
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!t || strstr(t, "\"payloadSignatures\"")) last = false;
        free(t);
        if (after && strcmp(key, "payloadSignatures") && strstr(key, "payloadSignatures")) last = false;
    }
    return last;
}

/* A signature added to a stored token: the result is the same JSON with one
 * more element at the end of the top-level payloadSignatures, nothing else. */
static void fz_add_signature(const char *text)
{
    json_t *sig = json_pack("{s:s, s:s, s:s}", "memberId", "m:fz", "keyId", "k1", "signature", "c2ln");
    char *out = td_token_json_add_signature(text, "ENDORSED", sig);
    if (out) {
        json_t *before = json_loads(text, JSON_PRESERVE_ORDER, NULL), *after = json_loads(out, 0, NULL);
        /* The edit is of what tokend wrote: compact JSON (jansson's
         * JSON_COMPACT, keys in their order). Such a text with a top-level
         * payloadSignatures array must come out edited exactly; other texts
         * (whitespace, escapes written another way) are outside its contract. */
        char *as_written = before ? json_dumps(before, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        bool tokends = as_written && !strcmp(as_written, text);
        free(as_written);
        if (tokends && json_is_array(json_object_get(before, "payloadSignatures")) && signatures_key_is_last(before)) {
            FZ_CHECK(after);
            json_t *sigs = json_object_get(after, "payloadSignatures");
            size_t n = json_array_size(sigs);
            FZ_CHECK(n >= 1);
            json_t *last = json_array_get(sigs, n - 1);
            FZ_CHECK(json_equal(json_object_get(last, "signature"), sig));
            FZ_CHECK(!strcmp(json_string_value(json_object_get(last, "action")), "ENDORSED"));
            json_array_remove(sigs, n - 1);
            FZ_CHECK(json_equal(before, after));
        }
        json_decref(before);
        json_decref(after);
        free(out);
    }
    json_decref(sig);
}

/* The OTP reaches only the OTP message, whatever the issuer's templates say. */
#define FZ_OTP "Q7Z4X9W2"
static void fz_render(const char *templates, const char *message)
{
    char *text = td_render_message(templates, message, "4242", "GOOGLE_PAY", FZ_OTP, "ISS0000001");
    if (!text) return;
    if (strcmp(message, "OTP") != 0 && !strstr(templates, FZ_OTP)) FZ_CHECK(!strstr(text, FZ_OTP));
    free(text);
}

/* Blanks out of msg every object key of v (recursively): unknown field names
 * are echoed by design, so what is left of a refusal must hold no secret. */
static void scrub_keys(json_t *v, char *msg)
{
    const char *key;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, child)
        {
            size_t n = strlen(key);
            for (char *at = n ? strstr(msg, key) : NULL; at; at = strstr(at + n, key))
                memset(at, 1, n);
            scrub_keys(child, msg);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            scrub_keys(child, msg);
        }
    }
}

/* tokend's own words are ASCII: a value with a byte past it that shows in a
 * message was quoted, whereas an ASCII one may just coincide with the rule's
 * text (" http://" is in "must be an http:// URL"). */
static bool has_non_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return true;
    return false;
}

/* An issuer's delivery settings: a refusal names the rule and never the
 * secret; an acceptance fills terminated fields. */
static void fz_delivery(const char *text, size_t len)
{
    json_t *b = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(b)) {
        json_decref(b);
        return;
    }
    td_delivery_rec d;
    memset(&d, 0, sizeof d);
    const char *secret = NULL;
    td_error e = {0};
    int rc = admin_parse_delivery(b, &d, &secret, &e);
    if (rc) {
        FZ_CHECK(e.code && e.detail[0] && memchr(e.detail, 0, sizeof e.detail));
        char rest[sizeof e.detail];
        memcpy(rest, e.detail, sizeof rest);
        scrub_keys(b, rest);
        json_t *auth = json_object_get(b, "auth");
        const char *keys[] = {"token", "secret", "clientSecret", NULL};
        for (int i = 0; keys[i]; i++) {
            const char *s = json_string_value(json_object_get(auth, keys[i]));
            if (s && strlen(s) >= 8 && has_non_ascii(s)) FZ_CHECK(!strstr(rest, s));
        }
    } else {
        FZ_CHECK(memchr(d.profile, 0, sizeof d.profile) && memchr(d.base_url, 0, sizeof d.base_url));
    }
    td_delivery_rec_free(&d);
    json_decref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char *text = strndup((const char *)data + 1, size - 1); /* C strings end at the first NUL */
    if (!text) return 0;
    switch (data[0] % 4) {
    case 0: fz_canonical((const char *)data + 1, size - 1); break;
    case 1: fz_add_signature(text); break;
    case 2: {
        /* [templates JSON]\n[message name] */
        char *nl = strchr(text, '\n');
        if (nl) *nl = 0;
        fz_render(text, nl ? nl + 1 : "OTP");
        break;
    }
    default: fz_delivery((const char *)data + 1, size - 1); break;
    }
    free(text);
    return 0;
}
