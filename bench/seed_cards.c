/* seed_cards.c — seeds cards and digital cards into a running tokend through
 * its real API, fast: it POSTs a list of JSON bodies with CONCURRENCY
 * requests in flight (libcurl multi, keep-alive connections) and keeps every
 * answer.
 *
 *   seed_cards BASE_URL API_KEY PATH IN_FILE OUT_FILE CONCURRENCY STATUS
 *
 * IN_FILE has one JSON body a line. Each is sent as "POST BASE_URL PATH" with
 * "Authorization: Bearer API_KEY" and "Content-Type: application/json". Every
 * answer must have the HTTP status STATUS; its body goes to line i of
 * OUT_FILE for body i (in the input's order whatever the completion order;
 * a newline inside an answer becomes a blank). Exits non-zero on the first
 * failure, naming the line. bench/network.sh uses it twice: the issuer API's
 * card registrations (201), then the network API's tokenizations (200), whose
 * answers carry the digital card ids. Part of bench/network.sh; not built by
 * CMake. */
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

static int buf_add(buf *b, const char *d, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
    return buf_add(arg, d, sz * nm) ? 0 : sz * nm;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A strictly positive decimal argument, or -1. */
static long positive(const char *s)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || !end || *end || end == s || v < 1 ? -1 : v;
}

typedef struct {
    CURL *e;
    long line; /* index of the body being sent, -1 when idle */
    buf answer;
} flow;

static char **g_bodies, **g_answers;
static long g_n, g_next, g_done;
static long g_status;
static char g_url[1024];
static struct curl_slist *g_hdrs;

/* Reads IN_FILE into g_bodies, one body a line (the trailing newline cut). */
static int read_bodies(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return perror(path), -1;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0) continue;
        if ((size_t)g_n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **nb = realloc(g_bodies, cap * sizeof *nb);
            if (!nb) return fclose(f), free(line), -1;
            g_bodies = nb;
        }
        g_bodies[g_n] = strdup(line);
        if (!g_bodies[g_n++]) return fclose(f), free(line), -1;
    }
    free(line);
    fclose(f);
    return 0;
}

/* Starts the next body on f, or returns 0 when all are started. */
static int start_next(CURLM *m, flow *f)
{
    if (g_next >= g_n) {
        f->line = -1;
        return 0;
    }
    f->line = g_next++;
    f->answer.n = 0;
    curl_easy_setopt(f->e, CURLOPT_URL, g_url);
    curl_easy_setopt(f->e, CURLOPT_HTTPHEADER, g_hdrs);
    curl_easy_setopt(f->e, CURLOPT_POSTFIELDS, g_bodies[f->line]);
    curl_easy_setopt(f->e, CURLOPT_POSTFIELDSIZE, (long)strlen(g_bodies[f->line]));
    curl_multi_add_handle(m, f->e);
    return 1;
}

static void finish(CURLM *m, flow *f, CURLcode rc)
{
    long code = 0;
    curl_easy_getinfo(f->e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(m, f->e);
    if (rc != CURLE_OK) {
        fprintf(stderr, "seed_cards: line %ld: %s\n", f->line + 1, curl_easy_strerror(rc));
        exit(1);
    }
    if (code != g_status) {
        fprintf(stderr, "seed_cards: line %ld: HTTP %ld (expected %ld) %.300s\n", f->line + 1, code, g_status,
                f->answer.p ? f->answer.p : "");
        exit(1);
    }
    if (buf_add(&f->answer, "", 0)) exit(1);
    for (char *c = f->answer.p; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    g_answers[f->line] = strdup(f->answer.p);
    if (!g_answers[f->line]) exit(1);
    g_done++;
    if (g_done % 10000 == 0) fprintf(stderr, "seed_cards: %ld requests\n", g_done);
    start_next(m, f);
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: seed_cards BASE_URL API_KEY PATH IN_FILE OUT_FILE CONCURRENCY STATUS\n");
        return 2;
    }
    long conc = positive(argv[6]);
    g_status = positive(argv[7]);
    if (conc < 1 || conc > 4096 || g_status < 100 || g_status > 599) return 2;
    snprintf(g_url, sizeof g_url, "%s%s", argv[1], argv[3]);
    if (read_bodies(argv[4])) return 1;
    if (g_n == 0) {
        fprintf(stderr, "seed_cards: no bodies in %s\n", argv[4]);
        return 1;
    }
    g_answers = calloc((size_t)g_n, sizeof *g_answers);
    if (!g_answers) return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[2]);
    g_hdrs = curl_slist_append(NULL, auth);
    g_hdrs = curl_slist_append(g_hdrs, "Content-Type: application/json");
    g_hdrs = curl_slist_append(g_hdrs, "Expect:");

    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, conc);
    flow *flows = calloc((size_t)conc, sizeof *flows);
    if (!flows) return 1;
    double t0 = now_s();
    for (long i = 0; i < conc; i++) {
        flow *f = &flows[i];
        f->e = curl_easy_init();
        curl_easy_setopt(f->e, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(f->e, CURLOPT_WRITEDATA, &f->answer);
        curl_easy_setopt(f->e, CURLOPT_PRIVATE, f);
        curl_easy_setopt(f->e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(f->e, CURLOPT_TIMEOUT, 60L);
        start_next(m, f);
    }
    int running = 1;
    while (g_done < g_n) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            flow *f;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            finish(m, f, msg->data.result);
        }
        if (g_done < g_n) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double dt = now_s() - t0;

    FILE *out = fopen(argv[5], "w");
    if (!out) return perror(argv[5]), 1;
    for (long i = 0; i < g_n; i++)
        fprintf(out, "%s\n", g_answers[i]);
    if (fclose(out)) return perror(argv[5]), 1;
    fprintf(stderr, "seed_cards: POST %s: %ld requests in %.1f s (%.0f/s, %ld in flight)\n", argv[3], g_n, dt, g_n / dt,
            conc);
    for (long i = 0; i < conc; i++)
        curl_easy_cleanup(flows[i].e);
    for (long i = 0; i < g_n; i++) {
        free(g_bodies[i]);
        free(g_answers[i]);
    }
    free(g_bodies);
    free(g_answers);
    free(flows);
    curl_multi_cleanup(m);
    curl_slist_free_all(g_hdrs);
    curl_global_cleanup();
    return 0;
}
