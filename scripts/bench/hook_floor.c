/* The floor of a udev hook that reads svirt-pool's state: the least a program can do
 * per event with the same libraries, written in C (no runtime, no config file, no
 * checks). It opens the state read-only with the system's libsqlite3, asks the same
 * holders query as svirt-pool-udev-hook, and writes the label given on the command
 * line with libselinux's lsetfilecon. scripts/bench/hook.py builds and times it beside
 * the hook and chcon.
 *
 *   hook_floor STATE_DB POOL LV_UUID LABEL NODE
 *
 * The prototypes are declared here so that only the runtime libraries are needed
 * (libsqlite3-0 and libselinux1, not their -dev packages). */
#include <stdio.h>
#include <string.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
int sqlite3_open_v2(const char *, sqlite3 **, int, const char *);
int sqlite3_prepare_v2(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
int sqlite3_bind_text(sqlite3_stmt *, int, const char *, int, void (*)(void *));
int sqlite3_bind_blob(sqlite3_stmt *, int, const void *, int, void (*)(void *));
int sqlite3_step(sqlite3_stmt *);
int sqlite3_finalize(sqlite3_stmt *);
int sqlite3_close(sqlite3 *);
const char *sqlite3_errmsg(sqlite3 *);
int lsetfilecon(const char *, const char *);

#define SQLITE_OPEN_READONLY 0x1
#define SQLITE_ROW 100
#define SQLITE_DONE 101

static const char QUERY[] =
    "SELECT a.guest, coalesce(g.run_low, g.cat_low), coalesce(g.run_high, g.cat_high),"
    "       a.mode, a.file_ino, a.file_btime FROM attachments a"
    " JOIN guests g ON g.uuid = a.guest WHERE a.pool = ?1 AND a.volume = ?2"
    " UNION"
    " SELECT b.guest, coalesce(g.run_low, g.cat_low), coalesce(g.run_high, g.cat_high),"
    "       'ro', b.file_ino, b.file_btime FROM backing b"
    " JOIN guests g ON g.uuid = b.guest WHERE b.pool = ?1 AND b.volume = ?2"
    " ORDER BY 1";

int main(int argc, char **argv) {
    sqlite3 *db;
    sqlite3_stmt *st;
    int rc, rows = 0;
    if (argc != 6) {
        fprintf(stderr, "usage: hook_floor STATE_DB POOL LV_UUID LABEL NODE\n");
        return 2;
    }
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != 0) {
        fprintf(stderr, "hook_floor: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    if (sqlite3_prepare_v2(db, QUERY, -1, &st, NULL) != 0) {
        fprintf(stderr, "hook_floor: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_bind_text(st, 1, argv[2], -1, NULL);
    sqlite3_bind_blob(st, 2, argv[3], (int)strlen(argv[3]), NULL);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        rows++;
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc != SQLITE_DONE || rows == 0) {
        fprintf(stderr, "hook_floor: no holder found (%d)\n", rc);
        return 1;
    }
    if (lsetfilecon(argv[5], argv[4]) != 0) {
        perror("hook_floor: lsetfilecon");
        return 1;
    }
    return 0;
}
