"""Generated skeleton modules, one per API (see smapi.interface.codegen)."""
