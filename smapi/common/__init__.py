"""The lowest layer: helpers every other layer may use (the call log, files, external commands).

Nothing here imports any other part of smapi.
"""
