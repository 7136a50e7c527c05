"""Sub-commands of the ``descentlab`` command, one module per group."""
