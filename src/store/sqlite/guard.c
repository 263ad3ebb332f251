/* sqlite/guard.c — the store file's guard. While tokend serves a SQLite
 * store it holds the database file open and locked (a second tokend on the
 * same file is refused), keeps its files private (0600), and checks, around
 * every commit, that the path still names the files it writes: a database or
 * WAL deleted or replaced under a running tokend would take every later
 * "committed" write with it at the next start. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/sqlite/sq.h"
#include "util/log.h"

/* The WAL and shared-memory files SQLite keeps beside the database. */
static void sibling(const char *path, const char *suffix, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", path, suffix);
}

/* Open files are made private whatever the umask they were created under
 * (SQLite creates the -wal and -shm with the database's mode). */
static void make_private(const char *path)
{
    if (chmod(path, 0600) != 0 && errno != ENOENT)
        td_log(TD_LOG_WARN, "store_mode", "cannot make %s private (0600): %s", path, strerror(errno));
}

int sq_guard_lock(sq_store *s, char *err, size_t cap)
{
    s->db_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600); /* an empty file is an empty database */
    if (s->db_fd < 0) {
        snprintf(err, cap, "cannot open %s: %s", s->path, strerror(errno));
        return -1;
    }
    /* flock locks are separate from SQLite's POSIX record locks: holding one
     * does not disturb SQLite, and it ends with the process, however it ends. */
    if (flock(s->db_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, cap,
                 errno == EWOULDBLOCK ? "%s is the store of another running tokend (it holds the file's lock): stop "
                                        "that one first, or give this one its own --store"
                                      : "cannot lock %s: %s",
                 s->path, strerror(errno));
        return -1;
    }
    return 0;
}

int sq_guard_watch(sq_store *s, char *err, size_t cap)
{
    char wal[1040], shm[1040];
    sibling(s->path, "-wal", wal, sizeof wal);
    sibling(s->path, "-shm", shm, sizeof shm);
    make_private(s->path);
    make_private(wal);
    make_private(shm);
    /* The writer connection is open in WAL mode, so the WAL exists and stays
     * until the last connection closes: it is as much the store as the file. */
    s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (s->wal_fd < 0) {
        snprintf(err, cap, "cannot open %s: %s", wal, strerror(errno));
        return -1;
    }
    return 0;
}

void sq_guard_release(sq_store *s)
{
    if (s->wal_fd >= 0) close(s->wal_fd);
    if (s->db_fd >= 0) close(s->db_fd); /* releases the lock */
    s->wal_fd = s->db_fd = -1;
}

/* True while path names the very file open as fd. */
static bool names_open_file(const char *path, int fd)
{
    struct stat open_st, path_st;
    if (fstat(fd, &open_st) != 0 || open_st.st_nlink == 0) return false;
    if (stat(path, &path_st) != 0) return false;
    return open_st.st_dev == path_st.st_dev && open_st.st_ino == path_st.st_ino;
}

bool sq_guard_intact(sq_store *s)
{
    if (__atomic_load_n(&s->lost, __ATOMIC_ACQUIRE)) return false;
    if (s->db_fd < 0) return true; /* not watched (opened by a tool, not served) */
    char wal[1040];
    sibling(s->path, "-wal", wal, sizeof wal);
    if (names_open_file(s->path, s->db_fd) && (s->wal_fd < 0 || names_open_file(wal, s->wal_fd))) return true;
    /* Sticky: a store found replaced stays refused until tokend restarts on
     * the right files, even if something is put back at the path later. */
    if (!__atomic_exchange_n(&s->lost, true, __ATOMIC_ACQ_REL))
        td_log(TD_LOG_ERROR, "store_lost",
               "the store file %s or its -wal was deleted or replaced while tokend was serving it: every write is "
               "refused from now on (writes since the last check were not acknowledged). Stop tokend, put the "
               "store back (tokenctl store restore) and start it again",
               s->path);
    return false;
}

int64_t sq_guard_free_bytes(sq_store *s)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", s->path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    struct statvfs v;
    if (statvfs(dir, &v) != 0) return -1;
    return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}
