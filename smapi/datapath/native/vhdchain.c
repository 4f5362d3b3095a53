/* Reads, writes and commits of a VHD chain (see vhdchain.h for the locking rules).
 *
 * Allocation order is smapi.vhd's: bitmap and data go to space past the end of data that nothing references; the
 * BAT entry is published in memory afterwards.  A flush then makes it durable in blktap order: barrier, bitmaps and
 * BAT sectors, barrier, batmap and primary footer at the new end, barrier. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdchain.h"
#include "vhdio.h"

static uint32_t bat_get(struct vimg *im, uint64_t blk) {
  return blk < im->entries ? __atomic_load_n(&im->bat[blk], __ATOMIC_ACQUIRE) : VHD_BAT_UNUSED;
}

static int bm_get(const uint8_t *bm, uint64_t sec) {
  return (__atomic_load_n(&bm[sec >> 3], __ATOMIC_RELAXED) >> (7 - (sec & 7))) & 1;
}

/* The block's sector bitmap, read on first use and shared by every thread afterwards. */
static int bitmap_of(struct vimg *im, uint64_t blk, uint32_t entry, uint8_t **out) {
  uint8_t *bm = __atomic_load_n(&im->bitmaps[blk], __ATOMIC_ACQUIRE);
  if (!bm) {
    uint8_t *fresh = malloc(im->bitmap_bytes);
    if (!fresh) return -ENOMEM;
    int r = vfile_pread(&im->f, fresh, im->bitmap_bytes, (uint64_t)entry * VHD_SECTOR);
    if (r) { free(fresh); return r; }
    uint8_t *expected = NULL;
    if (__atomic_compare_exchange_n(&im->bitmaps[blk], &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      bm = fresh;
    else { free(fresh); bm = expected; }
  }
  *out = bm;
  return 0;
}

static int batmap_full(struct vimg *im, uint64_t blk) {
  return im->batmap && (blk >> 3) < im->batmap_len && bm_get(im->batmap, blk);
}

static int read_level(struct vchain *c, int lvl, uint8_t *buf, uint64_t len, uint64_t off);
static int first_parent(const struct vchain *c, uint64_t off);

/* [off, off+len) inside one block of `im`, which has it allocated: runs of present sectors come from here, the
 * rest from the level below. */
static int read_mapped(struct vchain *c, int lvl, uint8_t *buf, uint64_t len, uint64_t off, uint64_t blk,
                       uint32_t entry) {
  struct vimg *im = &c->img[lvl];
  uint64_t data = (uint64_t)entry * VHD_SECTOR + im->bitmap_bytes, bs = im->block_size;
  if (batmap_full(im, blk)) return vfile_pread(&im->f, buf, len, data + off % bs);
  uint8_t *bm;
  int r = bitmap_of(im, blk, entry, &bm);
  if (r) return r;
  uint64_t end = off + len, pos = off;
  while (pos < end) {
    uint64_t sec = (pos % bs) / VHD_SECTOR, last = (end - 1) % bs / VHD_SECTOR;
    int bit = bm_get(bm, sec);
    uint64_t s = sec + 1;
    while (s <= last) {
      if ((s & 7) == 0 && s + 8 <= last + 1) {
        uint8_t byte = __atomic_load_n(&bm[s >> 3], __ATOMIC_RELAXED);
        if (byte == (bit ? 0xFF : 0x00)) { s += 8; continue; }
      }
      if (bm_get(bm, s) != bit) break;
      s++;
    }
    uint64_t run_end = pos - pos % bs + s * VHD_SECTOR;
    if (run_end > end) run_end = end;
    r = bit ? vfile_pread(&im->f, buf + (pos - off), run_end - pos, data + pos % bs)
            : read_level(c, lvl == 0 ? first_parent(c, pos) : lvl + 1, buf + (pos - off), run_end - pos, pos);
    if (r) return r;
    pos = run_end;
  }
  return 0;
}

/* The level a read below the leaf starts at: the block's owner when the index knows it, else the next level. */
static int first_parent(const struct vchain *c, uint64_t off) {
  uint64_t blk = off / c->img[0].block_size;
  uint8_t o = c->below && blk < c->nbelow ? c->below[blk] : VCHAIN_WALK;
  return o == VCHAIN_WALK ? 1 : o;
}

int vchain_index_parents(struct vchain *c) {
  struct vimg *leaf = &c->img[0];
  if (c->n < 2 || !leaf->has_header) return 0;
  uint64_t bs = leaf->block_size, nblk = (c->size + bs - 1) / bs;
  uint8_t *below = malloc(nblk ? nblk : 1);
  if (!below) return -ENOMEM;
  for (uint64_t b = 0; b < nblk; b++) {
    uint8_t o = (uint8_t)c->n; /* no level maps it: zeros */
    for (int lvl = 1; lvl < c->n; lvl++) {
      const struct vimg *im = &c->img[lvl];
      if (b * bs >= im->size) break; /* read_level gives zeros from here down */
      if ((b + 1) * bs > im->size || (im->has_header && im->block_size != bs)) { o = VCHAIN_WALK; break; }
      if (!im->has_header || bat_get((struct vimg *)im, b) != VHD_BAT_UNUSED) { o = (uint8_t)lvl; break; }
    }
    below[b] = o;
  }
  c->below = below;
  c->nbelow = nblk;
  return 0;
}

static int read_level(struct vchain *c, int lvl, uint8_t *buf, uint64_t len, uint64_t off) {
  while (len) {
    if (lvl >= c->n || off >= c->img[lvl].size) { memset(buf, 0, len); return 0; }
    struct vimg *im = &c->img[lvl];
    if (!im->has_header) {
      uint64_t take = len < im->size - off ? len : im->size - off;
      int r = vfile_pread(&im->f, buf, take, off);
      if (r) return r;
      buf += take; off += take; len -= take;
      continue;
    }
    uint64_t bs = im->block_size, blk = off / bs, take = bs - off % bs;
    if (take > len) take = len;
    uint32_t e = bat_get(im, blk);
    int next = lvl == 0 ? first_parent(c, off) : lvl + 1;
    int r = e == VHD_BAT_UNUSED ? read_level(c, next, buf, take, off) : read_mapped(c, lvl, buf, take, off, blk, e);
    if (r) return r;
    buf += take; off += take; len -= take;
  }
  return 0;
}

int vchain_read(struct vchain *c, void *buf, uint64_t len, uint64_t off) {
  if (off > c->size || len > c->size - off) return -EINVAL;
  return read_level(c, 0, buf, len, off);
}

/* ------------------------------------------------------------------------------------------------- writes */
int vimg_note_dirty(struct vimg *im, uint64_t blk, uint8_t flag) {
  im->state[blk] |= flag;
  if (im->state[blk] & VIMG_LISTED) return 0;
  if (im->ndirty == im->capdirty) {
    size_t cap = im->capdirty ? im->capdirty * 2 : 64;
    uint32_t *d = realloc(im->dirty, cap * sizeof *d);
    if (!d) return -ENOMEM;
    im->dirty = d; im->capdirty = cap;
  }
  im->dirty[im->ndirty++] = (uint32_t)blk;
  im->state[blk] |= VIMG_LISTED;
  return 0;
}

static void set_bits(uint8_t *bm, uint64_t s0, uint64_t s1) {
  for (uint64_t s = s0; s < s1; s++) __atomic_fetch_or(&bm[s >> 3], (uint8_t)(0x80 >> (s & 7)), __ATOMIC_RELAXED);
}

/* Mark sectors [s0, s1) present after their data is written; the bitmap reaches the disk at the next flush. */
static int mark_present(struct vchain *c, uint64_t blk, uint32_t entry, uint64_t s0, uint64_t s1) {
  struct vimg *im = &c->img[0];
  if (batmap_full(im, blk)) return 0;
  uint8_t *bm;
  int r = bitmap_of(im, blk, entry, &bm);
  if (r) return r;
  uint64_t s = s0;
  while (s < s1 && bm_get(bm, s)) s++;
  if (s == s1) return 0;
  pthread_mutex_lock(&c->meta);
  set_bits(bm, s0, s1);
  r = vimg_note_dirty(im, blk, VIMG_BM_DIRTY);
  pthread_mutex_unlock(&c->meta);
  return r;
}

/* Footer moves and zeros past the end of data: through the buffered descriptor when there is one (vhdchain.h). */
static int meta_write(struct vimg *im, const void *buf, size_t len, uint64_t off) {
  return im->meta_fd >= 0 ? vhd_pwrite_full(im->meta_fd, buf, len, off) : vfile_pwrite(&im->f, buf, len, off);
}

/* Zeros over [from, to): a tail a crash left past the end of data, which a new block must not show. */
static int zero_range(struct vimg *im, uint64_t from, uint64_t to) {
  static const uint8_t zeros[64 * 1024] __attribute__((aligned(4096)));
  while (from < to) {
    uint64_t n = to - from < sizeof zeros ? to - from : sizeof zeros;
    int r = meta_write(im, zeros, n, from);
    if (r) return r;
    from += n;
  }
  return 0;
}

/* A plain file: the primary footer moves to the block's end before anything else (see reserve_block). */
static int move_footer(struct vimg *im, uint64_t end) {
  int r = 0;
  if (im->file_size > im->eod && im->footer_pos != (int64_t)im->eod) {
    /* not just our footer past the end of data: a torn tail from a crash */
    r = zero_range(im, im->eod, im->file_size < end ? im->file_size : end);
    if (r) return r;
  }
  r = meta_write(im, im->footer.raw, VHD_FOOTER_SIZE, end);
  if (r) return r;
  if (im->file_size > end + VHD_FOOTER_SIZE && ftruncate(im->f.fd, (off_t)(end + VHD_FOOTER_SIZE)) != 0) return -errno;
  im->file_size = end + VHD_FOOTER_SIZE;
  im->footer_pos = (int64_t)end;
  return 0;
}

/* Reserve room for block `blk` past the end of data.  Returns 1 if another request allocated it meanwhile.
 *
 * A plain file: the primary footer moves to the new end first, so the file has a valid one at EOF at every moment
 * (a process killed mid-allocation leaves an image `check` accepts); the old footer lies in the new block's gap or
 * bitmap, which the bitmap write covers.  The block's own area past the old end is a hole, so it reads as zeros.
 * A mapped image (LV): the footer copy in its last sector stays where it is; the block must end before it. */
static int reserve_block(struct vchain *c, uint64_t blk, uint64_t *start_out) {
  struct vimg *im = &c->img[0];
  int r = 0;
  pthread_mutex_lock(&c->meta);
  while (im->state[blk] & VIMG_BUSY) pthread_cond_wait(&c->alloc_cv, &c->meta);
  if (im->bat[blk] != VHD_BAT_UNUSED) { pthread_mutex_unlock(&c->meta); return 1; }
  uint64_t start = vhd_aligned_block_sector(im->eod, im->bitmap_bytes / VHD_SECTOR);
  uint64_t end = start * VHD_SECTOR + im->bitmap_bytes + im->block_size;
  if (start >= VHD_BAT_UNUSED || (im->f.mapped && end + VHD_FOOTER_SIZE > im->file_size)) {
    r = -ENOSPC; /* an LV is grown by the driver (inflated before it is served), never here */
    goto out;
  }
  if (!im->f.mapped && (r = move_footer(im, end)) != 0) goto out;
  im->eod = end;
  im->state[blk] |= VIMG_BUSY;
  *start_out = start;
out:
  pthread_mutex_unlock(&c->meta);
  return r;
}

/* A new block's bitmap and data: one write when the data is small and near the bitmap (a synchronous device write
 * saved under O_DIRECT), else two.  The head gap [data, data+inb) then holds explicit zeros instead of a hole.
 * On a mapped image the space held other data before: every byte of the block no write covers is zeroed. */
#define COMBINE_MAX (256u * 1024)
static int write_new_block(struct vimg *im, uint64_t off, const uint8_t *bm, uint64_t inb, const uint8_t *p,
                           uint64_t len) {
  uint64_t total = im->bitmap_bytes + inb + len, data = off + im->bitmap_bytes;
  void *one = NULL;
  int r;
  /* A direct leaf on a file system: the whole block's space is reserved now (unwritten extents, reading as zeros).
   * Otherwise every later direct write into a part of the block still a hole allocates on its own, and ext4 (like
   * most) serialises such writes on the inode lock and journal; overwrites of reserved space run concurrently.
   * Best effort: without fallocate the writes are only slower. */
  if (!im->f.mapped && im->meta_fd >= 0)
    (void)fallocate(im->f.fd, 0, (off_t)off, (off_t)(im->bitmap_bytes + im->block_size));
  if (total <= COMBINE_MAX && posix_memalign(&one, 4096, total) == 0) {
    memcpy(one, bm, im->bitmap_bytes);
    memset((uint8_t *)one + im->bitmap_bytes, 0, inb);
    memcpy((uint8_t *)one + im->bitmap_bytes + inb, p, len);
    r = vfile_pwrite(&im->f, one, total, off);
    free(one);
  } else {
    r = vfile_pwrite(&im->f, bm, im->bitmap_bytes, off);
    if (!r && im->f.mapped && inb) r = vfile_zero(&im->f, data, inb);
    if (!r) r = vfile_pwrite(&im->f, p, len, data + inb);
  }
  if (!r && im->f.mapped && inb + len < im->block_size)
    r = vfile_zero(&im->f, data + inb + len, im->block_size - inb - len);
  return r;
}

static int allocate_block(struct vchain *c, uint64_t blk, uint64_t inb, const uint8_t *p, uint64_t len) {
  struct vimg *im = &c->img[0];
  if (blk >= im->entries) return -EIO;
  uint64_t start = 0;
  int r = reserve_block(c, blk, &start);
  if (r) return r;
  uint8_t *bm = calloc(1, im->bitmap_bytes);
  if (!bm) r = -ENOMEM;
  if (!r) {
    if (im->footer.disk_type == VHD_DISK_DIFF) set_bits(bm, inb / VHD_SECTOR, (inb + len) / VHD_SECTOR);
    else set_bits(bm, 0, im->block_size / VHD_SECTOR); /* a dynamic disk's unwritten sectors are zeros anyway */
    r = write_new_block(im, start * VHD_SECTOR, bm, inb, p, len);
  }
  pthread_mutex_lock(&c->meta);
  if (!r) {
    __atomic_store_n(&im->bitmaps[blk], bm, __ATOMIC_RELEASE);
    __atomic_store_n(&im->bat[blk], (uint32_t)start, __ATOMIC_RELEASE);
    r = vimg_note_dirty(im, blk, VIMG_BAT_DIRTY);
  } else {
    free(bm); /* the reserved space stays unused: nothing points at it */
  }
  im->state[blk] &= (uint8_t)~VIMG_BUSY;
  pthread_cond_broadcast(&c->alloc_cv);
  pthread_mutex_unlock(&c->meta);
  return r;
}

static int write_block(struct vchain *c, uint64_t blk, uint64_t inb, const uint8_t *p, uint64_t len) {
  struct vimg *im = &c->img[0];
  uint32_t e = bat_get(im, blk);
  if (__atomic_load_n(&im->state[blk], __ATOMIC_RELAXED) & VIMG_BLOCK_BAD) return -EIO;
  if (e == VHD_BAT_UNUSED) {
    int r = allocate_block(c, blk, inb, p, len);
    if (r <= 0) return r;
    e = bat_get(im, blk); /* allocated by a concurrent request: write in place */
  }
  int r = vfile_pwrite(&im->f, p, len, (uint64_t)e * VHD_SECTOR + im->bitmap_bytes + inb);
  if (r) return r;
  return mark_present(c, blk, e, inb / VHD_SECTOR, (inb + len) / VHD_SECTOR);
}

static int write_aligned(struct vchain *c, const uint8_t *p, uint64_t len, uint64_t off) {
  struct vimg *im = &c->img[0];
  __atomic_store_n(&c->unsynced, 1, __ATOMIC_RELEASE);
  if (!im->has_header) return vfile_pwrite(&im->f, p, len, off);
  uint64_t bs = im->block_size;
  while (len) {
    uint64_t inb = off % bs, take = bs - inb < len ? bs - inb : len;
    int r = write_block(c, off / bs, inb, p, take);
    if (r) return r;
    p += take; off += take; len -= take;
  }
  return 0;
}

/* Partial sectors: read the chain's sectors around the write, merge, write whole sectors.  Rare (clients align);
 * serialised with each other so two of them in one sector do not lose an update. */
static int write_unaligned(struct vchain *c, const uint8_t *p, uint64_t len, uint64_t off) {
  uint64_t a0 = off - off % VHD_SECTOR, a1 = (off + len + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
  if (a1 > c->size) return -EINVAL; /* a virtual size is whole sectors */
  uint8_t *tmp = malloc(a1 - a0);
  if (!tmp) return -ENOMEM;
  pthread_mutex_lock(&c->rmw_mu);
  int r = vchain_read(c, tmp, VHD_SECTOR, a0);
  if (!r && a1 - VHD_SECTOR > a0) r = vchain_read(c, tmp + (a1 - a0 - VHD_SECTOR), VHD_SECTOR, a1 - VHD_SECTOR);
  if (!r) {
    memcpy(tmp + (off - a0), p, len);
    r = write_aligned(c, tmp, a1 - a0, a0);
  }
  pthread_mutex_unlock(&c->rmw_mu);
  free(tmp);
  return r;
}

int vchain_write(struct vchain *c, const void *buf, uint64_t len, uint64_t off) {
  if (!c->writable) return -EROFS;
  if (off > c->size || len > c->size - off) return -EINVAL;
  if (len == 0) return 0;
  if (off % VHD_SECTOR || len % VHD_SECTOR) return write_unaligned(c, buf, len, off);
  return write_aligned(c, buf, len, off);
}

int vchain_allocated(struct vchain *c, uint64_t off, uint64_t len) {
  for (int lvl = 0; lvl < c->n; lvl++) {
    struct vimg *im = &c->img[lvl];
    if (off >= im->size) continue;
    if (!im->has_header) return 1;
    uint64_t end = off + len < im->size ? off + len : im->size;
    for (uint64_t b = off / im->block_size; b * im->block_size < end; b++)
      if (bat_get(im, b) != VHD_BAT_UNUSED) return 1;
  }
  return 0;
}

uint32_t vchain_block_size(const struct vchain *c) { return c->img[0].block_size; }
