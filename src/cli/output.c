/* output.c — how tokenctl shows answers: the server's JSON pretty-printed on
 * stdout, errors on stderr (an HTML error page becomes a small JSON error so
 * stderr is always JSON), and -q's single values for scripts. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

void cli_print_json(FILE *f, json_t *v)
{
    json_dumpf(v, f, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', f);
}

void cli_print_body(FILE *f, const char *body, size_t len)
{
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (v) {
        cli_print_json(f, v);
        json_decref(v);
        return;
    }
    fwrite(body, 1, len, f);
    if (len && body[len - 1] != '\n') fputc('\n', f);
}

static void print_leaf(FILE *f, json_t *v, int *printed)
{
    if (json_is_string(v)) {
        fprintf(f, "%s\n", json_string_value(v));
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s) fprintf(f, "%s\n", s);
        free(s);
    }
    (*printed)++;
}

/* Walks one '.'-separated path [p, end) from v. */
static void walk(FILE *f, json_t *v, const char *p, const char *end, int *printed)
{
    if (!v || json_is_null(v)) return;
    if (p >= end) {
        print_leaf(f, v, printed);
        return;
    }
    const char *dot = memchr(p, '.', (size_t)(end - p));
    const char *seg_end = dot ? dot : end, *next = dot ? dot + 1 : end;
    size_t n = (size_t)(seg_end - p);
    if (n == 2 && !memcmp(p, "[]", 2)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) walk(f, e, next, end, printed);
        return;
    }
    walk(f, json_object_getn(v, p, n), next, end, printed);
}

int cli_print_path(FILE *f, json_t *root, const char *paths)
{
    int printed = 0;
    for (const char *p = paths; p && *p && !printed;) {
        const char *bar = strchr(p, '|');
        const char *end = bar ? bar : p + strlen(p);
        walk(f, root, p, end, &printed);
        p = bar ? bar + 1 : end;
    }
    return printed ? 0 : -1;
}

/* Undoes the five escapes tokend's HTML error pages use, in place. */
static void html_unescape(char *s)
{
    static const char *const ENT[][2] = {
        {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}};
    char *o = s;
    while (*s) {
        size_t k = 0;
        while (k < 5 && strncmp(s, ENT[k][0], strlen(ENT[k][0])))
            k++;
        if (k < 5) {
            *o++ = ENT[k][1][0];
            s += strlen(ENT[k][0]);
        } else {
            *o++ = *s++;
        }
    }
    *o = 0;
}

/* The first <p>...</p> of an HTML error page: tokend puts its message there. */
static void html_message(const char *body, char *out, size_t cap)
{
    const char *a = strstr(body, "<p>"), *b = a ? strstr(a + 3, "</p>") : NULL;
    out[0] = 0;
    if (!a || !b) return;
    size_t n = (size_t)(b - (a + 3));
    if (n >= cap) n = cap - 1;
    memcpy(out, a + 3, n);
    out[n] = 0;
    html_unescape(out);
}

void cli_print_error(const cli_resp *r)
{
    json_t *v = json_loadb(r->body, r->len, 0, NULL);
    if (v) {
        cli_print_json(stderr, v);
        json_decref(v);
        return;
    }
    char msg[1024];
    html_message(r->body, msg, sizeof msg);
    v = json_pack("{s:{s:I}}", "error", "httpStatus", (json_int_t)r->status);
    json_t *err = json_object_get(v, "error");
    if (msg[0]) json_object_set_new(err, "message", json_string(msg));
    if (r->trace_id[0]) json_object_set_new(err, "tokenTraceId", json_string(r->trace_id));
    cli_print_json(stderr, v);
    json_decref(v);
}

int cli_report(const cli_ctx *ctx, const cli_resp *r, const char *quiet_path)
{
    if (r->status < 200 || r->status > 299) {
        cli_print_error(r);
        return CLI_HTTP_ERROR;
    }
    if (!ctx->quiet) {
        cli_print_body(stdout, r->body, r->len);
        return CLI_OK;
    }
    json_t *v = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
    if (v && quiet_path) cli_print_path(stdout, v, quiet_path);
    json_decref(v);
    return CLI_OK;
}
