/* http.c — tokenctl's one HTTP call on libcurl: http(s) only, no redirects
 * followed (the consent answer's Location is the result), a bounded answer,
 * and the headers tokenctl reports (Location, Token-Trace-Id, Content-Type). */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/util.h"

/* No tokend answer comes near this; more means something else is talking. */
#define BODY_MAX (16u << 20)

bool cli_header_value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f) return false;
    return true;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    td_buf *b = arg;
    size_t len = size * n;
    return td_buf_add(b, data, len) ? len : 0; /* 0 aborts the transfer */
}

/* Copies the value of header line `line` into out if its name is `name`. */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':') return;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t len = (size_t)(end - v);
    if (len >= cap) len = cap - 1;
    memcpy(out, v, len);
    out[len] = 0;
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    cli_resp *r = arg;
    size_t len = size * n;
    /* A new status line (after a 100 Continue) starts a new set of headers. */
    if (len > 5 && !strncmp(line, "HTTP/", 5)) r->location[0] = r->trace_id[0] = r->content_type[0] = 0;
    header_value(line, len, "Location", r->location, sizeof r->location);
    header_value(line, len, "Token-Trace-Id", r->trace_id, sizeof r->trace_id);
    header_value(line, len, "Content-Type", r->content_type, sizeof r->content_type);
    return len;
}

/* The part of a URL before its path, so errors do not echo consent codes. */
static void origin(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    size_t n = p ? (size_t)(p + 3 - url) + strcspn(p + 3, "/?#") : strlen(url);
    if (n >= cap) n = cap - 1;
    memcpy(out, url, n);
    out[n] = 0;
}

static struct curl_slist *build_headers(const cli_call *c)
{
    struct curl_slist *h = NULL, *t;
    /* Expect: 100-continue only adds a round trip for our small bodies. */
    const char *fixed[] = {"Accept: application/json", "Expect:", c->auth, NULL};
    char ctype[160];
    snprintf(ctype, sizeof ctype, "Content-Type:%s%s", c->content_type ? " " : "",
             c->content_type ? c->content_type : "");
    if (!(h = curl_slist_append(NULL, ctype))) return NULL;
    for (int i = 0; i < 3; i++)
        if (fixed[i] && (t = curl_slist_append(h, fixed[i]))) h = t;
    for (int i = 0; i < 6 && c->extra[i]; i++)
        if ((t = curl_slist_append(h, c->extra[i]))) h = t;
    return h;
}

static void set_method(CURL *h, const cli_call *c)
{
    if (c->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(c->body));
    } else if (!strcmp(c->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    if (strcmp(c->method, "GET") && strcmp(c->method, "POST")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
}

int cli_http(const cli_ctx *ctx, const cli_call *c, cli_resp *r)
{
    char errbuf[CURL_ERROR_SIZE] = "", where[256];
    memset(r, 0, sizeof *r);
    origin(c->url, where, sizeof where);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = h ? build_headers(c) : NULL;
    if (!hdrs) {
        if (h) curl_easy_cleanup(h);
        fputs("tokenctl: cannot set up an HTTP request (out of memory)\n", stderr);
        return CLI_TRANSPORT;
    }
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, ctx->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, ctx->timeout_s < 10 ? ctx->timeout_s : 10L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tokenctl/1");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    td_buf body = td_buf_bounded(BODY_MAX);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    set_method(h, c);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    r->len = body.len;
    r->body = td_buf_steal(&body);
    /* The list held the Authorization header: wipe it before freeing. */
    for (struct curl_slist *s = hdrs; s; s = s->next)
        cli_forget(s->data, strlen(s->data));
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        fprintf(stderr, "tokenctl: %s %s: %s\n", c->method, where,
                rc == CURLE_WRITE_ERROR ? "the answer is too large"
                : errbuf[0]             ? errbuf
                                        : curl_easy_strerror(rc));
        cli_resp_free(r);
        return CLI_TRANSPORT;
    }
    if (!r->body) {
        fputs("tokenctl: out of memory\n", stderr);
        return CLI_TRANSPORT;
    }
    return CLI_OK;
}

void cli_resp_free(cli_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
