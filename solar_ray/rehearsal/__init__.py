"""The rehearsal: the paper experiment itself on one CPU machine, offline, with only its scale changed."""
