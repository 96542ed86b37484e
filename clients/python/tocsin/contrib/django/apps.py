from django.apps import AppConfig


class TocsinConfig(AppConfig):
    """``"tocsin.contrib.django"`` in INSTALLED_APPS: the ``tocsin_worker`` command, and the
    TOCSIN setting checked when Django starts."""

    name = "tocsin.contrib.django"
    label = "tocsin"
    verbose_name = "tocsin"

    def ready(self):
        from . import conf
        conf.get()  # a misspelt key fails at start (ImproperlyConfigured), not at the first raise
