/* Plain and mapped images (see vhdio.h).  A mapped image never grows: writes past its end fail with ENOSPC, which is
 * how an LV behaves when the server cannot run lvm; the driver inflates a writable leaf before it is served. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhdio.h"

static int open_dev(const char *dev, int flags, char *err, size_t errlen) {
  int fd = open(dev, flags | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", dev, strerror(e));
    return -e;
  }
  return fd;
}

static int open_mapped(struct vfile *f, const struct vspec *s, int flags, char *err, size_t errlen) {
  const char *names[VFILE_MAX_DEVS];
  f->ext = calloc((size_t)s->nmap, sizeof *f->ext);
  if (!f->ext) return -ENOMEM;
  for (int i = 0; i < s->nmap; i++) {
    const struct vmapent *m = &s->map[i];
    int k = 0; /* the same device twice: one descriptor */
    while (k < f->nfds && strcmp(names[k], m->dev) != 0) k++;
    if (k == f->nfds) {
      if (f->nfds == VFILE_MAX_DEVS) { snprintf(err, errlen, "%s: more than %d devices", s->path, VFILE_MAX_DEVS); return -EINVAL; }
      int fd = open_dev(m->dev, flags, err, errlen);
      if (fd < 0) return fd;
      names[f->nfds] = m->dev;
      f->fds[f->nfds++] = fd;
    }
    if (m->len == 0 || (m->dev_off | m->len) % 512) {
      snprintf(err, errlen, "%s: extent %d of %s is empty or not sector-aligned", s->path, i, m->dev);
      return -EINVAL;
    }
    f->ext[i] = (struct vextent){f->size, m->dev_off, m->len, f->fds[k]};
    f->size += m->len;
    f->n = i + 1;
  }
  f->mapped = 1;
  return 0;
}

int vfile_open(struct vfile *f, const struct vspec *s, int flags, char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  int direct = (flags & O_DIRECT) != 0, r;
  if (s->nmap > 0) {
    r = open_mapped(f, s, flags, err, errlen);
    for (int i = 0; i < f->nfds; i++) vhd_io_set_direct(f->fds[i], direct);
    return r;
  }
  f->fd = open(s->path, flags | O_CLOEXEC);
  if (f->fd < 0) {
    r = -errno;
    snprintf(err, errlen, "%s: %s", s->path, strerror(-r));
    return r;
  }
  vhd_io_set_direct(f->fd, direct);
  return 0;
}

void vfile_close(struct vfile *f) {
  if (f->fd >= 0) { vhd_io_set_direct(f->fd, 0); close(f->fd); }
  for (int i = 0; i < f->nfds; i++) { vhd_io_set_direct(f->fds[i], 0); close(f->fds[i]); }
  free(f->ext);
  memset(f, 0, sizeof *f);
  f->fd = -1;
}

int vfile_size(const struct vfile *f, uint64_t *size) {
  struct stat st;
  if (f->mapped) { *size = f->size; return 0; }
  if (fstat(f->fd, &st) != 0) return -errno;
  *size = (uint64_t)st.st_size;
  return 0;
}

/* The extent holding image byte `off` (extents are contiguous and sorted). */
static const struct vextent *find(const struct vfile *f, uint64_t off) {
  int lo = 0, hi = f->n - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (f->ext[mid].img_off <= off) lo = mid; else hi = mid - 1;
  }
  return &f->ext[lo];
}

typedef int (*io_fn)(int fd, void *buf, size_t len, uint64_t off);

/* `io` on each extent's piece of [off, off+len); p is the buffer (NULL for zeroing: no buffer to advance). */
static int mapped_io(const struct vfile *f, uint8_t *p, size_t len, uint64_t off, io_fn io) {
  if (off > f->size || len > f->size - off) return -ENOSPC;
  size_t done = 0;
  while (done < len) {
    const struct vextent *e = find(f, off + done);
    uint64_t in = off + done - e->img_off, take = e->len - in < len - done ? e->len - in : len - done;
    int r = io(e->fd, p ? p + done : NULL, take, e->dev_off + in);
    if (r) return r;
    done += take;
  }
  return 0;
}

static int pwrite_fn(int fd, void *buf, size_t len, uint64_t off) { return vhd_pwrite_full(fd, buf, len, off); }

int vfile_pread(const struct vfile *f, void *buf, size_t len, uint64_t off) {
  if (!f->mapped) return vhd_pread_full(f->fd, buf, len, off);
  return mapped_io(f, buf, len, off, vhd_pread_full);
}

int vfile_pwrite(const struct vfile *f, const void *buf, size_t len, uint64_t off) {
  if (!f->mapped) return vhd_pwrite_full(f->fd, buf, len, off);
  return mapped_io(f, (uint8_t *)buf, len, off, pwrite_fn);
}

static int zero_fn(int fd, void *unused, size_t len, uint64_t off) {
  static const uint8_t zeros[64 * 1024] __attribute__((aligned(4096)));
  uint64_t range[2] = {off, len};
  if (off % 512 == 0 && len % 512 == 0 && ioctl(fd, BLKZEROOUT, range) == 0) return 0;
  while (len) {
    size_t n = len < sizeof zeros ? len : sizeof zeros;
    int r = vhd_pwrite_full(fd, zeros, n, off);
    if (r) return r;
    off += n; len -= n;
  }
  return 0;
}

int vfile_zero(const struct vfile *f, uint64_t off, uint64_t len) {
  if (!f->mapped) return zero_fn(f->fd, NULL, len, off);
  return mapped_io(f, NULL, len, off, zero_fn);
}

int vfile_sync(const struct vfile *f) {
  if (!f->mapped) return fdatasync(f->fd) == 0 ? 0 : -errno;
  for (int i = 0; i < f->nfds; i++)
    if (fdatasync(f->fds[i]) != 0) return -errno;
  return 0;
}
