/* test_config.c — unit tests for util/config.c: defaults, the precedence
 * file < environment < flags, each setting's validation, and the generated
 * key files (td_config_load_keys). Temp files go under $TD_TEST_TMP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "util/config.h"
#include "util/util.h"

extern char **environ;

/* ---- helpers ---- */

static char tmp_root[900];

/* Directories made by fresh_dir, removed when the run ends. */
static char made_dirs[32][1024];
static int n_made;

/* A fresh directory per call: tests must not see each other's files. */
static void fresh_dir(char *out, size_t cap, const char *tag)
{
    static int counter;
    snprintf(out, cap, "%s/config-%ld-%s-%d", tmp_root, (long)getpid(), tag, counter++);
    assert_int_equal(mkdir(out, 0700), 0);
    if (n_made < 32) td_strlcpy(made_dirs[n_made++], out, sizeof made_dirs[0]);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_made_dirs(void)
{
    for (int i = 0; i < n_made; i++)
        nftw(made_dirs[i], remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Removes every TOKEND_* variable, so the developer's shell cannot change
 * what the tests see. Restarts after each unset because environ shifts. */
static void clear_tokend_env(void)
{
    for (bool again = true; again;) {
        again = false;
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "TOKEND_", 7) != 0) continue;
            char name[256];
            const char *eq = strchr(*e, '=');
            size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
            if (n >= sizeof name) continue;
            memcpy(name, *e, n);
            name[n] = 0;
            unsetenv(name);
            again = true;
            break;
        }
    }
}

static int setup(void **state)
{
    (void)state;
    clear_tokend_env();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clear_tokend_env();
    return 0;
}

/* Loads with argv given as a NULL-terminated list; returns td_config_load's rc. */
static int load(td_config *c, char *err, size_t cap, char *const *args)
{
    int argc = 0;
    while (args && args[argc])
        argc++;
    char *argv[32];
    assert_true(argc < 32);
    for (int i = 0; i < argc; i++)
        argv[i] = args[i];
    argv[argc] = NULL;
    err[0] = 0;
    return td_config_load(c, argc, argv, err, cap);
}

static void expect_ok(td_config *c, char *const *args)
{
    char err[512];
    int rc = load(c, err, sizeof err, args);
    if (rc != 0) fail_msg("load failed: %s", err);
}

/* Fails to load, with a message containing `want`. */
static void expect_error(char *const *args, const char *want)
{
    td_config c;
    char err[512];
    assert_int_equal(load(&c, err, sizeof err, args), -1);
    if (!strstr(err, want)) fail_msg("error '%s' does not contain '%s'", err, want);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    td_config c;
    expect_ok(&c, NULL);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.store_url, "sqlite:./var/tokend.db");
    assert_string_equal(c.public_url, "http://127.0.0.1:8080");
    assert_string_equal(c.admin_key, "");
    assert_string_equal(c.admin_key_file, "");
    assert_string_equal(c.master_key_file, "");
    assert_int_equal(c.threads, 2);
    assert_int_equal(c.max_connections, 4096);
    assert_int_equal(c.connection_timeout_s, 30);
    assert_int_equal(c.body_max, 65536);
    assert_true(c.rate_rps == 200.0 && c.rate_burst == 400.0);
    assert_true(c.admin_rps == 100.0 && c.admin_burst == 200.0);
    assert_true(c.consent_rps == 5.0 && c.consent_burst == 20.0);
    assert_true(c.auth_fail_burst == 20.0 && c.auth_fail_rps * 60 > 19.99 && c.auth_fail_rps * 60 < 20.01);
    assert_int_equal(c.max_connections_per_ip, 64);
    assert_int_equal(c.request_timeout_s, 20);
    assert_int_equal(c.body_min_rate, 500);
    assert_true(c.request_ttl_ms == 3600 * 1000LL);
    assert_true(c.consent_ttl_ms == 600 * 1000LL);
    assert_true(c.access_ttl_ms == 90LL * 86400 * 1000);
    assert_true(c.commit_timeout_ms == 10000);
    td_policy p;
    td_policy_default(&p);
    assert_memory_equal(&c.policy, &p, sizeof p);
    assert_false(c.fault_injection);
    assert_false(c.log_debug);
}

/* ---- precedence ---- */

static void test_precedence(void **state)
{
    (void)state;
    char dir[1024], file[1100];
    fresh_dir(dir, sizeof dir, "prec");
    snprintf(file, sizeof file, "%s/tokend.conf", dir);
    write_file(file, "# a comment, then a blank line\n\n"
                     "listen = 10.0.0.1:1001\n"
                     "threads=3\n"
                     "  debug   =   true  \r\n"
                     "cancel-levels = ACCESS=STANDARD\n"
                     "rate-limit = 5\n");

    td_config c;
    /* the file alone */
    expect_ok(&c, (char *const[]){"--config", file, NULL});
    assert_string_equal(c.listen_host, "10.0.0.1");
    assert_int_equal(c.listen_port, 1001);
    assert_int_equal(c.threads, 3);
    assert_true(c.log_debug);
    assert_int_equal(c.policy.required[TD_KIND_ACCESS], TD_LEVEL_STANDARD);
    assert_int_equal(c.policy.required[TD_KIND_TRANSFER], TD_LEVEL_STANDARD);
    assert_true(c.rate_rps == 5.0 && c.rate_burst == 10.0);

    /* the environment overrides the file */
    setenv("TOKEND_LISTEN", "10.0.0.2:1002", 1);
    setenv("TOKEND_THREADS", "4", 1);
    setenv("TOKEND_RATE_LIMIT", "7:9", 1);
    expect_ok(&c, (char *const[]){"--config", file, NULL});
    assert_string_equal(c.listen_host, "10.0.0.2");
    assert_int_equal(c.listen_port, 1002);
    assert_int_equal(c.threads, 4);
    assert_true(c.log_debug); /* only in the file */
    assert_true(c.rate_rps == 7.0 && c.rate_burst == 9.0);

    /* flags override both */
    expect_ok(&c, (char *const[]){"--listen", "10.0.0.3:1003", "--config", file, "--rate-limit", "0", NULL});
    assert_string_equal(c.listen_host, "10.0.0.3");
    assert_int_equal(c.listen_port, 1003);
    assert_int_equal(c.threads, 4);
    assert_true(c.rate_rps == 0.0);
    assert_true(c.rate_burst == 1.0); /* 0 disables; the bucket is never empty */
    assert_string_equal(c.public_url, "http://10.0.0.3:1003");

    /* TOKEND_CONFIG names the file too; --config wins over it */
    char other[1100];
    snprintf(other, sizeof other, "%s/other.conf", dir);
    write_file(other, "threads = 9\n");
    unsetenv("TOKEND_THREADS");
    setenv("TOKEND_CONFIG", other, 1);
    expect_ok(&c, NULL);
    assert_int_equal(c.threads, 9);
    expect_ok(&c, (char *const[]){"--config", file, NULL});
    assert_int_equal(c.threads, 3);
    unsetenv("TOKEND_CONFIG");
    unsetenv("TOKEND_LISTEN");
    unsetenv("TOKEND_RATE_LIMIT");

    /* later flags win over earlier ones */
    expect_ok(&c, (char *const[]){"--threads", "5", "--threads", "6", NULL});
    assert_int_equal(c.threads, 6);
}

/* Every setting is reachable by its environment name (dashes as underscores). */
static void test_env_names(void **state)
{
    (void)state;
    setenv("TOKEND_STORE", "sqlite:/tmp/x.db", 1);
    setenv("TOKEND_PUBLIC_URL", "https://tokend.example/", 1);
    setenv("TOKEND_ADMIN_KEY", "0123456789abcdef0123", 1);
    setenv("TOKEND_MAX_CONNECTIONS", "10", 1);
    setenv("TOKEND_CONNECTION_TIMEOUT", "5", 1);
    setenv("TOKEND_BODY_MAX", "2048", 1);
    setenv("TOKEND_REQUEST_TTL", "60", 1);
    setenv("TOKEND_CONSENT_TTL", "30", 1);
    setenv("TOKEND_ACCESS_TTL", "86400", 1);
    setenv("TOKEND_COMMIT_TIMEOUT", "250", 1);
    setenv("TOKEND_CANCEL_LEVELS", "TRANSFER=PRIVILEGED,CARD=LOW", 1);
    setenv("TOKEND_FAULT_INJECTION", "yes", 1);
    setenv("TOKEND_DEBUG", "1", 1);
    td_config c;
    expect_ok(&c, NULL);
    assert_string_equal(c.store_url, "sqlite:/tmp/x.db");
    assert_string_equal(c.public_url, "https://tokend.example");
    assert_string_equal(c.admin_key, "0123456789abcdef0123");
    assert_int_equal(c.max_connections, 10);
    assert_int_equal(c.connection_timeout_s, 5);
    assert_int_equal(c.body_max, 2048);
    assert_true(c.request_ttl_ms == 60000);
    assert_true(c.consent_ttl_ms == 30000);
    assert_true(c.access_ttl_ms == 86400000LL);
    assert_true(c.commit_timeout_ms == 250);
    assert_int_equal(c.policy.required[TD_KIND_ACCESS], TD_LEVEL_LOW);
    assert_int_equal(c.policy.required[TD_KIND_TRANSFER], TD_LEVEL_PRIVILEGED);
    assert_int_equal(c.policy.required[TD_KIND_STANDING_ORDER], TD_LEVEL_STANDARD);
    assert_int_equal(c.policy.required[TD_KIND_CARD], TD_LEVEL_LOW);
    assert_true(c.fault_injection);
    assert_true(c.log_debug);
}

/* ---- validation ---- */

/* An IPv6 listen address is written as in a URL; the default public URL keeps the brackets. */
static void test_listen_ipv6(void **state)
{
    (void)state;
    td_config c;
    expect_ok(&c, (char *const[]){"--listen", "[::1]:8443", NULL});
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 8443);
    assert_string_equal(c.public_url, "http://[::1]:8443");
    char text[96];
    td_config_listen_text(&c, text, sizeof text);
    assert_string_equal(text, "[::1]:8443");
    expect_ok(&c, (char *const[]){"--listen", "[fe80::1:2]:80", NULL});
    assert_string_equal(c.listen_host, "fe80::1:2");
    assert_int_equal(c.listen_port, 80);
    expect_ok(&c, (char *const[]){"--listen", "10.0.0.9:81", NULL});
    td_config_listen_text(&c, text, sizeof text);
    assert_string_equal(text, "10.0.0.9:81");
    assert_string_equal(c.public_url, "http://10.0.0.9:81");
}

static void test_bad_listen(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "8080",
        ":8080",
        "localhost",
        "localhost:",
        "localhost:http",
        "localhost:65536",
        "localhost:-1",
        "localhost:+80",
        "localhost: 80",
        "localhost:80 ",
        "a-host-name-that-is-much-longer-than-the-sixty-four-bytes-allowed.example:80",
        /* IPv6: brackets required, then ':' and the port */
        "::1:8080",
        "::1",
        "[::1]8080",
        "[::1]:",
        "[::1]",
        "[]:8080",
        "[::1:8080",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error((char *const[]){"--listen", (char *)bad[i], NULL}, "listen must be ADDR:PORT");
    /* the same check applies from the environment */
    setenv("TOKEND_LISTEN", "nowhere", 1);
    expect_error(NULL, "listen must be ADDR:PORT, got 'nowhere'");
    unsetenv("TOKEND_LISTEN");

    td_config c;
    expect_ok(&c, (char *const[]){"--listen", "[::1]:65535", NULL});
    assert_string_equal(c.listen_host, "::1"); /* brackets are URL syntax, not the address */
    assert_int_equal(c.listen_port, 65535);
    assert_string_equal(c.public_url, "http://[::1]:65535");
}

/* The abuse limits of docs/api.md: each refuses what it cannot mean. */
static void test_abuse_limits(void **state)
{
    (void)state;
    static const char *const bad_auth[] = {"", "5", "x:60", "5:0", "5:86401", "-1:60", "5:x", "1000001:60"};
    for (size_t i = 0; i < sizeof bad_auth / sizeof bad_auth[0]; i++)
        expect_error((char *const[]){"--auth-failure-limit", (char *)bad_auth[i], NULL},
                     "auth-failure-limit must be N:SECONDS");
    expect_error((char *const[]){"--admin-rate-limit", "x", NULL}, "admin-rate-limit must be RPS or RPS:BURST");
    expect_error((char *const[]){"--consent-rate-limit", "1:0", NULL}, "consent-rate-limit must be RPS or RPS:BURST");
    expect_error((char *const[]){"--request-timeout", "0", NULL}, "request_timeout_s must be an integer");
    expect_error((char *const[]){"--body-min-rate", "0", NULL}, "body_min_rate must be an integer");
    expect_error((char *const[]){"--max-connections-per-ip", "-1", NULL}, "max_connections_per_ip must be an integer");
    td_config c;
    expect_ok(&c, (char *const[]){"--auth-failure-limit", "6:3", "--admin-rate-limit", "0", "--consent-rate-limit",
                                  "2:9", "--max-connections-per-ip", "0", NULL});
    assert_true(c.auth_fail_burst == 6.0 && c.auth_fail_rps == 2.0);
    assert_true(c.admin_rps == 0.0 && c.consent_rps == 2.0 && c.consent_burst == 9.0);
    assert_int_equal(c.max_connections_per_ip, 0);
    expect_ok(&c, (char *const[]){"--auth-failure-limit", "0", NULL});
    assert_true(c.auth_fail_rps == 0.0); /* disabled */
}

static void test_bad_rate_limit(void **state)
{
    (void)state;
    static const char *const bad[] = {"",     "x",    "-1",     "1.5",      "10:",         ":5",
                                      "10:0", "10:x", "10:5:5", "10000001", "10:100000001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error((char *const[]){"--rate-limit", (char *)bad[i], NULL}, "rate-limit must be RPS or RPS:BURST");
    td_config c;
    expect_ok(&c, (char *const[]){"--rate-limit", "100", NULL});
    assert_true(c.rate_rps == 100.0 && c.rate_burst == 200.0);
    expect_ok(&c, (char *const[]){"--rate-limit", "10:15", NULL});
    assert_true(c.rate_rps == 10.0 && c.rate_burst == 15.0);
}

static void test_bad_cancel_levels(void **state)
{
    (void)state;
    static const char *const bad[] = {"ACCESS",
                                      "ACCESS=",
                                      "=LOW",
                                      "ACCESS=HIGH",
                                      "SAVINGS=LOW",
                                      "access=LOW",
                                      "ACCESS=low",
                                      "ACCESS=LOW;TRANSFER=LOW",
                                      "ACCESS=LOW,TRANSFER"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error((char *const[]){"--cancel-levels", (char *)bad[i], NULL}, "cancel-levels must be KIND=LEVEL");
    td_config c;
    expect_ok(&c, (char *const[]){"--cancel-levels", "ACCESS=PRIVILEGED,STANDING_ORDER=LOW", NULL});
    assert_int_equal(c.policy.required[TD_KIND_ACCESS], TD_LEVEL_PRIVILEGED);
    assert_int_equal(c.policy.required[TD_KIND_TRANSFER], TD_LEVEL_STANDARD); /* unchanged */
    assert_int_equal(c.policy.required[TD_KIND_STANDING_ORDER], TD_LEVEL_LOW);
    assert_int_equal(c.policy.required[TD_KIND_CARD], TD_LEVEL_STANDARD);
}

static void test_bad_numbers_and_bools(void **state)
{
    (void)state;
    expect_error((char *const[]){"--threads", "0", NULL}, "threads must be an integer in [1, 64]");
    expect_error((char *const[]){"--threads", "65", NULL}, "threads");
    expect_error((char *const[]){"--threads", "two", NULL}, "threads");
    expect_error((char *const[]){"--body-max", "1023", NULL}, "body_max");
    expect_error((char *const[]){"--max-connections", "100001", NULL}, "max_connections");
    expect_error((char *const[]){"--consent-ttl", "86401", NULL}, "consent_ttl_ms");
    expect_error((char *const[]){"--commit-timeout", "0", NULL}, "commit_timeout_ms");
    expect_error((char *const[]){"--debug", "maybe", NULL}, "debug must be true or false");
    expect_error((char *const[]){"--fault-injection", "TRUE", NULL}, "fault-injection must be true or false");
    char longv[1100];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    expect_error((char *const[]){"--store", longv, NULL}, "store_url is too long");
}

static void test_bad_command_line(void **state)
{
    (void)state;
    expect_error((char *const[]){"--no-such-flag", "1", NULL}, "unknown flag '--no-such-flag'");
    expect_error((char *const[]){"--threads", NULL}, "--threads needs a value");
    expect_error((char *const[]){"serve", NULL}, "unexpected argument 'serve'");
    expect_error((char *const[]){"-t", "2", NULL}, "unexpected argument '-t'");
    expect_error((char *const[]){"--help", NULL}, "help");
}

static void test_bad_config_file(void **state)
{
    (void)state;
    char dir[1024], file[1100];
    fresh_dir(dir, sizeof dir, "badfile");

    snprintf(file, sizeof file, "%s/unknown.conf", dir);
    write_file(file, "threads = 2\nlisten_addr = 1.2.3.4:5\n");
    expect_error((char *const[]){"--config", file, NULL}, ":2: unknown setting 'listen_addr'");

    snprintf(file, sizeof file, "%s/noeq.conf", dir);
    write_file(file, "# ok\nthreads 2\n");
    expect_error((char *const[]){"--config", file, NULL}, ":2: expected 'name = value'");

    snprintf(file, sizeof file, "%s/badvalue.conf", dir);
    write_file(file, "listen = nowhere\n");
    expect_error((char *const[]){"--config", file, NULL}, "listen must be ADDR:PORT");

    snprintf(file, sizeof file, "%s/missing.conf", dir);
    expect_error((char *const[]){"--config", file, NULL}, "cannot read config file");
    setenv("TOKEND_CONFIG", file, 1);
    expect_error(NULL, "cannot read config file");
    unsetenv("TOKEND_CONFIG");
}

static void test_public_url(void **state)
{
    (void)state;
    td_config c;
    expect_ok(&c, (char *const[]){"--listen", "0.0.0.0:9000", NULL});
    assert_string_equal(c.public_url, "http://0.0.0.0:9000");
    expect_ok(&c, (char *const[]){"--public-url", "https://tokend.example/", NULL});
    assert_string_equal(c.public_url, "https://tokend.example");
    expect_ok(&c, (char *const[]){"--public-url", "https://tokend.example/base///", NULL});
    assert_string_equal(c.public_url, "https://tokend.example/base");
    expect_ok(&c, (char *const[]){"--public-url", "https://tokend.example/base", NULL});
    assert_string_equal(c.public_url, "https://tokend.example/base");
}

/* The TLS settings: files together or not at all, client faces parsed by
 * name, defaulting to the network's and issuers' faces once a client CA is
 * set; the consent links' default scheme follows. */
static void test_tls_settings(void **state)
{
    (void)state;
    td_config c;
    expect_ok(&c, (char *const[]){NULL});
    assert_false(td_config_tls(&c));
    assert_int_equal(c.tls_client_faces, 0);

    expect_ok(&c, (char *const[]){"--tls-cert", "/s.pem", "--tls-key", "/s.key", "--listen", "127.0.0.1:9443", NULL});
    assert_true(td_config_tls(&c));
    assert_string_equal(c.tls_cert_file, "/s.pem");
    assert_string_equal(c.tls_key_file, "/s.key");
    assert_int_equal(c.tls_client_faces, 0);
    assert_string_equal(c.public_url, "https://127.0.0.1:9443");

    expect_ok(&c, (char *const[]){"--tls-cert", "/s.pem", "--tls-key", "/s.key", "--tls-client-ca", "/ca.pem", NULL});
    assert_string_equal(c.tls_client_ca_file, "/ca.pem");
    assert_int_equal(c.tls_client_faces, TD_TLS_FACE_NETWORK | TD_TLS_FACE_ISSUER | TD_TLS_FACE_CLASSIC);

    expect_ok(&c, (char *const[]){"--tls-cert", "/s.pem", "--tls-key", "/s.key", "--tls-client-ca", "/ca.pem",
                                  "--tls-client-faces", "token,admin,ops,consent,network", NULL});
    assert_int_equal(c.tls_client_faces, TD_TLS_FACE_TOKEN | TD_TLS_FACE_ADMIN | TD_TLS_FACE_OPS |
                                             TD_TLS_FACE_CONSENT | TD_TLS_FACE_NETWORK);
    expect_ok(&c, (char *const[]){"--tls-cert", "/s.pem", "--tls-key", "/s.key", "--tls-client-ca", "/ca.pem",
                                  "--tls-client-faces", "none", NULL});
    assert_int_equal(c.tls_client_faces, 0);

    expect_error((char *const[]){"--tls-cert", "/s.pem", NULL}, "tls-cert and tls-key go together");
    expect_error((char *const[]){"--tls-key", "/s.key", NULL}, "tls-cert and tls-key go together");
    expect_error((char *const[]){"--tls-client-ca", "/ca.pem", NULL}, "tls-client-ca needs tls-cert");
    expect_error((char *const[]){"--tls-cert", "/s.pem", "--tls-key", "/s.key", "--tls-client-faces", "network", NULL},
                 "tls-client-faces needs tls-client-ca");
    static const char *const bad[] = {"", ",", "Network", "network,", "network,,issuer", "tokens", "none,network"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error((char *const[]){"--tls-cert", "/s.pem", "--tls-key", "/s.key", "--tls-client-ca", "/ca.pem",
                                     "--tls-client-faces", (char *)bad[i], NULL},
                     "tls-client-faces must be none or");
}

/* ---- key files ---- */

static void expect_mode_0600(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_load_keys_generates_and_rereads(void **state)
{
    (void)state;
    char dir[1024], url[1200], master[1100], admin[1100];
    fresh_dir(dir, sizeof dir, "keys");
    /* "var" does not exist yet: it is created for the keys */
    snprintf(url, sizeof url, "sqlite:%s/var/tokend.db", dir);
    snprintf(master, sizeof master, "%s/var/master.key", dir);
    snprintf(admin, sizeof admin, "%s/var/admin.key", dir);

    td_config a, b;
    char err[512] = "";
    expect_ok(&a, (char *const[]){"--store", url, NULL});
    if (td_config_load_keys(&a, err, sizeof err)) fail_msg("load_keys: %s", err);
    assert_string_equal(a.master_key_file, master);
    assert_string_equal(a.admin_key_file, admin);
    expect_mode_0600(master);
    expect_mode_0600(admin);

    char text[256];
    read_file(master, text, sizeof text);
    assert_int_equal(strlen(text), 65); /* 64 hex + newline */
    read_file(admin, text, sizeof text);
    assert_int_equal(strlen(text), 49); /* 48 hex + newline */
    text[48] = 0;
    assert_string_equal(a.admin_key, text);
    static const uint8_t zero[32];
    assert_memory_not_equal(a.master_key, zero, sizeof zero);

    /* A second load reads the same keys instead of making new ones. */
    expect_ok(&b, (char *const[]){"--store", url, NULL});
    if (td_config_load_keys(&b, err, sizeof err)) fail_msg("load_keys again: %s", err);
    assert_memory_equal(a.master_key, b.master_key, sizeof a.master_key);
    assert_string_equal(a.admin_key, b.admin_key);
    expect_mode_0600(master);
}

/* An admin key given directly means no admin.key file is made. */
static void test_load_keys_admin_from_env(void **state)
{
    (void)state;
    char dir[1024], url[1200], admin[1100];
    fresh_dir(dir, sizeof dir, "envkey");
    snprintf(url, sizeof url, "sqlite:%s/tokend.db", dir);
    snprintf(admin, sizeof admin, "%s/admin.key", dir);
    setenv("TOKEND_ADMIN_KEY", "an-admin-key-of-enough-length", 1);
    td_config c;
    char err[512];
    expect_ok(&c, (char *const[]){"--store", url, NULL});
    assert_int_equal(td_config_load_keys(&c, err, sizeof err), 0);
    assert_string_equal(c.admin_key, "an-admin-key-of-enough-length");
    struct stat st;
    assert_int_equal(stat(admin, &st), -1);
    assert_int_equal(errno, ENOENT);
    unsetenv("TOKEND_ADMIN_KEY");
}

static void test_load_keys_rejects_bad_files(void **state)
{
    (void)state;
    char dir[1024], url[1200], master[1100], admin[1100];
    fresh_dir(dir, sizeof dir, "badkeys");
    snprintf(url, sizeof url, "sqlite:%s/tokend.db", dir);
    snprintf(master, sizeof master, "%s/my-master.key", dir);
    snprintf(admin, sizeof admin, "%s/my-admin.key", dir);
    td_config c;
    char err[512];

    write_file(master, "not hex at all\n");
    expect_ok(&c, (char *const[]){"--store", url, "--master-key-file", master, NULL});
    assert_int_equal(td_config_load_keys(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "must hold 64 hex characters"));

    write_file(master, "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEF\n"); /* 63 */
    expect_ok(&c, (char *const[]){"--store", url, "--master-key-file", master, NULL});
    assert_int_equal(td_config_load_keys(&c, err, sizeof err), -1);

    write_file(master, "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n");
    write_file(admin, "short\n");
    expect_ok(&c, (char *const[]){"--store", url, "--master-key-file", master, "--admin-key-file", admin, NULL});
    assert_int_equal(td_config_load_keys(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 16 characters"));

    /* Both files good: exactly their contents. */
    write_file(admin, "0123456789abcdefXYZ\n");
    expect_ok(&c, (char *const[]){"--store", url, "--master-key-file", master, "--admin-key-file", admin, NULL});
    assert_int_equal(td_config_load_keys(&c, err, sizeof err), 0);
    assert_int_equal(c.master_key[0], 0x00);
    assert_int_equal(c.master_key[1], 0x11);
    assert_int_equal(c.master_key[31], 0xff);
    assert_string_equal(c.admin_key, "0123456789abcdefXYZ");
}

/* Key files written by hand may carry spaces, tabs or CRLF around the key:
 * they are trimmed on both sides, not only at the end. */
static void test_load_keys_trims_key_files(void **state)
{
    (void)state;
    char dir[1024], url[1200], master[1100], admin[1100];
    fresh_dir(dir, sizeof dir, "trim");
    snprintf(url, sizeof url, "sqlite:%s/tokend.db", dir);
    snprintf(master, sizeof master, "%s/master.key", dir);
    snprintf(admin, sizeof admin, "%s/admin.key", dir);
    write_file(master, "  00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\r\n");
    write_file(admin, "\t 0123456789abcdefXYZ  \r\n");
    td_config c;
    char err[512] = "";
    expect_ok(&c, (char *const[]){"--store", url, NULL});
    if (td_config_load_keys(&c, err, sizeof err)) fail_msg("load_keys: %s", err);
    assert_int_equal(c.master_key[0], 0x00);
    assert_int_equal(c.master_key[31], 0xff);
    assert_string_equal(c.admin_key, "0123456789abcdefXYZ");
}

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    const char *t = getenv("TD_TEST_TMP");
    snprintf(tmp_root, sizeof tmp_root, "%s", t && *t ? t : "/tmp");
    mkdir(tmp_root, 0700); /* CTest names it; it may not exist yet */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abuse_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_cancel_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_numbers_and_bools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_command_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_keys_generates_and_rereads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_keys_admin_from_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_keys_rejects_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_keys_trims_key_files, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed) remove_made_dirs(); /* kept after a failure, to look at */
    return failed;
}
