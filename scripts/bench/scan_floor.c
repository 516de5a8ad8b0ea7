/* The floor of a pool scan: the system calls a scan cannot do without, and nothing else
 * (no state, no policy lookup, no reporting), on the same threads as the agent's walk.
 * Built and timed by pools.py beside `svirt-pool scan` and `chcon -R`.
 *
 *     scan_floor safe|byname ROOT THREADS LABEL
 *
 * ROOT holds directories of files (pools.py's tree); each thread takes whole
 * directories. For every regular file:
 *   safe    what svirt-pool does (docs/labels.md): openat2(O_RDONLY|O_NONBLOCK|O_NOFOLLOW,
 *           RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV),
 *           statx of the descriptor (type, links, identity), fgetxattr, fsetxattr when
 *           the label differs and the file has one link (the directory is root's: a
 *           sealed directory, written through the descriptor), close.
 *   byname  getxattrat by name, and when the label differs statx + setxattrat, no
 *           open (the floors issue 14 measured: getdents + getxattrat for a rescan):
 *           cheaper, and refused (a name looked up this way enters a mount on it; a
 *           FUSE mount by a file's owner would hang the scan).
 * Each directory is labeled too. Prints the number of files seen and labeled.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_getxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#endif

struct xattr_args {
    uint64_t value;
    uint32_t size;
    uint32_t flags;
};

static const char *XATTR = "security.selinux";
static int byname;
static int rootfd;
static const char *label;
static size_t label_len;
static char **dirs;
static size_t ndirs;
static atomic_size_t next_dir;
static atomic_size_t seen, labeled;

static int differs(const char *cur, ssize_t n) {
    return n != (ssize_t)label_len || memcmp(cur, label, label_len) != 0;
}

static void file_safe(int dirfd, const char *name) {
    struct open_how how = {
        .flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
                   RESOLVE_NO_XDEV,
    };
    int fd = syscall(SYS_openat2, dirfd, name, &how, sizeof how);
    if (fd < 0)
        return;
    struct statx st;
    char cur[256];
    if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &st) == 0 &&
        S_ISREG(st.stx_mode)) {
        atomic_fetch_add(&seen, 1);
        ssize_t n = fgetxattr(fd, XATTR, cur, sizeof cur);
        if (differs(cur, n) && st.stx_nlink == 1 &&
            fsetxattr(fd, XATTR, label, label_len, 0) == 0)
            atomic_fetch_add(&labeled, 1);
    }
    close(fd);
}

static void file_byname(int dirfd, const char *name) {
    char cur[256];
    atomic_fetch_add(&seen, 1);
    struct xattr_args get = {(uint64_t)(uintptr_t)cur, sizeof cur, 0};
    long n = syscall(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, XATTR, &get, sizeof get);
    if (!differs(cur, n))
        return;
    /* Written only to a regular file with one link, as the safe protocol does. */
    struct statx st;
    if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &st) != 0 ||
        !S_ISREG(st.stx_mode) || st.stx_nlink != 1)
        return;
    struct xattr_args set = {(uint64_t)(uintptr_t)label, (uint32_t)label_len, 0};
    if (syscall(SYS_setxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, XATTR, &set, sizeof set) == 0)
        atomic_fetch_add(&labeled, 1);
}

static void label_dir(int fd) {
    char cur[256];
    ssize_t n = fgetxattr(fd, XATTR, cur, sizeof cur);
    if (differs(cur, n))
        fsetxattr(fd, XATTR, label, label_len, 0);
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        size_t i = atomic_fetch_add(&next_dir, 1);
        if (i >= ndirs)
            return NULL;
        struct open_how how = {
            .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV,
        };
        int dirfd = syscall(SYS_openat2, rootfd, dirs[i], &how, sizeof how);
        if (dirfd < 0)
            continue;
        label_dir(dirfd);
        DIR *d = fdopendir(dup(dirfd));
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_type != DT_REG)
                continue;
            if (byname)
                file_byname(dirfd, e->d_name);
            else
                file_safe(dirfd, e->d_name);
        }
        if (d)
            closedir(d);
        close(dirfd);
    }
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "safe") && strcmp(argv[1], "byname"))) {
        fprintf(stderr, "usage: scan_floor safe|byname ROOT THREADS LABEL\n");
        return 2;
    }
    byname = !strcmp(argv[1], "byname");
    label = argv[4];
    label_len = strlen(label) + 1; /* stored with its NUL, as libselinux writes it */
    int threads = atoi(argv[3]);
    rootfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *root = rootfd < 0 ? NULL : fdopendir(dup(rootfd));
    if (!root) {
        perror(argv[2]);
        return 1;
    }
    label_dir(rootfd);
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir(root))) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        if (ndirs == cap) {
            cap = cap ? 2 * cap : 64;
            dirs = realloc(dirs, cap * sizeof *dirs);
        }
        dirs[ndirs++] = strdup(e->d_name);
    }
    closedir(root);
    pthread_t t[64];
    if (threads < 1 || threads > 64)
        threads = 1;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("%zu files, %zu labeled\n", atomic_load(&seen), atomic_load(&labeled));
    return 0;
}
