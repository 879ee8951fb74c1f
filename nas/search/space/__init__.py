"""Search spaces: the schema, loading and checks, points of a space, and enumeration."""
