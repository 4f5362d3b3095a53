/* VHD on-disk format: constants and metadata parsing (pure functions over byte buffers).
 *
 * The Python library (smapi/vhd) is the reference model; tests/datapath/test_native_constants.py checks that
 * every VHD_* constant below equals its smapi.vhd.constants counterpart.  All integers on disk are big-endian.
 * Nothing here does I/O: the caller reads the bytes, so the parser can be fuzzed on memory alone. */
#ifndef SMAPI_VHDFMT_H
#define SMAPI_VHDFMT_H

#include <stddef.h>
#include <stdint.h>

#define VHD_SECTOR 512
#define VHD_FOOTER_SIZE 512
#define VHD_HEADER_SIZE 1024
#define VHD_FEATURES_RESERVED 0x2
#define VHD_FILE_FORMAT_VERSION 0x00010000u
#define VHD_HEADER_VERSION 0x00010000u
#define VHD_DISK_FIXED 2
#define VHD_DISK_DYNAMIC 3
#define VHD_DISK_DIFF 4
#define VHD_BAT_UNUSED 0xFFFFFFFFu
#define VHD_MIN_BLOCK_SIZE 512
#define VHD_MAX_BLOCK_SIZE (2u * 1024 * 1024)
#define VHD_MAX_VIRTUAL_SIZE (2040ull * 1024 * 1024 * 1024)
#define VHD_MAX_CHAIN_DEPTH 30
#define VHD_DATA_ALIGNMENT 4096
#define VHD_LOCATOR_COUNT 8
#define VHD_FOOTER_COOKIE "conectix"
#define VHD_HEADER_COOKIE "cxsparse"
#define VHD_BATMAP_COOKIE "tdbatmap"

struct vhd_footer {
  uint32_t features, version, disk_type;
  uint64_t data_offset, current_size;
  uint8_t uuid[16];
  uint8_t raw[VHD_FOOTER_SIZE]; /* kept verbatim: the primary footer is rewritten from it */
};

struct vhd_locator {
  uint32_t code, space_bytes;
  uint64_t offset;
};

struct vhd_header {
  uint64_t table_offset;
  uint32_t max_entries, block_size;
  uint8_t parent_uuid[16];
  struct vhd_locator locators[VHD_LOCATOR_COUNT];
};

struct vhd_batmap_header {
  uint64_t batmap_offset;
  uint32_t batmap_sectors, checksum;
  uint8_t raw[VHD_SECTOR];
};

uint32_t vhd_be32(const uint8_t *p);
uint64_t vhd_be64(const uint8_t *p);
void vhd_put_be32(uint8_t *p, uint32_t v);
uint32_t vhd_byte_sum(const uint8_t *p, size_t n);

/* 0 on success, else -1 with a message (static string) in *why. */
int vhd_parse_footer(const uint8_t raw[VHD_FOOTER_SIZE], struct vhd_footer *f, const char **why);
int vhd_parse_header(const uint8_t raw[VHD_HEADER_SIZE], const struct vhd_footer *f, uint64_t file_size,
                     struct vhd_header *h, const char **why);
/* 1: a batmap header we can trust; 0: none (or one to ignore, the safe direction). */
int vhd_parse_batmap_header(const uint8_t raw[VHD_SECTOR], uint32_t max_entries, uint64_t file_size,
                            struct vhd_batmap_header *b);

uint32_t vhd_bitmap_bytes(uint32_t block_size);
uint64_t vhd_bat_bytes(uint32_t entries);
uint32_t vhd_batmap_sectors(uint32_t entries);
uint32_t vhd_batmap_checksum(const uint8_t *batmap, size_t len, uint64_t current_size, uint32_t block_size);
/* First sector >= end_of_data where a block may start so that its data is VHD_DATA_ALIGNMENT aligned. */
uint64_t vhd_aligned_block_sector(uint64_t end_of_data, uint32_t bitmap_sectors);
/* End of header, BAT, batmap and locator payloads (no block may start before it). */
uint64_t vhd_end_of_metadata(const struct vhd_footer *f, const struct vhd_header *h,
                             const struct vhd_batmap_header *b, uint64_t batmap_header_offset, uint64_t file_size);

/* 1 if a block whose bitmap starts at file offset `start` would overlap a metadata structure (footer copy, header,
 * BAT, batmap, locators): writing it would destroy metadata, so such a block is refused. */
int vhd_block_overlaps_metadata(uint64_t start, uint64_t len, const struct vhd_footer *f, const struct vhd_header *h,
                                const struct vhd_batmap_header *b, uint64_t batmap_header_offset);

static inline int vhd_bit(const uint8_t *map, uint64_t i) { return (map[i >> 3] >> (7 - (i & 7))) & 1; }

#endif
