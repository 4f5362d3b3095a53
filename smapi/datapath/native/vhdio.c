/* Whole-buffer pread/pwrite.  File descriptors registered with vhd_io_set_direct are O_DIRECT: a transfer whose
 * buffer, offset or length is not aligned goes through an aligned bounce buffer (reads widen to the enclosing
 * aligned range; writes are always sector-aligned in offset and length here, only the buffer may not be). */
#define _GNU_SOURCE
#include "vhdio.h"

#include <errno.h>
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
  void *tmp;
  if (posix_memalign(&tmp, DIRECT_ALIGN, a1 - a0)) return -ENOMEM;
  int r = raw_pread(fd, tmp, a1 - a0, a0);
  if (!r) memcpy(buf, (char *)tmp + (off - a0), len);
  free(tmp);
  return r;
}

int vhd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
  if (!is_direct(fd) || aligned(buf, len, off)) return raw_pwrite(fd, buf, len, off);
  if (off % 512 || len % 512) return -EINVAL; /* callers write whole sectors */
  void *tmp;
  if (posix_memalign(&tmp, DIRECT_ALIGN, len)) return -ENOMEM;
  memcpy(tmp, buf, len);
  int r = raw_pwrite(fd, tmp, len, off);
  free(tmp);
  return r;
}
