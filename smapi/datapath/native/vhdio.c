/* Whole-buffer pread/pwrite.  File descriptors registered with vhd_io_set_direct are O_DIRECT: a transfer whose
 * buffer, offset or length is not aligned goes through an aligned bounce buffer (reads widen to the enclosing
 * aligned range; writes are always sector-aligned in offset and length here, only the buffer may not be).
 *
 * nbdkit hands the plugin malloc'd request buffers (16-byte aligned), so under O_DIRECT nearly every request
 * bounces.  Bounce buffers are therefore reused (below): a fresh posix_memalign of a 1 MiB request is an mmap, 256
 * page faults and a munmap every time (glibc's mmap threshold sits just below it after nbdkit's own buffer of the
 * same size is freed), which cost more CPU than the copy itself. */
#define _GNU_SOURCE
#include "vhdio.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DIRECT_ALIGN 4096
#define MAX_FDS 65536

static unsigned char direct_fd[MAX_FDS];

void vhd_io_set_direct(int fd, int on) {
  if (fd >= 0 && fd < MAX_FDS) direct_fd[fd] = (unsigned char)on;
}

static int is_direct(int fd) { return fd >= 0 && fd < MAX_FDS && direct_fd[fd]; }

/* Bounce buffers.  Small ones (up to BOUNCE_SMALL) are kept per thread for its life (freed by the key's destructor
 * when an nbdkit worker exits).  Large ones come from a pool shared by all threads, at most BOUNCE_POOL of them
 * kept: 2 MiB-aligned and advised as transparent huge pages, so a 1 MiB transfer is one physically contiguous
 * segment.  From scattered 4 KiB pages it needs 256 segments, more than a virtio disk takes in one request
 * (max_segments 254 here), and goes to the device as two requests (cold 1 MiB sequential reads: 0.68x -> 0.91x of
 * nbdkit file in an A/B run).  The pool, not one per thread: memory follows the I/Os in flight, not the threads. */
#define BOUNCE_SMALL (64u << 10)
#define BOUNCE_HUGE (2u << 20)
#define BOUNCE_POOL 8

struct bounce { void *p; size_t cap; };
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bounce pool[BOUNCE_POOL];
static int npool;

static void bounce_free(void *v) {
  struct bounce *b = v;
  free(b->p);
  free(b);
}
static void bounce_init(void) { (void)pthread_key_create(&bounce_key, bounce_free); }

/* The calling thread's small buffer, grown to len; NULL if none can be had (the caller allocates its own). */
static void *small_get(size_t len) {
  void *p;
  if (pthread_once(&bounce_once, bounce_init) != 0) return NULL;
  struct bounce *b = pthread_getspecific(bounce_key);
  if (!b && (b = calloc(1, sizeof *b)) != NULL && pthread_setspecific(bounce_key, b) != 0) { free(b); b = NULL; }
  if (!b) return NULL;
  if (b->cap >= len) return b->p;
  if (posix_memalign(&p, DIRECT_ALIGN, BOUNCE_SMALL) != 0) return NULL;
  free(b->p);
  b->p = p;
  b->cap = BOUNCE_SMALL;
  return p;
}

/* An aligned buffer of at least len bytes in *out; release it with bounce_put(out).  0 or -ENOMEM. */
static int bounce_get(size_t len, struct bounce *out) {
  if (len <= BOUNCE_SMALL) {
    out->p = small_get(len);
    out->cap = 0; /* the thread's own */
    if (out->p) return 0;
    out->cap = len;
    return posix_memalign(&out->p, DIRECT_ALIGN, len) == 0 ? 0 : -ENOMEM;
  }
  pthread_mutex_lock(&pool_mu);
  for (int i = 0; i < npool; i++)
    if (pool[i].cap >= len) {
      *out = pool[i];
      pool[i] = pool[--npool];
      pthread_mutex_unlock(&pool_mu);
      return 0;
    }
  pthread_mutex_unlock(&pool_mu);
  out->cap = (len + BOUNCE_HUGE - 1) / BOUNCE_HUGE * BOUNCE_HUGE;
  if (posix_memalign(&out->p, BOUNCE_HUGE, out->cap) != 0) return -ENOMEM;
  (void)madvise(out->p, out->cap, MADV_HUGEPAGE); /* best effort: without it, only the segment count is worse */
  return 0;
}

static void bounce_put(struct bounce *b) {
  if (b->cap == 0) return; /* the thread's small buffer stays with it */
  if (b->cap > BOUNCE_SMALL) {
    pthread_mutex_lock(&pool_mu);
    if (npool < BOUNCE_POOL) { pool[npool++] = *b; b->p = NULL; }
    pthread_mutex_unlock(&pool_mu);
  }
  free(b->p);
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
  struct bounce b;
  if (bounce_get(a1 - a0, &b) != 0) return -ENOMEM;
  int r = raw_pread(fd, b.p, a1 - a0, a0);
  if (!r) memcpy(buf, (char *)b.p + (off - a0), len);
  bounce_put(&b);
  return r;
}

int vhd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
  if (!is_direct(fd) || aligned(buf, len, off)) return raw_pwrite(fd, buf, len, off);
  if (off % 512 || len % 512) return -EINVAL; /* callers write whole sectors */
  struct bounce b;
  if (bounce_get(len, &b) != 0) return -ENOMEM;
  memcpy(b.p, buf, len);
  int r = raw_pwrite(fd, b.p, len, off);
  bounce_put(&b);
  return r;
}
