"""Integrations with frameworks (``tocsin.contrib.django``, ``tocsin.contrib.gunicorn``).

Each imports its framework only when it is itself imported: the rest of the package stays
standard library only."""
