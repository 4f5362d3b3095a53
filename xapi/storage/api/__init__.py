"""SMAPIv3 Python bindings, by IDL version."""
