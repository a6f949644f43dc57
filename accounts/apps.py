from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from accounts import (
            authentication,  # noqa: F401  (drops cached users on save)
            schema,  # noqa: F401  (registers the OpenAPI scheme)
        )
