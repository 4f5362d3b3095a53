/* Whole-buffer pread/pwrite (retrying short transfers). Return 0 or a negative errno; -EIO at end of file. */
#ifndef SMAPI_VHDIO_H
#define SMAPI_VHDIO_H
#include <stddef.h>
#include <stdint.h>
/* Mark fd as opened with O_DIRECT (unaligned transfers then use a bounce buffer). */
void vhd_io_set_direct(int fd, int on);
int vhd_pread_full(int fd, void *buf, size_t len, uint64_t off);
int vhd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
#endif
