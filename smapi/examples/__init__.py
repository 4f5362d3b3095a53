"""Example drivers shipped with smapi, registered by name, to run and to copy.

    dirsr   smapi.examples.dirsr:DirSR    skeleton route: every verb written by hand, raw files in a directory
    tinysr  smapi.examples.tinysr:TinySR  EngineDriver route: the SR engine on a directory, in 25 lines

docs/writing-a-driver.md walks through both.
"""
