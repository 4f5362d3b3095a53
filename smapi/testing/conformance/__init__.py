"""The SR conformance suite (pytest modules): run it with `smapi conformance --driver NAME`.

One set of tests, run unchanged against every SR type registered with `smapi.testing.plugin`; see
docs/writing-a-driver.md for what a driver needs to pass it.
"""
