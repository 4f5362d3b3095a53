/* Making writes durable: smapi.vhd's commit order (VhdImage.commit), safe against a crash at any point.
 *   1. barrier: the data (and new blocks' bitmaps) of every write completed before the flush;
 *   2. changed sector bitmaps and BAT sectors, barrier;
 *   3. batmap bits of blocks that are now full, primary footer at the new end of data, barrier. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdchain.h"
#include "vhdio.h"

struct pending {
  uint32_t blk, entry;
  uint8_t flags, full;
  uint8_t *bitmap; /* a copy, when the bitmap itself changed */
};

static int all_set(const uint8_t *bm, uint32_t sectors) {
  for (uint32_t s = 0; s < sectors; s++)
    if (!((__atomic_load_n(&bm[s >> 3], __ATOMIC_RELAXED) >> (7 - (s & 7))) & 1)) return 0;
  return 1;
}

/* Take the dirty list under the lock: what is in it was written (data included) before this flush began. */
static int snapshot(struct vchain *c, struct pending **out, size_t *nout) {
  struct vimg *im = &c->img[0];
  int r = 0;
  pthread_mutex_lock(&c->meta);
  size_t n = im->ndirty;
  struct pending *p = calloc(n ? n : 1, sizeof *p);
  if (!p) { r = -ENOMEM; goto out; }
  for (size_t i = 0; i < n; i++) {
    uint32_t blk = im->dirty[i];
    uint8_t *bm = im->bitmaps[blk];
    p[i].blk = blk;
    p[i].entry = im->bat[blk];
    p[i].flags = im->state[blk];
    p[i].full = bm && all_set(bm, im->block_size / VHD_SECTOR);
    if ((p[i].flags & VIMG_BM_DIRTY) && bm) {
      p[i].bitmap = malloc(im->bitmap_bytes);
      if (!p[i].bitmap) { r = -ENOMEM; goto out; }
      memcpy(p[i].bitmap, bm, im->bitmap_bytes);
    }
  }
  for (size_t i = 0; i < n; i++) im->state[p[i].blk] &= (uint8_t)~(VIMG_BAT_DIRTY | VIMG_BM_DIRTY | VIMG_LISTED);
  im->ndirty = 0;
  *out = p;
  *nout = n;
out:
  if (r && p) { for (size_t i = 0; i < n; i++) free(p[i].bitmap); free(p); }
  pthread_mutex_unlock(&c->meta);
  return r;
}

/* The 512-byte BAT sectors holding the changed entries (128 entries each), written whole. */
static int write_bat_sectors(struct vimg *im, const struct pending *p, size_t n) {
  uint8_t sec[VHD_SECTOR];
  const uint32_t per = VHD_SECTOR / 4;
  uint32_t done = UINT32_MAX;
  for (size_t i = 0; i < n; i++) {
    if (!(p[i].flags & VIMG_BAT_DIRTY)) continue;
    uint32_t s = p[i].blk / per;
    if (s == done) continue;
    memset(sec, 0xFF, sizeof sec);
    for (uint32_t k = 0; k < per && s * per + k < im->entries; k++)
      vhd_put_be32(sec + 4 * k, __atomic_load_n(&im->bat[s * per + k], __ATOMIC_ACQUIRE));
    int r = vfile_pwrite(&im->f, sec, VHD_SECTOR, im->header.table_offset + (uint64_t)s * VHD_SECTOR);
    if (r) return r;
    done = s; /* the list is in allocation order: neighbours often share a sector */
  }
  return 0;
}

static int write_batmap(struct vimg *im, const struct pending *p, size_t n, int *wrote) {
  if (!im->batmap) return 0;
  int changed = im->batmap_dirty;
  for (size_t i = 0; i < n; i++) {
    uint32_t b = p[i].blk;
    if (p[i].full && (b >> 3) < im->batmap_len && !(im->batmap[b >> 3] & (0x80 >> (b & 7)))) {
      __atomic_fetch_or(&im->batmap[b >> 3], (uint8_t)(0x80 >> (b & 7)), __ATOMIC_RELEASE);
      changed = 1;
    }
  }
  if (!changed) return 0;
  int r = vfile_pwrite(&im->f, im->batmap, im->batmap_len, im->bmh.batmap_offset);
  if (r) return r;
  vhd_put_be32(im->bmh.raw + 24, vhd_batmap_checksum(im->batmap, im->batmap_len, im->size, im->block_size));
  r = vfile_pwrite(&im->f, im->bmh.raw, VHD_SECTOR, im->bmh_offset);
  if (r) return r;
  im->batmap_dirty = 0;
  *wrote = 1;
  return 0;
}

/* Footer at the end of data, and nothing after it (a torn allocation's tail or an old footer).  A mapped image (LV)
 * keeps its size and the footer copy in its last sector; the footer at the end of data is what smapi.vhd writes
 * there too (the volume's "file" ends after it until the next allocation). */
static int write_footer(struct vchain *c, int *wrote) {
  struct vimg *im = &c->img[0];
  int r = 0;
  pthread_mutex_lock(&c->meta);
  if (im->footer_pos != (int64_t)im->eod) {
    r = vfile_pwrite(&im->f, im->footer.raw, VHD_FOOTER_SIZE, im->eod);
    if (!r && !im->f.mapped && im->file_size > im->eod + VHD_FOOTER_SIZE &&
        ftruncate(im->f.fd, (off_t)(im->eod + VHD_FOOTER_SIZE)))
      r = -errno;
    if (!r) {
      if (!im->f.mapped) im->file_size = im->eod + VHD_FOOTER_SIZE;
      im->footer_pos = (int64_t)im->eod;
      *wrote = 1;
    }
  }
  pthread_mutex_unlock(&c->meta);
  return r;
}

/* A failed commit leaves its blocks dirty, so the next flush (or the close) tries again. */
static void requeue(struct vchain *c, const struct pending *p, size_t n) {
  pthread_mutex_lock(&c->meta);
  for (size_t i = 0; i < n; i++) vimg_note_dirty(&c->img[0], p[i].blk, p[i].flags & (VIMG_BAT_DIRTY | VIMG_BM_DIRTY));
  __atomic_store_n(&c->unsynced, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&c->meta);
}

static int commit(struct vchain *c) {
  struct vimg *im = &c->img[0];
  struct pending *p = NULL;
  size_t n = 0;
  int r = snapshot(c, &p, &n), tail = 0;
  if (r) return r;
  if (__atomic_exchange_n(&c->unsynced, 0, __ATOMIC_ACQ_REL) || n) r = vfile_sync(&im->f);
  for (size_t i = 0; !r && i < n; i++)
    if (p[i].bitmap) r = vfile_pwrite(&im->f, p[i].bitmap, im->bitmap_bytes, (uint64_t)p[i].entry * VHD_SECTOR);
  if (!r) r = write_bat_sectors(im, p, n);
  if (!r && n) r = vfile_sync(&im->f); /* bitmaps and BAT before the batmap may claim "full" */
  if (!r) r = write_batmap(im, p, n, &tail);
  if (!r) r = write_footer(c, &tail);
  if (!r && tail) r = vfile_sync(&im->f);
  if (r) requeue(c, p, n);
  for (size_t i = 0; i < n; i++) free(p[i].bitmap);
  free(p);
  return r;
}

int vchain_flush(struct vchain *c) {
  if (!c->writable) return 0;
  struct vimg *im = &c->img[0];
  pthread_mutex_lock(&c->flush_mu);
  int r;
  if (!im->has_header)
    r = __atomic_exchange_n(&c->unsynced, 0, __ATOMIC_ACQ_REL) ? vfile_sync(&im->f) : 0;
  else
    r = commit(c);
  pthread_mutex_unlock(&c->flush_mu);
  return r;
}
