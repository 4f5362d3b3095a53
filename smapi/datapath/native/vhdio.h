/* Whole-buffer pread/pwrite (retrying short transfers). Return 0 or a negative errno; -EIO at end of file. */
#ifndef SMAPI_VHDIO_H
#define SMAPI_VHDIO_H
#include <stddef.h>
#include <stdint.h>
int vhd_pread_full(int fd, void *buf, size_t len, uint64_t off);
int vhd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
#endif
