"""The members' web page: served by ``conode run`` in the node's own trio process.

``port`` is the seam (what the page needs from a node), ``adapter`` implements
it over the node façade, ``site`` holds the routes and ``server`` serves them
(``http``, on h11). See docs/user-guide.md and docs/operator.md, "The web page".
"""
