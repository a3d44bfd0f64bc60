"""The ``conode`` command: argument parsing and printing over the node's Python API and its local API.

``cli.entry`` is the console script (Ctrl-C while the rest loads is one
line); ``cli.main`` parses and dispatches; ``cli.datadir`` is the data directory and
its config; ``cli.ops`` the chain operations that commands and the demo share;
``cli.render`` and ``cli.output`` the printing; ``cli.demo`` the in-process
demonstration. The network: ``cli.charterfile`` (charters from TOML),
``cli.network`` (geneses, credentials, peer ids), ``cli.netcmds`` (set-up
commands and ``run``), ``cli.runner`` (``conode run``), ``cli.client`` (the
API client), ``cli.session`` (one command's session with the running node),
``cli.apicmds`` (the parsers of the commands that ask a running node) and their
handlers by job: ``cli.nodecmds`` (status, peers, sessions, recover),
``cli.paycmds`` (balances, payments, bills, history), ``cli.auditcmds``
(``audit``), over ``cli.auditfiles`` (the offline audit); ``cli.money`` (amounts), and
``cli.devnet`` (a local network of real nodes).
"""
