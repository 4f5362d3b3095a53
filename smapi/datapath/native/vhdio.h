/* Whole-buffer I/O on an image's bytes.  An image is a plain file, or a *mapped* one: a fixed-size byte range made
 * of extents on block devices (an LV reached through its segment map: (device, offset, length) runs).  Return 0 or
 * a negative errno; -EIO at the end of a plain file, -ENOSPC past the end of a mapped one. */
#ifndef SMAPI_VHDIO_H
#define SMAPI_VHDIO_H
#include <stddef.h>
#include <stdint.h>

#define VFILE_MAX_DEVS 64

/* One run of a mapped image: bytes [img_off, img_off+len) of the image live at dev_off on the device. */
struct vextent {
  uint64_t img_off, dev_off, len;
  int fd;
};

/* What to open: a path (plain file), or with nmap > 0 extents on devices (path is then only a name). */
struct vmapent { const char *dev; uint64_t dev_off, len; };
struct vspec {
  const char *path;
  int nmap;
  struct vmapent *map; /* in image order, contiguous from 0 */
};

struct vfile {
  int fd;        /* plain file; -1 for a mapped image */
  int mapped;    /* 1: size is fixed (no growth, no truncation) */
  uint64_t size; /* mapped: the sum of the extents */
  int n;
  struct vextent *ext;
  int nfds;
  int fds[VFILE_MAX_DEVS]; /* distinct devices (sync, close) */
};

/* Mark fd as opened with O_DIRECT (unaligned transfers then use a bounce buffer). */
void vhd_io_set_direct(int fd, int on);
int vhd_pread_full(int fd, void *buf, size_t len, uint64_t off);
int vhd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* flags: O_RDONLY/O_RDWR plus O_DIRECT or not.  On failure -errno and a message in err. */
int vfile_open(struct vfile *f, const struct vspec *s, int flags, char *err, size_t errlen);
void vfile_close(struct vfile *f);
int vfile_size(const struct vfile *f, uint64_t *size);
int vfile_pread(const struct vfile *f, void *buf, size_t len, uint64_t off);
int vfile_pwrite(const struct vfile *f, const void *buf, size_t len, uint64_t off);
/* Make [off, off+len) read as zeros (BLKZEROOUT on devices where it works, else zero writes). */
int vfile_zero(const struct vfile *f, uint64_t off, uint64_t len);
int vfile_sync(const struct vfile *f);
#endif
