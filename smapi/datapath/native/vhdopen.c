/* Opening a chain: footers, headers, BATs and batmaps read and checked the way smapi.vhd does. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhdchain.h"
#include "vhdio.h"

static int fail(char *err, size_t len, const char *path, const char *fmt, ...) {
  va_list ap;
  int n = snprintf(err, len, "%s: ", path);
  va_start(ap, fmt);
  if (n >= 0 && (size_t)n < len) vsnprintf(err + n, len - n, fmt, ap);
  va_end(ap);
  return -1;
}

/* The primary footer at EOF-512; a dynamic/differencing disk falls back to its backup at 0 (a primary overwritten
 * by an allocation in flight is normal). */
static int read_footer(struct vimg *im, const char *path, char *err, size_t errlen) {
  uint8_t raw[VHD_FOOTER_SIZE];
  const char *why = NULL, *why_backup = NULL;
  if (im->file_size < VHD_FOOTER_SIZE) return fail(err, errlen, path, "file smaller than a VHD footer");
  im->footer_pos = (int64_t)(im->file_size - VHD_FOOTER_SIZE);
  if (vfile_pread(&im->f, raw, VHD_FOOTER_SIZE, im->file_size - VHD_FOOTER_SIZE) == 0 &&
      vhd_parse_footer(raw, &im->footer, &why) == 0)
    return 0;
  im->footer_pos = -1;
  if (vfile_pread(&im->f, raw, VHD_FOOTER_SIZE, 0) == 0 && vhd_parse_footer(raw, &im->footer, &why_backup) == 0 &&
      im->footer.disk_type != VHD_DISK_FIXED)
    return 0;
  return fail(err, errlen, path, "not a usable VHD (%s)", why ? why : "unreadable footer");
}

/* An LV's last sector holds a copy of the footer (the LVHD convention); an LV resized by a process that died before
 * refreshing it ends in stale bytes, possibly another image's footer from reused extents.  As the driver's volume
 * does: a copy whose UUID differs from the backup at 0 is not trusted, and a writable open puts the backup there. */
static int check_lv_tail(struct vimg *im, int writable) {
  uint8_t head[VHD_FOOTER_SIZE];
  struct vhd_footer backup;
  const char *why;
  if (im->footer.disk_type == VHD_DISK_FIXED || vfile_pread(&im->f, head, sizeof head, 0) != 0 ||
      vhd_parse_footer(head, &backup, &why) != 0)
    return 0;
  if (im->footer_pos >= 0 && memcmp(backup.uuid, im->footer.uuid, 16) == 0) return 0;
  im->footer = backup;
  im->footer_pos = -1;
  if (!writable) return 0;
  int r = vfile_pwrite(&im->f, head, sizeof head, im->file_size - VHD_FOOTER_SIZE);
  if (!r) r = vfile_sync(&im->f);
  if (!r) im->footer_pos = (int64_t)(im->file_size - VHD_FOOTER_SIZE);
  return r;
}

static int load_batmap(struct vimg *im, int writable) {
  uint8_t raw[VHD_SECTOR];
  uint64_t off = im->header.table_offset + vhd_bat_bytes(im->entries);
  if (off + VHD_SECTOR > im->file_size || vfile_pread(&im->f, raw, VHD_SECTOR, off) != 0) return 0;
  if (!vhd_parse_batmap_header(raw, im->entries, im->file_size, &im->bmh)) return 0;
  im->bmh_offset = off;
  im->batmap_len = (size_t)im->bmh.batmap_sectors * VHD_SECTOR;
  im->batmap = malloc(im->batmap_len);
  if (!im->batmap) return -ENOMEM;
  if (vfile_pread(&im->f, im->batmap, im->batmap_len, im->bmh.batmap_offset) != 0 ||
      vhd_batmap_checksum(im->batmap, im->batmap_len, im->size, im->block_size) != im->bmh.checksum) {
    if (!writable) { free(im->batmap); im->batmap = NULL; return 0; } /* untrusted: read bitmaps instead */
    memset(im->batmap, 0, im->batmap_len); /* a clear bit is always safe; rewritten at the next flush */
    im->batmap_dirty = 1;
  }
  return 0;
}

static int load_dynamic(struct vimg *im, const char *path, int writable, char *err, size_t errlen) {
  uint8_t raw[VHD_HEADER_SIZE];
  const char *why = NULL;
  if (im->footer.data_offset + VHD_HEADER_SIZE > im->file_size ||
      vfile_pread(&im->f, raw, VHD_HEADER_SIZE, im->footer.data_offset) != 0)
    return fail(err, errlen, path, "dynamic header lies past the end of the file");
  if (vhd_parse_header(raw, &im->footer, im->file_size, &im->header, &why) != 0)
    return fail(err, errlen, path, "%s", why);
  im->has_header = 1;
  im->entries = im->header.max_entries;
  im->block_size = im->header.block_size;
  im->bitmap_bytes = vhd_bitmap_bytes(im->block_size);
  size_t nbat = (size_t)im->entries * 4;
  uint8_t *rawbat = malloc(nbat ? nbat : 1);
  im->bat = malloc(sizeof(uint32_t) * (im->entries ? im->entries : 1));
  im->bitmaps = calloc(im->entries ? im->entries : 1, sizeof(uint8_t *));
  if (!rawbat || !im->bat || !im->bitmaps) { free(rawbat); return fail(err, errlen, path, "out of memory"); }
  if (vfile_pread(&im->f, rawbat, nbat, im->header.table_offset) != 0) {
    free(rawbat);
    return fail(err, errlen, path, "cannot read the BAT");
  }
  uint64_t last_end = 0;
  for (uint32_t i = 0; i < im->entries; i++) {
    im->bat[i] = vhd_be32(rawbat + 4 * (size_t)i);
    if (im->bat[i] != VHD_BAT_UNUSED) {
      uint64_t end = (uint64_t)im->bat[i] * VHD_SECTOR + im->bitmap_bytes + im->block_size;
      if (end > last_end) last_end = end;
    }
  }
  free(rawbat);
  if (load_batmap(im, writable) != 0) return fail(err, errlen, path, "out of memory");
  uint64_t meta_end = vhd_end_of_metadata(&im->footer, &im->header, im->batmap ? &im->bmh : NULL, im->bmh_offset,
                                          im->file_size);
  im->eod = last_end > meta_end ? last_end : meta_end;
  return 0;
}

static int open_image(struct vimg *im, const struct vspec *spec, int writable, int direct, char *err,
                      size_t errlen) {
  const char *path = spec->path;
  int r = vfile_open(&im->f, spec, (writable ? O_RDWR : O_RDONLY) | (direct ? O_DIRECT : 0), err, errlen);
  if (r) return -1;
  if ((r = vfile_size(&im->f, &im->file_size)) != 0) return fail(err, errlen, path, "%s", strerror(-r));
  if (writable && direct && !im->f.mapped) {
    im->meta_fd = open(path, O_RDWR | O_CLOEXEC);
    if (im->meta_fd < 0) return fail(err, errlen, path, "%s", strerror(errno));
  }
  if (read_footer(im, path, err, errlen) != 0) return -1;
  if (im->f.mapped && (r = check_lv_tail(im, writable)) != 0) return fail(err, errlen, path, "%s", strerror(-r));
  im->size = im->footer.current_size;
  if (im->footer.disk_type == VHD_DISK_FIXED) {
    if (im->size > im->file_size - VHD_FOOTER_SIZE) return fail(err, errlen, path, "fixed disk shorter than its size");
    im->block_size = VHD_MAX_BLOCK_SIZE;
    return 0;
  }
  if (load_dynamic(im, path, writable, err, errlen) != 0) return -1;
  if (writable) {
    im->state = calloc(im->entries ? im->entries : 1, 1);
    if (!im->state) return fail(err, errlen, path, "out of memory");
    /* As smapi.vhd refuses writes into such a block: it would overwrite metadata (a corrupt BAT entry). */
    for (uint32_t b = 0; b < im->entries; b++)
      if (im->bat[b] != VHD_BAT_UNUSED &&
          vhd_block_overlaps_metadata((uint64_t)im->bat[b] * VHD_SECTOR, im->bitmap_bytes + (uint64_t)im->block_size,
                                      &im->footer, &im->header, im->batmap ? &im->bmh : NULL, im->bmh_offset))
        im->state[b] = VIMG_BLOCK_BAD;
  }
  return 0;
}

int vchain_open(struct vchain *c, const struct vspec *specs, int n, int writable, int direct, char *err,
                size_t errlen) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < VHD_MAX_CHAIN_DEPTH; i++) c->img[i].f.fd = c->img[i].meta_fd = -1;
  if (n < 1 || n > VHD_MAX_CHAIN_DEPTH) return fail(err, errlen, "chain", "depth %d outside 1..%d", n, VHD_MAX_CHAIN_DEPTH);
  c->n = n;
  c->writable = writable;
  pthread_mutex_init(&c->meta, NULL);
  pthread_mutex_init(&c->flush_mu, NULL);
  pthread_mutex_init(&c->rmw_mu, NULL);
  pthread_cond_init(&c->alloc_cv, NULL);
  for (int i = 0; i < n; i++) {
    if (open_image(&c->img[i], &specs[i], writable && i == 0, direct, err, errlen) != 0) return -1;
    int diff = c->img[i].footer.disk_type == VHD_DISK_DIFF;
    if (diff != (i < n - 1))
      return fail(err, errlen, specs[i].path, diff ? "differencing disk without its parent" : "not a differencing disk, "
                  "but a parent follows it in the chain");
    if (i > 0 && memcmp(c->img[i - 1].header.parent_uuid, c->img[i].footer.uuid, 16) != 0)
      return fail(err, errlen, specs[i - 1].path, "parent UUID does not match %s", specs[i].path);
  }
  c->size = c->img[0].size;
  if (vchain_index_parents(c) != 0) return fail(err, errlen, "chain", "out of memory");
  return 0;
}

int vchain_close(struct vchain *c) {
  int r = 0;
  if (c->writable && c->n > 0) r = vchain_flush(c);
  for (int i = 0; i < c->n; i++) {
    struct vimg *im = &c->img[i];
    vfile_close(&im->f);
    if (im->meta_fd >= 0) close(im->meta_fd);
    if (im->bitmaps)
      for (uint32_t b = 0; b < im->entries; b++) free(im->bitmaps[b]);
    free(im->bitmaps);
    free(im->bat);
    free(im->batmap);
    free(im->state);
    free(im->dirty);
  }
  free(c->below);
  c->below = NULL;
  c->n = 0;
  return r;
}
