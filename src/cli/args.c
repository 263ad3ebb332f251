/* args.c — tokenctl's command-line parsing: global options (accepted before
 * or after the command), each command's own options and positionals, and the
 * bounded URL builder that percent-encodes what users type into paths. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

int cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("tokenctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (usage) fprintf(stderr, "%s", usage);
    return CLI_USAGE;
}

/* "--name=value" or "--name": *val points after '=' when present. */
static bool opt_is(const char *arg, const char *name, const char **val)
{
    size_t n = strlen(name);
    *val = NULL;
    if (strncmp(arg, name, n)) return false;
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return true;
    }
    return arg[n] == 0;
}

/* The value of a one-value option: inline after '=' or the next argument. */
static const char *take_value(int argc, char **argv, int *i, const char *inline_val)
{
    if (inline_val) return inline_val;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

int cli_set_url(cli_ctx *ctx, const char *v, const char *what)
{
    if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
        return cli_usage_error(NULL, "%s must be an http:// or https:// URL", what);
    if (td_strlcpy(ctx->url, v, sizeof ctx->url)) return cli_usage_error(NULL, "%s is too long", what);
    /* Paths are appended with their leading '/'. */
    size_t n = strlen(ctx->url);
    while (n && ctx->url[n - 1] == '/')
        ctx->url[--n] = 0;
    return CLI_OK;
}

static int set_timeout(cli_ctx *ctx, const char *v)
{
    int64_t t;
    if (td_parse_i64(v, &t) || t < 1 || t > 3600)
        return cli_usage_error(NULL, "--timeout must be a number of seconds in [1, 3600]");
    ctx->timeout_s = (long)t;
    return CLI_OK;
}

/* The global options that take a value, and where each goes. */
static int set_global(cli_ctx *ctx, const char *name, const char *v)
{
    if (!strcmp(name, "--url")) return cli_set_url(ctx, v, "--url");
    if (!strcmp(name, "--timeout")) return set_timeout(ctx, v);
    if (!*v) return cli_usage_error(NULL, "%s needs a non-empty value", name);
    if (!strcmp(name, "--admin-key-file"))
        ctx->admin_key_file = v;
    else if (!strcmp(name, "--api-key"))
        ctx->api_key = v;
    else
        ctx->member = v;
    return CLI_OK;
}

int cli_global_option(cli_ctx *ctx, int argc, char **argv, int *i)
{
    static const char *const WITH_VALUE[] = {"--url", "--admin-key-file", "--api-key", "--member", "--timeout", NULL};
    const char *arg = argv[*i], *val;
    if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) {
        ctx->quiet = true;
        return 1;
    }
    for (const char *const *g = WITH_VALUE; *g; g++) {
        if (!opt_is(arg, *g, &val)) continue;
        const char *v = take_value(argc, argv, i, val);
        if (!v) return cli_usage_error(NULL, "%s needs a value", *g);
        return set_global(ctx, *g, v) == CLI_OK ? 1 : CLI_USAGE;
    }
    return 0;
}

static bool is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* Consumes the command option at argv[*i]: 1 if it was one, 0 if not,
 * CLI_USAGE if it lacks values. */
static int command_option(const cli_spec *spec, int argc, char **argv, int *i)
{
    const char *val;
    for (const cli_opt *o = spec->opts; o && o->name; o++) {
        if (!opt_is(argv[*i], o->name, &val)) continue;
        if (o->nargs == 0) {
            if (val) return cli_usage_error(spec->usage, "%s takes no value", o->name);
            o->out[0] = "";
            return 1;
        }
        if (val && o->nargs > 1) return cli_usage_error(spec->usage, "%s takes %d values", o->name, o->nargs);
        if (val) {
            o->out[0] = val;
            return 1;
        }
        if (*i + o->nargs >= argc)
            return cli_usage_error(spec->usage, "%s needs %d value%s", o->name, o->nargs, o->nargs > 1 ? "s" : "");
        for (int k = 0; k < o->nargs; k++)
            o->out[k] = argv[++*i];
        return 1;
    }
    return 0;
}

int cli_parse(cli_ctx *ctx, const cli_spec *spec, int argc, char **argv)
{
    int npos = 0;
    bool options_done = false;
    for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
        if (is_help(argv[i])) {
            fputs(spec->usage, stdout);
            return CLI_HELP;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && a[0] == '-' && a[1]) {
            if (!strcmp(a, "--")) {
                options_done = true;
                continue;
            }
            int rc = command_option(spec, argc, argv, &i);
            if (rc == 0) rc = cli_global_option(ctx, argc, argv, &i);
            /* Ids are base64url and may begin with '-' (a key id is derived from
             * the key, docs/signatures.md): a single-dash word longer than a short
             * option that is no option is such an argument. Options are "--name"
             * or one letter ("-q", "-h"). */
            bool id_like = rc == 0 && a[1] != '-' && a[2];
            if (!id_like) {
                /* Only the name: a mistyped "--api-key=..." must not echo the key. */
                if (rc == 0)
                    return cli_usage_error(spec->usage, "unknown option '%.*s'", (int)strcspn(a, "="), a);
                if (rc != 1) return CLI_USAGE;
                continue;
            }
        }
        /* Not echoed: a stray argument may be a key that lost its option. */
        if (npos >= spec->max_pos)
            return cli_usage_error(spec->usage, "too many arguments (at most %d)", spec->max_pos);
        spec->pos[npos++] = a;
    }
    if (npos < spec->min_pos) return cli_usage_error(spec->usage, "missing arguments");
    return CLI_OK;
}

/* ---- URLs ---- */

void cli_buf_add(cli_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->overflow || b->len + n >= sizeof b->s) {
        b->overflow = true;
        return;
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void cli_buf_add_enc(cli_buf *b, const char *s)
{
    static const char HEX[] = "0123456789ABCDEF";
    for (; *s && !b->overflow; s++) {
        unsigned char c = (unsigned char)*s;
        char one[4] = {(char)c, 0, 0, 0};
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~:", c))) {
            one[0] = '%';
            one[1] = HEX[c >> 4];
            one[2] = HEX[c & 15];
        }
        cli_buf_add(b, one);
    }
}

void cli_buf_url(cli_buf *b, const cli_ctx *ctx, const char *path)
{
    b->len = 0;
    b->s[0] = 0;
    b->overflow = false;
    cli_buf_add(b, ctx->url);
    cli_buf_add(b, path);
}
