"""The command line: one thin module per action (its flags, a request, the library call)."""
