from __future__ import annotations

from django.db import models


class Order(models.Model):  # type: ignore[misc]
    ref = models.CharField(max_length=40, unique=True)

    class Meta:
        app_label = "djangoapp"
        db_table = "sg_django_order"
