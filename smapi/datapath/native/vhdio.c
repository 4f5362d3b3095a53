#define _GNU_SOURCE
#include "vhdio.h"

#include <errno.h>
#include <unistd.h>

int vhd_pread_full(int fd, void *buf, size_t len, uint64_t off) {
  char *p = buf;
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

int vhd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
  const char *p = buf;
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
