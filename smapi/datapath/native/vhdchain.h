/* A VHD chain (leaf first) served as one raw disk: concurrent reads and writes, crash-safe block allocation.
 *
 * Locking: `meta` guards the leaf's allocation state (end of data, footer position, dirty lists, in-flight
 * allocations); it is never held across data I/O.  BAT entries and bitmap bytes are read without it (atomic loads)
 * and published with release stores after the data they describe is written.  Only allocations of the same block
 * wait for each other (`alloc_cv`); `flush_mu` orders commits.  Functions return 0 or a negative errno. */
#ifndef SMAPI_VHDCHAIN_H
#define SMAPI_VHDCHAIN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vhdfmt.h"
#include "vhdio.h"

/* Per-block state flags of the leaf (struct vimg.state). */
enum {
  VIMG_BUSY = 1,       /* an allocation of this block is in flight */
  VIMG_BAT_DIRTY = 2,  /* its BAT entry is not on disk yet */
  VIMG_BM_DIRTY = 4,   /* its sector bitmap changed since it was written */
  VIMG_LISTED = 8,     /* it is in the dirty list */
  VIMG_BLOCK_BAD = 16, /* it overlaps metadata: writes to it fail with EIO */
};

struct vimg {
  struct vfile f;
  /* Footer moves and tail zeroing of a plain leaf opened O_DIRECT go through this buffered descriptor of the same
   * file: they land in the page cache instead of waiting for the device inside the allocation lock (the next
   * direct write over that page, and the commit's fdatasync, write it back).  Otherwise -1: f is used. */
  int meta_fd;
  int has_header; /* 0 for a fixed disk */
  struct vhd_footer footer;
  struct vhd_header header;
  uint64_t size, file_size;
  uint32_t entries, block_size, bitmap_bytes;
  uint32_t *bat;      /* host order */
  uint8_t **bitmaps;  /* per block, loaded on first use */
  uint8_t *batmap;    /* NULL when absent or untrusted; bits mean "block full" and match the disk */
  size_t batmap_len;
  int batmap_dirty;
  struct vhd_batmap_header bmh;
  uint64_t bmh_offset;
  /* leaf only */
  uint64_t eod;       /* where the next block goes */
  int64_t footer_pos; /* offset of a valid primary footer, -1 if none */
  uint8_t *state;     /* per block: ST_* flags */
  uint32_t *dirty;    /* blocks with ST_BAT_DIRTY or ST_BM_DIRTY */
  size_t ndirty, capdirty;
};

/* vchain.below[blk]: VCHAIN_WALK, or the first parent level (1..n-1) mapping leaf-sized block blk, n if none does
 * (it reads as zeros).  Parents never change while served, so a read the leaf cannot satisfy goes straight to its
 * owner instead of testing the BAT of every level in between (at depth 30, most of the resolution work). */
#define VCHAIN_WALK 0xFF

struct vchain {
  int n, writable;
  uint64_t size;
  uint8_t *below;  /* NULL: walk every level (a single image, or parents of another geometry) */
  uint64_t nbelow; /* blocks it covers */
  struct vimg img[VHD_MAX_CHAIN_DEPTH];
  pthread_mutex_t meta, flush_mu, rmw_mu;
  pthread_cond_t alloc_cv;
  int unsynced; /* a write since the last barrier (atomic) */
};

/* Record that block `blk` of the leaf has metadata to commit (flag: VIMG_BAT_DIRTY / VIMG_BM_DIRTY); `meta` held. */
int vimg_note_dirty(struct vimg *im, uint64_t blk, uint8_t flag);

/* specs[0] is the leaf, specs[n-1] the base.  On failure returns -1 with a message in err.
 * direct: open every file with O_DIRECT (no page cache on the server side).
 * A mapped image (an LV) keeps its size: the primary footer is the copy in its last sector, a new block must end
 * before it (ENOSPC otherwise), and the parts of a new block no write covers are zeroed (its extents held other
 * data before).  That is what smapi.vhd does on an LV through the driver's volume. */
int vchain_open(struct vchain *c, const struct vspec *specs, int n, int writable, int direct, char *err,
                size_t errlen);
/* Fill c->below (see above); called by vchain_open once every level is open.  0 or -ENOMEM. */
int vchain_index_parents(struct vchain *c);
int vchain_read(struct vchain *c, void *buf, uint64_t len, uint64_t off);
int vchain_write(struct vchain *c, const void *buf, uint64_t len, uint64_t off);
int vchain_flush(struct vchain *c);
/* 1 if some image of the chain maps a block in [off, off+len) (block granularity), else 0. */
int vchain_allocated(struct vchain *c, uint64_t off, uint64_t len);
uint32_t vchain_block_size(const struct vchain *c);
int vchain_close(struct vchain *c);

#endif
