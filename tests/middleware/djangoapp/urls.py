from __future__ import annotations

from django.urls import path

from tests.middleware.djangoapp import views

urlpatterns = [
    path("orders/<str:ref>/", views.order),
    path("atomic/<str:ref>/", views.atomic),
    path("durable/<str:ref>/", views.durable),
    path("stream/<str:ref>/", views.stream),
    path("stream-cleanup/<str:ref>/", views.stream_cleanup),
    path("async/<str:ref>/", views.async_order),
    path("async-stream/<str:ref>/", views.async_stream),
    path("thread/<str:ref>/", views.thread),
    path("mariadb-ddl/<str:ref>/", views.mariadb_ddl),
    path("raw-commit/<str:ref>/", views.raw_commit),
    path("slow/<str:ref>/", views.slow),
    path("async-slow/<str:ref>/", views.async_slow),
    path("boom/<str:ref>/", views.boom),
]
