"""The ``conode`` command: argument parsing and printing over the node's Python API.

``cli.main`` parses and dispatches; ``cli.datadir`` is the data directory and
its config; ``cli.ops`` the operations that commands and the demo share;
``cli.render`` the printing; ``cli.demo`` the end-to-end demonstration.
"""
