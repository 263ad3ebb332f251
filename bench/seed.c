/* seed.c — seeds tokens into a running tokend through its real API, fast.
 *
 *   seed BASE_URL ADMIN_KEY N CONCURRENCY OUT_DIR
 *
 * Creates two members (the user who grants, the TPP who asks) and a LOW API
 * key for the TPP, then walks the Token API flow N times with CONCURRENCY
 * flows in flight (libcurl multi, keep-alive connections):
 *   POST /token-requests                      -> tokenRequest.id
 *   POST /token-requests/{id}/authorization   -> redirectUrl (consent link)
 *   POST <consent link> decision=approve&accounts=a:1 -> 303, tokenId in Location
 * Writes OUT_DIR/tokens.txt (one token id a line, in creation order) and
 * OUT_DIR/seed.env (TPP_KEY, TPP_ID, USER_ID). Exits non-zero on any failure.
 * Part of bench/run.sh; not built by CMake. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
    buf *b = arg;
    size_t n = sz * nm;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return 0;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

/* Copies the string value of "key":"..." out of a small JSON text. */
static int json_str(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *s = json ? strstr(json, pat) : NULL;
    if (!s) return -1;
    s += strlen(pat);
    const char *e = strchr(s, '"');
    if (!e || (size_t)(e - s) >= cap) return -1;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = 0;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *g_base, *g_admin;

/* One blocking admin call; returns the body (static buffer) or exits. */
static char *admin_post(const char *path, const char *body)
{
    static buf b;
    char url[512], auth[256];
    b.n = 0;
    snprintf(url, sizeof url, "%s%s", g_base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", g_admin);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    long code = 0;
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (rc != CURLE_OK || code != 201) {
        fprintf(stderr, "seed: POST %s failed: %s HTTP %ld %s\n", path, curl_easy_strerror(rc), code, b.p ? b.p : "");
        exit(1);
    }
    return b.p;
}

enum { ST_REQUEST, ST_AUTHORIZE, ST_CONSENT };

typedef struct {
    CURL *e;
    int state;
    long n; /* which token this flow is making */
    buf body;
    char url[512];
    char post[1024];
} flow;

static char g_user[128], g_tpp[128], g_key[128];
static struct curl_slist *g_json_hdrs, *g_auth_hdrs;
static long g_next, g_total, g_done;
static FILE *g_out;

static void start_step(CURLM *m, flow *f)
{
    CURL *e = f->e;
    f->body.n = 0;
    curl_easy_setopt(e, CURLOPT_URL, f->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->post);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(f->post));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER,
                     f->state == ST_CONSENT ? NULL : (f->state == ST_REQUEST ? g_json_hdrs : g_auth_hdrs));
    curl_multi_add_handle(m, e);
}

/* Starts the next token's flow on f, or returns 0 if all are started. */
static int start_flow(CURLM *m, flow *f)
{
    if (g_next >= g_total) return 0;
    f->n = g_next++;
    f->state = ST_REQUEST;
    snprintf(f->url, sizeof f->url, "%s/token-requests", g_base);
    snprintf(f->post, sizeof f->post,
             "{\"requestOptions\":{\"from\":{\"id\":\"%s\"}},\"requestPayload\":{\"refId\":\"bench-%ld\","
             "\"to\":{\"id\":\"%s\"},\"redirectUrl\":\"http://127.0.0.1/cb\",\"description\":\"bench token\","
             "\"accessBody\":{\"resourceTypeList\":{\"resources\":[\"ACCOUNTS\",\"BALANCES\"]}}}}",
             g_user, f->n, g_tpp);
    start_step(m, f);
    return 1;
}

static void fail(flow *f, const char *what, long code)
{
    fprintf(stderr, "seed: token %ld: %s failed: HTTP %ld %.300s\n", f->n, what, code, f->body.p ? f->body.p : "");
    exit(1);
}

static void url_decode(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && *s != '&' && n + 1 < cap; s++) {
        if (*s == '%' && s[1] && s[2]) {
            char hex[3] = {s[1], s[2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = 0;
}

static void step_done(CURLM *m, flow *f, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(f->e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(m, f->e);
    if (rc != CURLE_OK) {
        fprintf(stderr, "seed: token %ld: %s\n", f->n, curl_easy_strerror(rc));
        exit(1);
    }
    char id[256];
    switch (f->state) {
    case ST_REQUEST:
        if (code != 200 || json_str(f->body.p, "id", id, sizeof id)) fail(f, "POST /token-requests", code);
        snprintf(f->url, sizeof f->url, "%s/token-requests/%s/authorization", g_base, id);
        f->post[0] = 0;
        f->state = ST_AUTHORIZE;
        start_step(m, f);
        return;
    case ST_AUTHORIZE:
        if (code != 200 || json_str(f->body.p, "redirectUrl", f->url, sizeof f->url))
            fail(f, "POST authorization", code);
        snprintf(f->post, sizeof f->post, "decision=approve&accounts=a:1");
        f->state = ST_CONSENT;
        start_step(m, f);
        return;
    case ST_CONSENT: {
        char *loc = NULL;
        curl_easy_getinfo(f->e, CURLINFO_REDIRECT_URL, &loc);
        const char *t = loc ? strstr(loc, "tokenId=") : NULL;
        if (code != 303 || !t) fail(f, "POST consent", code);
        url_decode(t + 8, id, sizeof id);
        fprintf(g_out, "%s\n", id);
        g_done++;
        if (g_done % 10000 == 0) fprintf(stderr, "seed: %ld tokens\n", g_done);
        if (!start_flow(m, f)) f->state = -1;
        return;
    }
    }
}

/* A strictly positive decimal argument, or -1. */
static long positive(const char *s)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || !end || *end || end == s || v < 1 ? -1 : v;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: seed BASE_URL ADMIN_KEY N CONCURRENCY OUT_DIR\n");
        return 2;
    }
    g_base = argv[1];
    g_admin = argv[2];
    long conc = positive(argv[4]);
    g_total = positive(argv[3]);
    if (g_total < 1 || conc < 1 || conc > 4096) return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char path[1024];
    if (json_str(admin_post("/admin/v1/members", "{\"displayName\":\"bench user\"}"), "memberId", g_user,
                 sizeof g_user) ||
        json_str(admin_post("/admin/v1/members", "{\"displayName\":\"bench tpp\"}"), "memberId", g_tpp, sizeof g_tpp)) {
        fprintf(stderr, "seed: no memberId in the answer\n");
        return 1;
    }
    snprintf(path, sizeof path, "/admin/v1/members/%s/api-keys", g_tpp);
    if (json_str(admin_post(path, "{\"level\":\"LOW\"}"), "apiKey", g_key, sizeof g_key)) {
        fprintf(stderr, "seed: no apiKey in the answer\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/seed.env", argv[5]);
    FILE *env = fopen(path, "w");
    if (!env) return perror(path), 1;
    fprintf(env, "TPP_KEY=%s\nTPP_ID=%s\nUSER_ID=%s\n", g_key, g_tpp, g_user);
    fclose(env);
    snprintf(path, sizeof path, "%s/tokens.txt", argv[5]);
    g_out = fopen(path, "w");
    if (!g_out) return perror(path), 1;

    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", g_key);
    g_auth_hdrs = curl_slist_append(NULL, auth);
    g_auth_hdrs = curl_slist_append(g_auth_hdrs, "Expect:");
    g_json_hdrs = curl_slist_append(NULL, auth);
    g_json_hdrs = curl_slist_append(g_json_hdrs, "Content-Type: application/json");
    g_json_hdrs = curl_slist_append(g_json_hdrs, "Expect:");

    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);
    flow *flows = calloc((size_t)conc, sizeof *flows);
    double t0 = now_s();
    for (int i = 0; i < conc; i++) {
        flow *f = &flows[i];
        f->e = curl_easy_init();
        curl_easy_setopt(f->e, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(f->e, CURLOPT_WRITEDATA, &f->body);
        curl_easy_setopt(f->e, CURLOPT_PRIVATE, f);
        curl_easy_setopt(f->e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(f->e, CURLOPT_TIMEOUT, 60L);
        if (!start_flow(m, f)) f->state = -1;
    }
    int running = 1;
    while (g_done < g_total) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            flow *f;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            step_done(m, f, msg->data.result);
        }
        if (g_done < g_total) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double dt = now_s() - t0;
    fclose(g_out);
    fprintf(stderr, "seed: %ld tokens in %.1f s (%.0f tokens/s, %.0f API writes/s)\n", g_done, dt, g_done / dt,
            3 * g_done / dt);
    for (int i = 0; i < conc; i++)
        curl_easy_cleanup(flows[i].e);
    free(flows);
    curl_multi_cleanup(m);
    curl_slist_free_all(g_auth_hdrs);
    curl_slist_free_all(g_json_hdrs);
    curl_global_cleanup();
    return 0;
}
