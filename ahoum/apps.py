from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AhoumConfig(AppConfig):
    """The project itself as an app: its management commands and admin index template."""

    name = "ahoum"
    verbose_name = "Ahoum"
    default = True


class AhoumAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "ahoum.admin.AhoumAdminSite"
