"""Apps: the SDK (``conode.apps.sdk``, pure), its shell (``conode.apps.loader``) and the built-in apps.

``conode.apps.hosting`` (pure) decides which apps a node runs and what its
engine judges every app's records with; ``conode.node.apps`` runs them on a node.

An app imports ``conode.apps.sdk`` only (with ``conode.validation`` values and
the standard library); see ``docs/apps.md``.
"""
