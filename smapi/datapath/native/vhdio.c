/* Whole-buffer pread/pwrite.  File descriptors registered with vhd_io_set_direct are O_DIRECT: a transfer whose
 * buffer, offset or length is not aligned goes through an aligned bounce buffer (reads widen to the enclosing
 * aligned range; writes are always sector-aligned in offset and length here, only the buffer may not be).
 *
 * nbdkit hands the plugin malloc'd request buffers (16-byte aligned), so under O_DIRECT nearly every request
 * bounces.  The bounce buffer is therefore kept per thread and reused: a fresh posix_memalign of a 1 MiB request is
 * an mmap, 256 page faults and a munmap every time (glibc's mmap threshold sits just below it after nbdkit's own
 * buffer of the same size is freed), which cost more CPU than the copy itself. */
#define _GNU_SOURCE
#include "vhdio.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIRECT_ALIGN 4096
#define MAX_FDS 65536

static unsigned char direct_fd[MAX_FDS];

void vhd_io_set_direct(int fd, int on) {
  if (fd >= 0 && fd < MAX_FDS) direct_fd[fd] = (unsigned char)on;
}

static int is_direct(int fd) { return fd >= 0 && fd < MAX_FDS && direct_fd[fd]; }

/* Per-thread bounce buffers up to this size are kept for the thread's life (freed by the key's destructor when an
 * nbdkit worker exits); bigger transfers get a buffer of their own. */
#define BOUNCE_KEEP (4u << 20)

struct bounce { void *p; size_t cap; };
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;

static void bounce_free(void *v) {
  struct bounce *b = v;
  free(b->p);
  free(b);
}
static void bounce_init(void) { (void)pthread_key_create(&bounce_key, bounce_free); }

/* An aligned buffer of len bytes; release it with bounce_put(). */
static void *bounce_get(size_t len) {
  void *p;
  if (len <= BOUNCE_KEEP) {
    pthread_once(&bounce_once, bounce_init);
    struct bounce *b = pthread_getspecific(bounce_key);
    if (!b && (b = calloc(1, sizeof *b)) != NULL && pthread_setspecific(bounce_key, b) != 0) { free(b); b = NULL; }
    if (b) {
      if (b->cap >= len) return b->p;
      if (posix_memalign(&p, DIRECT_ALIGN, len) != 0) return NULL;
      free(b->p);
      b->p = p;
      b->cap = len;
      return p;
    }
  }
  return posix_memalign(&p, DIRECT_ALIGN, len) == 0 ? p : NULL;
}

static void bounce_put(void *p) {
  struct bounce *b = pthread_once(&bounce_once, bounce_init) == 0 ? pthread_getspecific(bounce_key) : NULL;
  if (!b || b->p != p) free(p);
}

static int raw_pread(int fd, char *p, size_t len, uint64_t off) {
  while (len) {
    ssize_t r = pread(fd, p, len, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return -EIO; /* the structure promised these bytes */
    p += r; len -= (size_t)r; off += (uint64_t)r;
  }
  return 0;
}

static int raw_pwrite(int fd, const char *p, size_t len, uint64_t off) {
  while (len) {
    ssize_t r = pwrite(fd, p, len, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += r; len -= (size_t)r; off += (uint64_t)r;
  }
  return 0;
}

static int aligned(const void *buf, size_t len, uint64_t off) {
  return ((uintptr_t)buf % DIRECT_ALIGN) == 0 && len % 512 == 0 && off % 512 == 0;
}

int vhd_pread_full(int fd, void *buf, size_t len, uint64_t off) {
  if (!is_direct(fd) || aligned(buf, len, off)) return raw_pread(fd, buf, len, off);
  uint64_t a0 = off - off % 512, a1 = (off + len + 511) / 512 * 512;
  void *tmp = bounce_get(a1 - a0);
  if (!tmp) return -ENOMEM;
  int r = raw_pread(fd, tmp, a1 - a0, a0);
  if (!r) memcpy(buf, (char *)tmp + (off - a0), len);
  bounce_put(tmp);
  return r;
}

int vhd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
  if (!is_direct(fd) || aligned(buf, len, off)) return raw_pwrite(fd, buf, len, off);
  if (off % 512 || len % 512) return -EINVAL; /* callers write whole sectors */
  void *tmp = bounce_get(len);
  if (!tmp) return -ENOMEM;
  memcpy(tmp, buf, len);
  int r = raw_pwrite(fd, tmp, len, off);
  bounce_put(tmp);
  return r;
}
