from __future__ import annotations

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        import shadowguard

        # Every guard whose library is installed: the Django ORM guard refuses shadow
        # writes outside the middleware's rolled-back transactions (threads, commands).
        shadowguard.install()
