"""sanlock for shared SRs: a ctypes binding (`client`), private daemons (`daemon`) and the pool's leases.

Layering: this package sits in smapi.sr (below the drivers that use it) and imports nothing above it.
"""
