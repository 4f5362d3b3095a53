/* Trim of a VHD leaf or raw file on a plain file system: hole punching over whole 4 KiB units (see vhdtrim.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>

#include "vhdtrim.h"

/* Set once the file system refused: later trims return at once (nothing can be released). */
static int punch_unsupported;

/* Punch the whole units inside file range [lo, hi). */
static int punch(int fd, uint64_t lo, uint64_t hi) {
  uint64_t a = (lo + VHD_TRIM_UNIT - 1) / VHD_TRIM_UNIT * VHD_TRIM_UNIT, b = hi / VHD_TRIM_UNIT * VHD_TRIM_UNIT;
  if (a >= b || __atomic_load_n(&punch_unsupported, __ATOMIC_RELAXED)) return 0;
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a)) == 0) return 0;
  if (errno == EOPNOTSUPP || errno == ENOSYS) {
    __atomic_store_n(&punch_unsupported, 1, __ATOMIC_RELAXED);
    return 0;
  }
  return -errno;
}

int vfile_trim(const struct vfile *f, uint64_t len, uint64_t off) {
  uint64_t size;
  if (f->mapped) return 0;
  int r = vfile_size(f, &size);
  if (r) return r;
  if (off >= size) return 0;
  return punch(f->fd, off, len < size - off ? off + len : size);
}

int vchain_can_trim(const struct vchain *c) { return c->writable && c->n > 0 && !c->img[0].f.mapped; }

int vchain_trim(struct vchain *c, uint64_t len, uint64_t off) {
  struct vimg *im = &c->img[0];
  if (!c->writable) return -EROFS;
  if (off > c->size || len > c->size - off) return -EINVAL;
  if (!vchain_can_trim(c) || len == 0) return 0;
  int r = 0;
  if (!im->has_header) {
    r = punch(im->f.fd, off, off + len); /* a fixed disk's data ends at its size, where the footer starts */
  } else {
    uint64_t bs = im->block_size, end = off + len;
    pthread_mutex_lock(&c->meta); /* the file's size moves with allocations */
    uint64_t file_size = im->file_size;
    pthread_mutex_unlock(&c->meta);
    for (uint64_t pos = off; !r && pos < end;) {
      uint64_t blk = pos / bs, next = (blk + 1) * bs < end ? (blk + 1) * bs : end;
      /* A published entry: the block's data is on disk (allocation publishes it last), so there is no race with
       * its allocation.  A block overlapping metadata (state VIMG_BLOCK_BAD) or past the file's end is left alone. */
      uint32_t e = blk < im->entries ? __atomic_load_n(&im->bat[blk], __ATOMIC_ACQUIRE) : VHD_BAT_UNUSED;
      uint64_t data = (uint64_t)e * VHD_SECTOR + im->bitmap_bytes;
      if (e != VHD_BAT_UNUSED && !(__atomic_load_n(&im->state[blk], __ATOMIC_RELAXED) & VIMG_BLOCK_BAD) &&
          data + bs <= file_size)
        r = punch(im->f.fd, data + pos % bs, data + pos % bs + (next - pos));
      pos = next;
    }
  }
  /* The next flush syncs the file, so the release is durable (NBD promises nothing; the space is the point). */
  __atomic_store_n(&c->unsynced, 1, __ATOMIC_RELEASE);
  return r;
}
