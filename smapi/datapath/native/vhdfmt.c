/* VHD metadata parsing; see vhdfmt.h.  Every check guards a later computation (sizes, offsets, divisions):
 * whatever bytes come in, the results stay inside the file and the arithmetic cannot overflow. */
#include "vhdfmt.h"

#include <string.h>

uint32_t vhd_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t vhd_be64(const uint8_t *p) { return (uint64_t)vhd_be32(p) << 32 | vhd_be32(p + 4); }

void vhd_put_be32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

uint32_t vhd_byte_sum(const uint8_t *p, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i < n; i++) s += p[i];
  return s;
}

static uint32_t checksum_without(const uint8_t *p, size_t n, size_t field) {
  return ~(vhd_byte_sum(p, n) - vhd_byte_sum(p + field, 4));
}

int vhd_parse_footer(const uint8_t raw[VHD_FOOTER_SIZE], struct vhd_footer *f, const char **why) {
  if (memcmp(raw, VHD_FOOTER_COOKIE, 8) != 0) { *why = "no 'conectix' footer cookie"; return -1; }
  if (checksum_without(raw, VHD_FOOTER_SIZE, 64) != vhd_be32(raw + 64)) { *why = "footer checksum mismatch"; return -1; }
  f->features = vhd_be32(raw + 8);
  f->version = vhd_be32(raw + 12);
  f->data_offset = vhd_be64(raw + 16);
  f->current_size = vhd_be64(raw + 48);
  f->disk_type = vhd_be32(raw + 60);
  memcpy(f->uuid, raw + 68, 16);
  memcpy(f->raw, raw, VHD_FOOTER_SIZE);
  if (f->disk_type != VHD_DISK_FIXED && f->disk_type != VHD_DISK_DYNAMIC && f->disk_type != VHD_DISK_DIFF) {
    *why = "unsupported disk type"; return -1;
  }
  if (f->current_size > VHD_MAX_VIRTUAL_SIZE) { *why = "virtual size above 2040 GiB"; return -1; }
  if (f->disk_type != VHD_DISK_FIXED && (f->data_offset % VHD_SECTOR || f->data_offset > (1ull << 40))) {
    *why = "dynamic header offset invalid"; return -1;
  }
  return 0;
}

int vhd_parse_header(const uint8_t raw[VHD_HEADER_SIZE], const struct vhd_footer *f, uint64_t file_size,
                     struct vhd_header *h, const char **why) {
  if (memcmp(raw, VHD_HEADER_COOKIE, 8) != 0) { *why = "no 'cxsparse' header cookie"; return -1; }
  if (checksum_without(raw, VHD_HEADER_SIZE, 36) != vhd_be32(raw + 36)) { *why = "header checksum mismatch"; return -1; }
  h->table_offset = vhd_be64(raw + 16);
  h->max_entries = vhd_be32(raw + 28);
  h->block_size = vhd_be32(raw + 32);
  memcpy(h->parent_uuid, raw + 40, 16);
  uint32_t bs = h->block_size;
  if (bs < VHD_MIN_BLOCK_SIZE || bs > VHD_MAX_BLOCK_SIZE || (bs & (bs - 1))) {
    *why = "block size not a power of two in 512 B..2 MiB"; return -1;
  }
  if ((uint64_t)h->max_entries * bs < f->current_size) { *why = "BAT too small for the virtual size"; return -1; }
  if ((uint64_t)h->max_entries > (VHD_MAX_VIRTUAL_SIZE + bs - 1) / bs) { *why = "BAT larger than 2040 GiB"; return -1; }
  if (vhd_be64(raw + 8) != UINT64_MAX) { *why = "header data offset not all ones"; return -1; }
  if (h->table_offset % VHD_SECTOR || h->table_offset > file_size ||
      vhd_bat_bytes(h->max_entries) > file_size - h->table_offset) {
    *why = "BAT outside the file"; return -1;
  }
  for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
    const uint8_t *e = raw + 576 + 24 * i;
    uint32_t space = vhd_be32(e + 4);
    h->locators[i].code = vhd_be32(e);
    h->locators[i].space_bytes = space < 512 ? space * 512 : space;
    h->locators[i].offset = vhd_be64(e + 16);
  }
  return 0;
}

uint32_t vhd_bitmap_bytes(uint32_t block_size) {
  uint32_t bits = block_size / VHD_SECTOR;
  return ((bits + 7) / 8 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
}

uint64_t vhd_bat_bytes(uint32_t entries) { return ((uint64_t)entries * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR; }

uint32_t vhd_batmap_sectors(uint32_t entries) {
  uint64_t bytes = ((uint64_t)entries + 7) / 8;
  uint64_t secs = (bytes + VHD_SECTOR - 1) / VHD_SECTOR;
  return secs ? (uint32_t)secs : 1;
}

int vhd_parse_batmap_header(const uint8_t raw[VHD_SECTOR], uint32_t max_entries, uint64_t file_size,
                            struct vhd_batmap_header *b) {
  if (memcmp(raw, VHD_BATMAP_COOKIE, 8) != 0) return 0;
  b->batmap_offset = vhd_be64(raw + 8);
  b->batmap_sectors = vhd_be32(raw + 16);
  b->checksum = vhd_be32(raw + 24);
  memcpy(b->raw, raw, VHD_SECTOR);
  uint64_t need = vhd_batmap_sectors(max_entries);
  if (b->batmap_sectors < need || b->batmap_sectors > 2 * need + 8 || b->batmap_offset % VHD_SECTOR ||
      b->batmap_offset > file_size || (uint64_t)b->batmap_sectors * VHD_SECTOR > file_size - b->batmap_offset)
    return 0; /* untrusted: ignored, as smapi.vhd does */
  return 1;
}

uint32_t vhd_batmap_checksum(const uint8_t *batmap, size_t len, uint64_t current_size, uint32_t block_size) {
  uint64_t n = ((current_size / block_size) >> 3);
  n = (n + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
  if (n < VHD_SECTOR) n = VHD_SECTOR;
  if (n > len) n = len;
  return ~vhd_byte_sum(batmap, (size_t)n);
}

uint64_t vhd_aligned_block_sector(uint64_t end_of_data, uint32_t bitmap_sectors) {
  uint64_t sec = (end_of_data + VHD_SECTOR - 1) / VHD_SECTOR;
  uint64_t per = VHD_DATA_ALIGNMENT / VHD_SECTOR;
  return (sec + bitmap_sectors + per - 1) / per * per - bitmap_sectors;
}

static uint64_t max64(uint64_t a, uint64_t b) { return a > b ? a : b; }

uint64_t vhd_end_of_metadata(const struct vhd_footer *f, const struct vhd_header *h,
                             const struct vhd_batmap_header *b, uint64_t batmap_header_offset, uint64_t file_size) {
  uint64_t end = max64(f->data_offset + VHD_HEADER_SIZE, h->table_offset + vhd_bat_bytes(h->max_entries));
  if (b) {
    end = max64(end, batmap_header_offset + VHD_SECTOR);
    end = max64(end, b->batmap_offset + (uint64_t)b->batmap_sectors * VHD_SECTOR);
  }
  for (int i = 0; i < VHD_LOCATOR_COUNT; i++) {
    const struct vhd_locator *l = &h->locators[i];
    if (l->code != 0 && l->offset <= file_size && l->space_bytes <= file_size - l->offset)
      end = max64(end, l->offset + l->space_bytes);
  }
  return end;
}

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

int vhd_block_overlaps_metadata(uint64_t start, uint64_t len, const struct vhd_footer *f, const struct vhd_header *h,
                                const struct vhd_batmap_header *b, uint64_t batmap_header_offset) {
  if (overlaps(start, len, 0, VHD_FOOTER_SIZE) || overlaps(start, len, f->data_offset, VHD_HEADER_SIZE) ||
      overlaps(start, len, h->table_offset, vhd_bat_bytes(h->max_entries)))
    return 1;
  if (b && (overlaps(start, len, batmap_header_offset, VHD_SECTOR) ||
            overlaps(start, len, b->batmap_offset, (uint64_t)b->batmap_sectors * VHD_SECTOR)))
    return 1;
  for (int i = 0; i < VHD_LOCATOR_COUNT; i++)
    if (h->locators[i].code != 0 && overlaps(start, len, h->locators[i].offset, h->locators[i].space_bytes)) return 1;
  return 0;
}
