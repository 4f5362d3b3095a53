/* Trim where VHD allows it: give back the file space of data the leaf holds, without touching any metadata.
 *
 * NBD leaves a trimmed range's contents unspecified until rewritten.  What is released, exactly (smapi.vhd.trim
 * implements the same rule, and tests compare the two byte for byte):
 *   - only the leaf, and only when it is a plain file (file and NFS SRs); an image reached through a segment map (an
 *     LV) is left alone: a discard on a shared PV is not ours to issue;
 *   - a dynamic or differencing leaf: inside blocks the leaf's BAT maps (and that lie within the file and overlap no
 *     metadata), the whole 4 KiB units of the file that the range covers in the block's data area; unallocated
 *     blocks are untouched (their sectors come from the parent, and must keep doing so);
 *   - a fixed leaf or a raw file: the whole 4 KiB units of the data the range covers (never the footer).
 * A released unit reads as zeros (fallocate PUNCH_HOLE|KEEP_SIZE): sectors whose bitmap bit is set read zeros, never
 * parent data; sectors whose bit is clear still read the parent (their bytes in the leaf were never read).  Bitmaps,
 * BAT, batmap and footer do not change, so there is no crash ordering to keep: after a crash a unit holds its old
 * bytes or zeros.  A file system without hole punching (EOPNOTSUPP: e.g. NFS before 4.2) makes trim a no-op. */
#ifndef SMAPI_VHDTRIM_H
#define SMAPI_VHDTRIM_H
#include <stdint.h>

#include "vhdchain.h"
#include "vhdio.h"

#define VHD_TRIM_UNIT 4096

/* 1 if trim can release anything on this chain (a writable leaf that is a plain file). */
int vchain_can_trim(const struct vchain *c);
/* Release what VHD allows in [off, off+len) of the virtual disk; 0 or a negative errno. */
int vchain_trim(struct vchain *c, uint64_t len, uint64_t off);
/* A raw image: release the whole units of [off, off+len) (a mapped one: nothing); 0 or a negative errno. */
int vfile_trim(const struct vfile *f, uint64_t len, uint64_t off);
#endif
