"""Apps: the SDK (``conode.apps.sdk``, pure), its shell (``conode.apps.loader``) and the built-in apps.

An app imports ``conode.apps.sdk`` only (with ``conode.validation`` values and
the standard library); see ``docs/apps.md``.
"""
