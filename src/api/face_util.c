/* face_util.c — what every face does the same way: wiring a write to its
 * request, and strict JSON field checks with messages that name the field. */
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "util/util.h"

/* The generic completion: the answer (or the error in the route's shape) is
 * set under the request's lock, then the command is freed. */
void td_face_complete(td_write *w)
{
    td_req *r = w->face;
    td_req_complete_begin(r);
    if (w->err.code) {
        td_reply_error(r, &w->err, w->subject ? w->subject : "");
        free(w->body);
    } else {
        td_reply_json_steal(r, w->status, w->body);
    }
    w->body = NULL;
    td_req_complete_end(r);
    if (w->dispose) w->dispose(w);
    free(w);
}

void *td_face_new_write(td_req *r, size_t size, void (*render)(td_write *w))
{
    td_error e = {0};
    const char *key = td_idempotency_key(r, &e);
    if (e.code) {
        td_reply_error(r, &e, "");
        return NULL;
    }
    td_write *w = calloc(1, size);
    if (!w) {
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return NULL;
    }
    w->face = r;
    w->render = render;
    w->complete = td_face_complete;
    if (key) {
        w->idem = true;
        td_strlcpy(w->idem_key, key, sizeof w->idem_key);
        td_strlcpy(w->idem_scope, r->auth.cred_hash, sizeof w->idem_scope);
        static const char *const M[] = {"GET", "POST", "PUT", "DELETE", "OTHER"};
        td_request_hash(r->svc, M[r->method], r->path, r->body, r->body_len, w->req_hash);
    }
    return w;
}

char *td_wrap(const char *prefix, const char *json, const char *suffix)
{
    size_t a = strlen(prefix), b = strlen(json), c = strlen(suffix);
    char *out = malloc(a + b + c + 1);
    if (!out) return NULL;
    memcpy(out, prefix, a);
    memcpy(out + a, json, b);
    memcpy(out + a + b, suffix, c + 1);
    return out;
}

void td_write_answer(td_write *w, int status, json_t *v)
{
    w->status = status;
    w->body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
}

int td_json_only(json_t *obj, const char *where, const char *const *allowed, td_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key))
            a++;
        if (!*a) {
            td_fail(e, TD_E_INVALID_ARGUMENT, "%s: unknown field '%.64s'", where, key);
            return -1;
        }
    }
    return 0;
}

int td_json_string(json_t *obj, const char *where, const char *key, bool required, size_t maxlen, const char **out,
                   td_error *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) {
        if (!required) return 0;
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s is required", where, key);
        return -1;
    }
    if (!json_is_string(v)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must be a string", where, key);
        return -1;
    }
    size_t n = json_string_length(v);
    if (n == 0 && required) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must not be empty", where, key);
        return -1;
    }
    if (n > maxlen) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s is longer than %zu characters", where, key, maxlen);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int td_json_object(json_t *obj, const char *where, const char *key, bool required, json_t **out, td_error *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) {
        if (!required) return 0;
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s is required", where, key);
        return -1;
    }
    if (!json_is_object(v)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must be an object", where, key);
        return -1;
    }
    *out = v;
    return 0;
}

bool td_valid_id(const char *s)
{
    return td_is_id_chars(s, 3, 96, ":_-");
}

bool td_param_id(td_req *r, int i, const char *name)
{
    if (i < r->nparams && td_valid_id(r->params[i])) return true;
    td_error e = {0};
    td_fail(&e, TD_E_INVALID_ARGUMENT, "%s is not a valid id", name);
    td_reply_error(r, &e, "");
    return false;
}

/* ---- bodies ---- */

json_t *td_body_json_optional(td_req *r, bool *failed, td_error *e)
{
    *failed = false;
    size_t i = 0;
    while (i < r->body_len && (r->body[i] == ' ' || r->body[i] == '\t' || r->body[i] == '\r' || r->body[i] == '\n'))
        i++;
    if (i == r->body_len) return NULL;
    json_t *v = td_body_json(r, e);
    *failed = v == NULL;
    return v;
}

int td_json_str_ok(json_t *obj, const char *where, const char *key, bool required, size_t maxlen,
                   bool (*ok)(const char *), const char *rule, const char **out, td_error *e)
{
    if (td_json_string(obj, where, key, required, maxlen, out, e)) return -1;
    if (!*out) return 0;
    if (strlen(*out) != json_string_length(json_object_get(obj, key)) || (ok && !ok(*out))) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s %s", where, key, rule ? rule : "is not valid");
        *out = NULL;
        return -1;
    }
    return 0;
}

/* ---- network tokenization identifiers and fields ---- */

bool td_issuer_id_ok(const char *s)
{
    return s && td_is_id_chars(s, 10, 10, "_-");
}

bool td_card_id_ok(const char *s)
{
    return s && td_is_id_chars(s, 1, 48, "_-");
}

bool td_ref_id_ok(const char *s)
{
    return s && td_is_id_chars(s, 1, 64, "_-");
}

bool td_reason_ok(const char *s)
{
    return s && td_is_id_chars(s, 1, 64, " ");
}

bool td_phone_ok(const char *s)
{
    if (!s) return false;
    size_t n = strlen(s), digits = 0;
    if (n == 0 || n > 39) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (c != '+' && c != ' ' && c != '-' && c != '(' && c != ')')
            return false;
    }
    return digits >= 7 && digits <= 15;
}

bool td_email_ok(const char *s)
{
    if (!s) return false;
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n == 0 || n > 255 || !at || at == s || !at[1] || strchr(at + 1, '@')) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) return false;
    }
    return true;
}

bool td_printable_ok(const char *s, size_t max)
{
    if (!s) return false;
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) return false;
    return true;
}

bool td_correlation_header_ok(const char *s)
{
    return td_printable_ok(s, 64);
}
