"""podmodel: podbus's API types, defaults, validation, manifests, codecs and
subject names. Pure: no I/O. Public names are listed in __all__."""
