from django.apps import AppConfig


class FacilitatorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "facilitators"
