/* libFuzzer harness for the native VHD engine: any bytes as a VHD file (in a memfd), opened read-write through
 * vchain_open, then reads, writes (allocating and in place), a flush and a close.  Built by
 * tests/datapath/test_native_fuzz.py with clang -fsanitize=fuzzer,address,undefined; not part of the plugin. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhdchain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("fuzz.vhd", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (write(fd, data, size) != (ssize_t)size) { close(fd); return 0; }
  char path[64], err[256];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  struct vspec specs[1] = {{path, 0, NULL}};
  struct vchain c;
  if (vchain_open(&c, specs, 1, 1, 0, err, sizeof err) == 0) {
    static uint8_t buf[3 * 65536];
    uint64_t sz = c.size, bs = vchain_block_size(&c);
    /* a few spots: the start, around the first block boundaries, the end; and whatever the BAT maps */
    uint64_t spots[] = {0, 512, bs - 512, bs + 7, sz / 2, sz > 4096 ? sz - 4096 : 0};
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
      uint64_t off = spots[i] < sz ? spots[i] : 0, len = sz - off < sizeof buf ? sz - off : sizeof buf;
      vchain_read(&c, buf, len, off);
      vchain_allocated(&c, off, len);
    }
    for (uint32_t b = 0, n = 0; c.img[0].has_header && b < c.img[0].entries && n < 4; b++)
      if (c.img[0].bat[b] != VHD_BAT_UNUSED) {
        uint64_t off = (uint64_t)b * bs, len = sz > off ? (sz - off < sizeof buf ? sz - off : sizeof buf) : 0;
        if (len) vchain_read(&c, buf, len, off);
        n++;
      }
    memset(buf, 0x5A, sizeof buf);
    if (sz >= 4096) {
      vchain_write(&c, buf, 4096, 0);
      vchain_write(&c, buf, 1000, sz / 2 + 3);
      vchain_write(&c, buf, 4096, sz - 4096);
    }
    vchain_flush(&c);
  }
  vchain_close(&c);
  close(fd);
  return 0;
}
