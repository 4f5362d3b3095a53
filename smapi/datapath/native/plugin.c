/* nbdkit plugin "smapi-vhd": a VHD chain (or a raw file, kind=raw) served as one raw disk, PARALLEL thread model.
 *
 * Parameters (the order of parent= is the chain order, the leaf's parent first):
 *   image=PATH    the leaf
 *   parent=PATH   repeated, one per ancestor (resolved by smapi.datapath.native from the VHD locators)
 *   map=OFF:LEN:DEVICE  repeated: the image or parent named just before is no file but these runs of block devices
 *                 in order (an LV through its segment map); its PATH is then only a name for messages
 *   size=BYTES    a raw mapped image's size (an LV holds whole extents; default: all of them)
 *   kind=vhd|raw  default vhd
 *   mode=rw|ro
 *   direct=BOOL  open the chain's files with O_DIRECT (no server-side page cache; default false)
 *   export=NAME   the export name; NAME@ro reaches the same disk read-only (smapi.datapath.nbd.READONLY_SUFFIX)
 *   register_sanlock=BOOL  after forking into the background, register this server process with the sanlock daemon
 *                 (libsanlock_client, loaded only then) so that the starter can take the VDI's activation lease for
 *                 its pid, and the daemon kills the server when its host loses the lockspace
 * One chain object is opened in get_ready and shared by every connection (multi-conn: a flush on any connection
 * commits every completed write). */
#define _GNU_SOURCE
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhdchain.h"
#include "vhdio.h"
#include "vhdtrim.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#ifndef SMAPI_SOURCES_HASH /* set by setup.py (smapi/datapath/native/sourcehash.py) */
#define SMAPI_SOURCES_HASH "unknown"
#endif
#define READONLY_SUFFIX "@ro"
#define ZERO_CHUNK (1u << 20)

#define MAX_MAP 4096

static struct vspec cfg_specs[VHD_MAX_CHAIN_DEPTH];
static struct vmapent cfg_map[MAX_MAP];
static int cfg_n = 0, cfg_nmap = 0, cfg_raw = 0, cfg_rw = 1, cfg_direct = 0, cfg_register_sanlock = 0;
static int64_t cfg_size = -1;
static int sanlock_fd = -1; /* kept open for the server's life: the daemon's view of this process */
static const char *cfg_export = "";
static struct vchain chain;
static struct vfile raw = {.fd = -1};
static uint64_t raw_size;

/* map=OFF:LEN:DEVICE for the image given last (the device path may itself hold colons). */
static int add_map(const char *value) {
  char *end;
  if (cfg_n == 0) { nbdkit_error("map= must follow image= or parent="); return -1; }
  struct vspec *s = &cfg_specs[cfg_n - 1];
  if (cfg_nmap == MAX_MAP) { nbdkit_error("more than %d map= entries", MAX_MAP); return -1; }
  if (s->nmap == 0) s->map = &cfg_map[cfg_nmap];
  else if (s->map + s->nmap != &cfg_map[cfg_nmap]) { nbdkit_error("map= of %s given apart", s->path); return -1; }
  struct vmapent *m = &cfg_map[cfg_nmap];
  errno = 0;
  m->dev_off = strtoull(value, &end, 10);
  if (errno || *end != ':') goto bad;
  m->len = strtoull(end + 1, &end, 10);
  if (errno || *end != ':' || end[1] == 0) goto bad;
  m->dev = end + 1;
  cfg_nmap++;
  s->nmap++;
  return 0;
bad:
  nbdkit_error("map=%s: expected OFFSET:LENGTH:DEVICE", value);
  return -1;
}
static uint8_t *zeros;

struct handle { int readonly; };

static int smapi_config(const char *key, const char *value) {
  if (strcmp(key, "image") == 0 || strcmp(key, "parent") == 0) {
    if ((strcmp(key, "image") == 0) != (cfg_n == 0)) { nbdkit_error("image= must come first, once"); return -1; }
    if (cfg_n == VHD_MAX_CHAIN_DEPTH) { nbdkit_error("chain deeper than %d", VHD_MAX_CHAIN_DEPTH); return -1; }
    cfg_specs[cfg_n++] = (struct vspec){value, 0, NULL};
  } else if (strcmp(key, "map") == 0) {
    return add_map(value);
  } else if (strcmp(key, "size") == 0) {
    if (nbdkit_parse_int64_t("size", value, &cfg_size) == -1) return -1;
  } else if (strcmp(key, "kind") == 0) {
    if (strcmp(value, "raw") && strcmp(value, "vhd")) { nbdkit_error("kind must be vhd or raw"); return -1; }
    cfg_raw = strcmp(value, "raw") == 0;
  } else if (strcmp(key, "mode") == 0) {
    if (strcmp(value, "rw") && strcmp(value, "ro")) { nbdkit_error("mode must be rw or ro"); return -1; }
    cfg_rw = strcmp(value, "rw") == 0;
  } else if (strcmp(key, "direct") == 0) {
    cfg_direct = nbdkit_parse_bool(value);
    if (cfg_direct == -1) return -1;
  } else if (strcmp(key, "export") == 0) {
    cfg_export = value;
  } else if (strcmp(key, "register_sanlock") == 0) {
    cfg_register_sanlock = nbdkit_parse_bool(value);
    if (cfg_register_sanlock == -1) return -1;
  } else {
    nbdkit_error("unknown parameter '%s'", key);
    return -1;
  }
  return 0;
}

static int smapi_config_complete(void) {
  if (cfg_n == 0) { nbdkit_error("image=PATH is required"); return -1; }
  if (cfg_raw && cfg_n > 1) { nbdkit_error("a raw image has no parents"); return -1; }
  if (cfg_size >= 0 && !(cfg_raw && cfg_specs[0].nmap)) { nbdkit_error("size= is for a raw mapped image"); return -1; }
  return 0;
}

/* After the background fork: the pid that serves is the one the daemon must know (and kill). */
static int smapi_after_fork(void) {
  if (!cfg_register_sanlock) return 0;
  void *lib = dlopen("libsanlock_client.so.1", RTLD_NOW);
  if (!lib) { nbdkit_error("register_sanlock: %s", dlerror()); return -1; }
  int (*reg)(void) = (int (*)(void))dlsym(lib, "sanlock_register");
  if (!reg) { nbdkit_error("register_sanlock: %s", dlerror()); return -1; }
  sanlock_fd = reg();
  if (sanlock_fd < 0) { nbdkit_error("sanlock_register: %s", strerror(-sanlock_fd)); return -1; }
  return 0;
}

static int smapi_get_ready(void) {
  zeros = calloc(1, ZERO_CHUNK);
  if (!zeros) { nbdkit_error("out of memory"); return -1; }
  char err[512];
  if (cfg_raw) {
    int flags = (cfg_rw ? O_RDWR : O_RDONLY) | (cfg_direct ? O_DIRECT : 0);
    if (vfile_open(&raw, &cfg_specs[0], flags, err, sizeof err) != 0 || vfile_size(&raw, &raw_size) != 0) {
      nbdkit_error("%s", err);
      return -1;
    }
    if (cfg_size > (int64_t)raw_size) { nbdkit_error("size=%lld exceeds the mapped %llu bytes",
                                                     (long long)cfg_size, (unsigned long long)raw_size); return -1; }
    if (cfg_size >= 0) raw_size = (uint64_t)cfg_size;
    return 0;
  }
  if (vchain_open(&chain, cfg_specs, cfg_n, cfg_rw, cfg_direct, err, sizeof err) != 0) {
    nbdkit_error("%s", err);
    vchain_close(&chain);
    return -1;
  }
  return 0;
}

static void smapi_cleanup(void) {
  if (cfg_raw) vfile_close(&raw);
  if (!cfg_raw && chain.n > 0) {
    int r = vchain_close(&chain); /* commits what is pending (nbdkit exit, also on SIGTERM) */
    if (r) nbdkit_error("final commit failed: %s", strerror(-r));
  }
  free(zeros);
}

static int smapi_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports) {
  char ro[1024];
  if (strlen(cfg_export) + sizeof READONLY_SUFFIX > sizeof ro) return -1;
  strcpy(ro, cfg_export);
  strcat(ro, READONLY_SUFFIX);
  if (nbdkit_add_export(exports, cfg_export, NULL) == -1) return -1;
  return nbdkit_add_export(exports, ro, NULL);
}

static const char *smapi_default_export(int readonly, int is_tls) { return cfg_export; }

static void *smapi_open(int readonly) {
  /* A client asking for another VDI's name reached the wrong socket: refuse rather than serve this disk. */
  const char *name = nbdkit_export_name();
  size_t n = strlen(cfg_export);
  struct handle *h = malloc(sizeof *h);
  if (!h) { nbdkit_error("out of memory"); return NULL; }
  if (name == NULL || *name == 0 || strcmp(name, cfg_export) == 0) {
    h->readonly = readonly || !cfg_rw;
  } else if (strncmp(name, cfg_export, n) == 0 && strcmp(name + n, READONLY_SUFFIX) == 0) {
    h->readonly = 1;
  } else {
    free(h);
    nbdkit_set_error(ENOENT);
    nbdkit_error("no export named '%s'", name);
    return NULL;
  }
  return h;
}

static void smapi_close(void *h) { free(h); }

static int64_t smapi_get_size(void *h) { return (int64_t)(cfg_raw ? raw_size : chain.size); }
static int smapi_can_write(void *h) { return !((struct handle *)h)->readonly; }
static int smapi_can_flush(void *h) { return 1; }
static int smapi_can_fua(void *h) { return NBDKIT_FUA_NATIVE; }
static int smapi_can_multi_conn(void *h) { return 1; }
static int smapi_can_zero(void *h) { return !((struct handle *)h)->readonly; }
static int smapi_can_fast_zero(void *h) { return 1; }
/* Trim is advertised where it releases something (vhdtrim.h): not on an LV, where it would be ignored anyway. */
static int smapi_can_trim(void *h) {
  return !((struct handle *)h)->readonly && (cfg_raw ? !raw.mapped : vchain_can_trim(&chain));
}
static int smapi_can_extents(void *h) { return !cfg_raw; }

static int fail_errno(int r, const char *what, uint64_t off) {
  nbdkit_set_error(-r);
  nbdkit_error("%s at %llu: %s", what, (unsigned long long)off, strerror(-r));
  return -1;
}

static int do_flush(void) {
  if (cfg_raw) return vfile_sync(&raw);
  return vchain_flush(&chain);
}

static int smapi_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags) {
  int r = cfg_raw ? vfile_pread(&raw, buf, count, offset) : vchain_read(&chain, buf, count, offset);
  return r ? fail_errno(r, "read", offset) : 0;
}

static int do_write(void *h, const void *buf, uint32_t count, uint64_t offset, uint32_t flags) {
  if (((struct handle *)h)->readonly) return -EROFS;
  int r = cfg_raw ? vfile_pwrite(&raw, buf, count, offset) : vchain_write(&chain, buf, count, offset);
  if (!r && (flags & NBDKIT_FLAG_FUA)) r = do_flush();
  return r;
}

static int smapi_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset, uint32_t flags) {
  int r = do_write(h, buf, count, offset, flags);
  return r ? fail_errno(r, "write", offset) : 0;
}

static int smapi_flush(void *h, uint32_t flags) {
  if (((struct handle *)h)->readonly) return 0;
  int r = do_flush();
  return r ? fail_errno(r, "flush", 0) : 0;
}

/* Zero: a range no image of the chain maps already reads as zeros; otherwise zeros are written (a VHD cannot
 * punch sectors out of an allocated block). */
static int smapi_zero(void *h, uint32_t count, uint64_t offset, uint32_t flags) {
  if (((struct handle *)h)->readonly) return fail_errno(-EROFS, "zero", offset);
  if (!cfg_raw && !vchain_allocated(&chain, offset, count)) {
    int r = (flags & NBDKIT_FLAG_FUA) ? do_flush() : 0;
    return r ? fail_errno(r, "zero", offset) : 0;
  }
  if (flags & NBDKIT_FLAG_FAST_ZERO) { nbdkit_set_error(ENOTSUP); return -1; }
  while (count) {
    uint32_t n = count < ZERO_CHUNK ? count : ZERO_CHUNK;
    int r = do_write(h, zeros, n, offset, 0);
    if (r) return fail_errno(r, "zero", offset);
    count -= n; offset += n;
  }
  int r = (flags & NBDKIT_FLAG_FUA) ? do_flush() : 0;
  return r ? fail_errno(r, "zero", offset) : 0;
}

/* Trim: the leaf's data in whole 4 KiB units is released where VHD allows it (vhdtrim.h); the rest is ignored. */
static int smapi_trim(void *h, uint32_t count, uint64_t offset, uint32_t flags) {
  if (((struct handle *)h)->readonly) return fail_errno(-EROFS, "trim", offset);
  int r = cfg_raw ? vfile_trim(&raw, count, offset) : vchain_trim(&chain, count, offset);
  if (!r && (flags & NBDKIT_FLAG_FUA)) r = do_flush();
  return r ? fail_errno(r, "trim", offset) : 0;
}

static int smapi_extents(void *h, uint32_t count, uint64_t offset, uint32_t flags, struct nbdkit_extents *ext) {
  uint64_t bs = vchain_block_size(&chain), end = offset + count, pos = offset;
  while (pos < end) {
    uint64_t next = (pos / bs + 1) * bs;
    if (next > end) next = end;
    uint32_t type = vchain_allocated(&chain, pos, next - pos) ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent(ext, pos, next - pos, type) == -1) return -1;
    pos = next;
    if (flags & NBDKIT_FLAG_REQ_ONE) break;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "smapivhd",
  .version = SMAPI_SOURCES_HASH, /* checked against the sources when the engine is chosen */
  .longname = "smapi VHD chain datapath",
  .config = smapi_config,
  .config_complete = smapi_config_complete,
  .config_help = "image=PATH [map=OFF:LEN:DEV]... [parent=PATH [map=...]...]... [size=BYTES] [kind=vhd|raw] "
                 "[mode=rw|ro] [direct=BOOL] [export=NAME] [register_sanlock=BOOL]",
  .magic_config_key = "image",
  .get_ready = smapi_get_ready,
  .after_fork = smapi_after_fork,
  .cleanup = smapi_cleanup,
  .list_exports = smapi_list_exports,
  .default_export = smapi_default_export,
  .open = smapi_open,
  .close = smapi_close,
  .get_size = smapi_get_size,
  .can_write = smapi_can_write,
  .can_flush = smapi_can_flush,
  .can_fua = smapi_can_fua,
  .can_multi_conn = smapi_can_multi_conn,
  .can_zero = smapi_can_zero,
  .can_fast_zero = smapi_can_fast_zero,
  .can_trim = smapi_can_trim,
  .can_extents = smapi_can_extents,
  .pread = smapi_pread,
  .pwrite = smapi_pwrite,
  .flush = smapi_flush,
  .zero = smapi_zero,
  .trim = smapi_trim,
  .extents = smapi_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
